"""Benchmark: the handbook Q&A engine against the original refit-per-query design.

What it measures, in one run:

* the index over 5,000 paragraphs (the demo handbook replicated with variations: another
  campus, other numbers, the sentences in another order): build seconds and file size;
* per-question latency of `Engine.search` with every step the service takes (folding the
  question, traditional to simplified, stripping its scaffolding, the office's synonyms and
  FAQ, segmenting it with jieba, scoring every paragraph, its headings, its sentences with
  the kinds of fact the question asks for and the FAQ's questions naming it, the question's
  coverage, the top 3 with their sources and best sentences): p50 and p99 over the
  development questions, repeated;
* the same questions asked as the service asks them, through the app's extension
  (`qna.engine`, which looks at the index file's modification time at most once a second,
  so a worker serves a rebuilt index without a restart): p50; and `qna.engine` alone, beside
  reading the engine without the look and an `os.stat` of the file;
* the start-up of a worker with that index: forked from a process that has done what
  gunicorn's master does before forking (`berater.prefork`, from gunicorn.conf.py: the app's
  modules and jieba's dictionary), it creates the app, loads the index and answers one
  question; and a cold start, a fresh Python process that imports and loads everything
  itself, with its RSS;
* the original design on the same corpus and questions: a TF-IDF model (jieba tokens,
  scikit-learn) fitted over the whole corpus for every question, then cosine similarity;
  its p50 over a few questions (each takes seconds), and the ratio to ours.

Goals: p50 at most 1 ms; at least 200x faster than the refit-per-query
baseline; worker start-up with the index under 2 s.

    .venv/bin/python bench/qna.py
    .venv/bin/python bench/qna.py --paragraphs 5000 --rounds 5 --baseline-queries 5
"""

from __future__ import annotations

import argparse
import atexit
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import timeit
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from berater import prefork  # noqa: E402
from berater.ext import embedded_redis  # noqa: E402
from berater.qna import faq, segment  # noqa: E402
from berater.qna.corpus import Paragraph, load  # noqa: E402
from berater.qna.engine import Engine  # noqa: E402
from berater.qna.evaluate import load_questions  # noqa: E402
from berater.qna.index import Index  # noqa: E402
from berater.qna.normalise import Synonyms  # noqa: E402
from berater.settings import default  # noqa: E402

CAMPUSES = ["仙林校区", "鼓楼校区", "浦口校区", "苏州校区", "江北新区", "医学院区", "国际学院"]
SENTENCE = re.compile(r"(?<=[。；！？])")


def replicate(paragraphs: list[Paragraph], total: int, seed: int = 7) -> list[Paragraph]:
    """`total` paragraphs: the originals, then variants of them until there are enough."""
    rng = random.Random(seed)
    out = list(paragraphs)
    copy = 0
    while len(out) < total:
        copy += 1
        for p in paragraphs:
            if len(out) >= total:
                break
            sentences = [s for s in SENTENCE.split(p.text) if s]
            rng.shuffle(sentences)
            shift = copy
            text = re.sub(r"\d+", lambda m, n=shift: str(int(m.group()) + n), "".join(sentences))
            campus = CAMPUSES[copy % len(CAMPUSES)]
            out.append(
                Paragraph(
                    id=f"{p.id}~{copy}",
                    text=f"（{campus}）{text}",
                    chapter=p.chapter,
                    section=p.section,
                    page=(p.page or 0) + 200 * copy,
                )
            )
    return out


def time_queries(engine: Engine, questions: list[str], rounds: int) -> list[float]:
    for q in questions[:20]:
        engine.search(q)  # warm caches
    times = []
    for _ in range(rounds):
        for q in questions:
            started = time.perf_counter()
            engine.search(q, k=3)
            times.append(time.perf_counter() - started)
    return times


def time_served(index_file: Path, instance: Path, questions: list[str], rounds: int):
    """The questions through the app's extension, as a view asks them: (seconds per
    question, (seconds per `qna.engine`, which looks at the file at most once a second, and
    per reading the engine without that look), seconds per os.stat of the index file)."""
    from berater import create_app
    from berater.extensions import qna

    settings = {"BERATER_ENV": "testing", "QNA_INDEX": str(index_file)}
    app = create_app({**settings, "INSTANCE_PATH": str(instance)})
    with app.app_context():
        for q in questions[:20]:
            qna.engine.search(q)
        times = []
        for _ in range(rounds):
            for q in questions:
                started = time.perf_counter()
                qna.engine.search(q, k=3)
                times.append(time.perf_counter() - started)
        # Best of 7 runs of 100,000 each: the machine's noise is larger than the look.
        looks = best(lambda: qna.engine), best(lambda: qna.state.engine)
    return times, looks, best(lambda: os.stat(index_file))


def best(fn: Callable[[], object], number: int = 100_000, repeat: int = 7) -> float:
    """Seconds per call of `fn`, the best of `repeat` runs of `number` calls."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def refit_per_query(corpus: list[str], question: str) -> int:
    """The original design: fit TF-IDF over the corpus and the question, take the best."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import linear_kernel

    tk = segment.tokenizer()
    vectorizer = TfidfVectorizer(tokenizer=tk.lcut, lowercase=False, token_pattern=None)
    matrix = vectorizer.fit_transform([*corpus, question])
    scores = linear_kernel(matrix[-1], matrix[:-1]).ravel()
    return int(scores.argmax())


