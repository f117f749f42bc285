"""Measure the "small edit" threshold of paragraph ids (berater/qna/ids.py) on a handbook.

Prints, for the similarity `ids.similarity` (Jaccard of character bigrams):

* different paragraphs: for each paragraph, the most similar other paragraph of its
  chapter; the largest, the 99th and 95th percentiles and the median of those;
* edits: each paragraph edited in a few ways (a phrase replaced, a clause inserted, a
  sentence added, its numbers changed, its last sentence dropped), the smallest, the 5th
  percentile and the median similarity of the edited text to the original;

and how many of each fall on the wrong side of `ids.SAME`. An edit below SAME is reported
by `qna build` as a change; a different paragraph above it would be taken for an edit.

    .venv/bin/python bench/qna_ids.py
    .venv/bin/python bench/qna_ids.py --corpus path/to/handbook
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from berater.qna import ids  # noqa: E402
from berater.qna.corpus import load  # noqa: E402

SENTENCE = re.compile(r"(?<=[。；！？])")
NUMBER = re.compile(r"[一二三四五六七八九十百\d]+")


def edits(text: str, rng: random.Random) -> dict[str, str]:
    """The edited versions of `text`, by kind of edit."""
    out = {}
    at = rng.randrange(max(1, len(text) - 10))
    out["a phrase replaced (6 characters)"] = text[:at] + "按学校规定" + text[at + 6 :]
    at = rng.randrange(max(1, len(text) - 10))
    out["a clause inserted"] = text[:at] + "（含港澳台学生）" + text[at:]
    out["a sentence added"] = text + "具体安排以学院当年通知为准。"
    out["every number changed"] = NUMBER.sub(
        lambda m: "二十" if m.group() == "三十" else "三十", text
    )
    sentences = [s for s in SENTENCE.split(text) if s]
    if len(sentences) > 1:
        out["the last sentence dropped"] = "".join(sentences[:-1])
    return out


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=str(ROOT / "data/qna/handbook"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    paragraphs = load(args.corpus)
    rng = random.Random(args.seed)
    grams = [ids.bigrams(p.text) for p in paragraphs]
    nearest = []
    for i, p in enumerate(paragraphs):
        others = [
            ids.similarity(grams[i], grams[j])
            for j, q in enumerate(paragraphs)
            if j != i and q.chapter == p.chapter
        ]
        if others:
            nearest.append(max(others))
    by_kind: dict[str, list[float]] = {}
    for p in paragraphs:
        for kind, edited in edits(p.text, rng).items():
            by_kind.setdefault(kind, []).append(ids.similarity(p.text, edited))
    print(f"corpus: {len(paragraphs)} paragraphs; threshold SAME = {ids.SAME}")
    print(
        f"different paragraphs (nearest in the chapter): max {max(nearest):.3f}, "
        f"p99 {percentile(nearest, 0.99):.3f}, p95 {percentile(nearest, 0.95):.3f}, "
        f"median {statistics.median(nearest):.3f}; at or above SAME: "
        f"{sum(s >= ids.SAME for s in nearest)}"
    )
    for kind, values in by_kind.items():
        print(
            f"edit, {kind}: min {min(values):.3f}, p5 {percentile(values, 0.05):.3f}, "
            f"median {statistics.median(values):.3f}; below SAME: "
            f"{sum(s < ids.SAME for s in values)} of {len(values)}"
        )


if __name__ == "__main__":
    main()
