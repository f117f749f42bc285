"""`flask qna build|eval|ask`: build the index file, measure retrieval, try a question."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from tqdm import tqdm

from berater import PROJECT_ROOT
from berater.qna import segment
from berater.qna.answers import index_path
from berater.qna.bert import BertUnavailable, encoder_from_config
from berater.qna.corpus import CorpusError, Paragraph, load
from berater.qna.engine import MODES, Engine, Thresholds
from berater.qna.evaluate import evaluate, load_questions
from berater.qna.index import NGRAM_WEIGHT, Index

qna_cli = AppGroup("qna", help="The handbook Q&A: build its index, evaluate it, ask it.")


def project_path(value: str | Path) -> Path:
    """A setting's path: absolute, or relative to the project folder."""
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path


def _userdict(path: str | None) -> list[str]:
    chosen = project_path(path or current_app.config["QNA_USERDICT"])
    if not chosen.is_file():
        raise click.ClickException(f"no user dictionary at {chosen}")
    return segment.read_userdict(chosen)


def _build(paragraphs: list[Paragraph], words: list[str], ngram_weight: float) -> Index:
    with tqdm(total=len(paragraphs), desc="segmenting", unit="para", file=sys.stderr) as bar:
        return Index.build(paragraphs, words, ngram_weight=ngram_weight, progress=bar.update)


def _embed(engine: Engine) -> bool:
    """BERT vectors for the index's paragraphs when a BERT server answers; True if done."""
    if engine.encoder is None:
        return False
    paragraphs = len(engine.index)
    try:
        with tqdm(total=paragraphs, desc="BERT", unit="para", file=sys.stderr) as bar:
            engine.index.vectors = engine.embed_paragraphs(
                progress=lambda done, _total: bar.update(done - bar.n)
            )
    except BertUnavailable as exc:
        click.echo(f"BERT: no embeddings ({exc}); the index serves lexical search only", err=True)
        return False
    return True


def _load_corpus(corpus: str | None) -> list[Paragraph]:
    try:
        return load(project_path(corpus or current_app.config["QNA_CORPUS"]))
    except CorpusError as exc:
        raise click.ClickException(str(exc)) from None


def build_index_file(
    corpus: str | None = None,
    userdict: str | None = None,
    out: str | Path | None = None,
    ngram_weight: float = NGRAM_WEIGHT,
) -> Path:
    """Build the current app's index file from the corpus and print a summary; its path."""
    started = time.perf_counter()
    paragraphs = _load_corpus(corpus)
    index = _build(paragraphs, _userdict(userdict), ngram_weight)
    engine = Engine(index, encoder_from_config(current_app.config))
    embedded = _embed(engine)
    target = Path(out) if out else index_path(current_app)
    size = index.save(target)
    seconds = time.perf_counter() - started
    click.echo(f"paragraphs: {len(index)}")
    click.echo(
        f"terms: {len(index.words.terms)} words, {len(index.chars.terms)} characters and bigrams"
    )
    click.echo(f"BERT embeddings: {'yes' if embedded else 'no'}")
    click.echo(f"seconds: {seconds:.2f}")
    click.echo(f"written: {target} ({size / 1024:.0f} KiB)")
    return target


@qna_cli.command("build")
@click.option("--corpus", help="a handbook .txt file or folder, or a .jsonl corpus")
@click.option("--userdict", help="jieba user dictionary (default QNA_USERDICT)")
@click.option("--out", help="the index file (default QNA_INDEX or instance/qna-index.npz)")
@click.option(
    "--ngram-weight", default=NGRAM_WEIGHT, show_default=True, type=click.FloatRange(0, 1)
)
@click.option("--if-missing", is_flag=True, help="do nothing when the index file exists")
def build_command(
    corpus: str | None, userdict: str | None, out: str | None, ngram_weight: float, if_missing: bool
) -> None:
    """Build the index file from the corpus; restart the workers to serve it."""
    target = Path(out) if out else index_path(current_app)
    if if_missing and target.exists():
        click.echo(f"kept: {target}")
        return
    build_index_file(corpus, userdict, target, ngram_weight)


@qna_cli.command("eval")
@click.option("--corpus", help="the corpus to index (default QNA_CORPUS)")
@click.option(
    "--questions", required=True, type=click.Path(exists=True, dir_okay=False), help="JSONL"
)
@click.option("--userdict", help="jieba user dictionary (default QNA_USERDICT)")
@click.option("--mode", type=click.Choice(MODES), default="lexical", show_default=True)
@click.option(
    "--ngram-weight", default=NGRAM_WEIGHT, show_default=True, type=click.FloatRange(0, 1)
)
def eval_command(
    corpus: str | None, questions: str, userdict: str | None, mode: str, ngram_weight: float
) -> None:
    """Build a fresh index from the corpus and print top-1, recall@3 and MRR@10."""
    try:
        asked = load_questions(questions)
    except CorpusError as exc:
        raise click.ClickException(str(exc)) from None
    index = _build(_load_corpus(corpus), _userdict(userdict), ngram_weight)
    config = current_app.config
    engine = Engine(index, encoder_from_config(config), Thresholds.from_config(config))
    if mode != "lexical" and not _embed(engine):
        raise click.ClickException(f"mode {mode} needs a BERT server (BERT_HOST)")
    try:
        metrics = evaluate(engine, asked, mode)  # type: ignore[arg-type]
    except (CorpusError, BertUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"mode: {mode}, ngram weight: {ngram_weight}")
    for line in metrics.lines():
        click.echo(line)


@qna_cli.command("ask")
@click.argument("question")
@click.option("--mode", type=click.Choice(MODES), default="lexical", show_default=True)
@click.option("-k", default=3, show_default=True, type=click.IntRange(1, 10))
def ask_command(question: str, mode: str, k: int) -> None:
    """Ask the served index a question, as /api/qna would."""
    from berater.errors import ApiError
    from berater.extensions import qna

    try:
        result = qna.engine.search(question[:200], k=k, mode=mode)  # type: ignore[arg-type]
    except (ApiError, BertUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    for hit in result.hits:
        click.echo(f"[{hit.score:.3f}] {hit.id} {hit.source}\n{hit.text}\n")
    if not result.hits:
        click.echo("no answer; closest sections: " + ("; ".join(result.suggestions) or "none"))