WORKER = textwrap.dedent(
    """
    import resource, sys, time
    from berater import create_app
    from berater.extensions import qna
    app = create_app({"TESTING": True, "QNA_INDEX": sys.argv[1], "INSTANCE_PATH": sys.argv[2]})
    with app.app_context():
        qna.engine.search("奖学金怎么申请")
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
    """
)


def cold_startup(index_file: Path, instance: Path) -> tuple[float, float]:
    """A fresh Python process (nothing shared): (seconds to its first answer, RSS MiB)."""
    env = {**os.environ, "BERATER_ENV": "testing"}
    started = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, "-c", WORKER, str(index_file), str(instance)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        line = process.stdout.readline()  # the first answer is given: the worker is ready
        ready = time.perf_counter() - started
        process.wait()
    return ready, float(line) / 1024


def forked_startup(index_file: Path, instance: Path) -> float:
    """A worker forked from this process, which has run `berater.prefork` as gunicorn's
    master does: seconds from the fork to its first answer (create_app, index load, the
    answer)."""
    read, write = os.pipe()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the worker
        os.close(read)
        os.environ["BERATER_ENV"] = "testing"
        from berater import create_app
        from berater.extensions import qna

        settings = {"TESTING": True, "QNA_INDEX": str(index_file), "INSTANCE_PATH": str(instance)}
        with create_app(settings).app_context():
            qna.engine.search("奖学金怎么申请")
        os.write(write, f"{time.perf_counter() - started}".encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        seconds = float(pipe.read())
    os.waitpid(pid, 0)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paragraphs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5, help="passes over the questions")
    parser.add_argument("--baseline-queries", type=int, default=5)
    parser.add_argument("--startups", type=int, default=3, help="worker start-ups, best taken")
    args = parser.parse_args()

    handbook = load(ROOT / default("QNA_CORPUS"))
    words = segment.read_userdict(ROOT / default("QNA_USERDICT"))
    questions = [q.q for q in load_questions(ROOT / "data/qna/dev-questions.jsonl")]
    paragraphs = replicate(handbook, args.paragraphs)
    segment.warm()  # the build time below is the index's, not jieba's dictionary load
    work = Path(tempfile.mkdtemp(prefix="bench-qna-"))
    # Removed at exit, after the embedded store started below has stopped (atexit runs last
    # registered first).
    atexit.register(shutil.rmtree, work, True)
    started = time.perf_counter()
    index = Index.build(
        paragraphs,
        words,
        synonyms=Synonyms.load(ROOT / default("QNA_SYNONYMS")),
        faq=faq.load(ROOT / default("QNA_FAQ")),
    )
    build = time.perf_counter() - started
    index_file = work / "qna-index.npz"
    size = index.save(index_file)
    engine = Engine(Index.load(index_file))

    times = time_queries(engine, questions, args.rounds)
    p50, p99 = statistics.median(times), statistics.quantiles(times, n=100)[98]

    cold, rss = min(cold_startup(index_file, work) for _ in range(args.startups))
    # What gunicorn.conf.py's on_starting does: the master starts the embedded store (and
    # stops it at exit; a forked worker leaves with os._exit) and runs prefork.
    embedded_redis.ensure_running(work)
    prefork({"QNA_INDEX": str(index_file)})
    forked = min(forked_startup(index_file, work) for _ in range(args.startups))
    served, (look, bare), stat = time_served(index_file, work, questions, args.rounds)
    served50 = statistics.median(served)

    corpus = [p.text for p in paragraphs]
    baseline = []
    for q in questions[: args.baseline_queries]:
        t0 = time.perf_counter()
        refit_per_query(corpus, q)
        baseline.append(time.perf_counter() - t0)
    base50 = statistics.median(baseline)

    own_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"corpus: {len(paragraphs)} paragraphs ({len(handbook)} handbook + variants)")
    print(f"index build: {build:.2f} s, file {size / 1024 / 1024:.2f} MiB")
    print(f"terms: {len(index.words.terms)} words, {len(index.chars.terms)} characters and bigrams")
    print(
        f"query (Engine.search, top 3): p50 {p50 * 1000:.3f} ms, p99 {p99 * 1000:.3f} ms "
        f"over {len(times)} queries"
    )
    print(
        f"query through the app's extension (qna.engine, its look at the index file "
        f"included): p50 {served50 * 1000:.3f} ms; qna.engine {look * 1e6:.2f} µs, without "
        f"the look {bare * 1e6:.2f} µs, an os.stat of the file {stat * 1e6:.2f} µs"
    )
    print(
        f"worker start-up with the index (fork of a master after berater.prefork, as under "
        f"gunicorn): "
        f"{forked:.2f} s to the first answer (best of {args.startups})"
    )
    print(
        f"cold start-up (a fresh process, nothing shared): {cold:.2f} s to the first answer, "
        f"RSS {rss:.0f} MiB (best of {args.startups})"
    )
    print(f"this benchmark's RSS: {own_rss:.0f} MiB")
    print(
        f"baseline (refit TF-IDF per query): p50 {base50 * 1000:.0f} ms over {len(baseline)}"
        " queries"
    )
    ratio = base50 / p50
    print(f"speed-up p50: {ratio:.0f}x")
    print(
        f"goals: p50 <= 1 ms: {'met' if p50 <= 0.001 else 'MISSED'}; >= 200x: "
        f"{'met' if ratio >= 200 else 'MISSED'}; start-up < 2 s: "
        f"{'met' if forked < 2 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
