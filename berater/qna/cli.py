"""`flask qna build|eval|ask`: build the index file, measure retrieval, try a question."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import click
from flask import current_app
from flask.cli import AppGroup
from tqdm import tqdm

from berater import PROJECT_ROOT
from berater.qna import faq as faq_file
from berater.qna import ids, segment
from berater.qna.answers import index_path
from berater.qna.bert import BertUnavailable, encoder_from_config
from berater.qna.corpus import CorpusError, Paragraph, load
from berater.qna.engine import MODES, Engine, Thresholds
from berater.qna.evaluate import Metrics, cross_validate, evaluate, load_questions, mean
from berater.qna.index import (
    HEADING_WEIGHT,
    NGRAM_WEIGHT,
    Index,
    IndexUnavailable,
    current_format,
    read_paragraphs,
)
from berater.qna.normalise import NO_SYNONYMS, Synonyms, SynonymsError, fold

if TYPE_CHECKING:
    from berater.qna.schemas import EvalFigures

qna_cli = AppGroup("qna", help="The handbook Q&A: build its index, evaluate it, ask it.")

Echo = Callable[[str], object]  # where a build's report goes, one line at a time
# progress(phase, done, total): a build's steps for a caller that shows them itself
Progress = Callable[[str, int, int], None]


def project_path(value: str | Path) -> Path:
    """A setting's path: absolute, or relative to the project folder."""
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path


def _userdict(path: str | None) -> list[str]:
    chosen = project_path(path or current_app.config["QNA_USERDICT"])
    if not chosen.is_file():
        raise click.ClickException(f"no user dictionary at {chosen}")
    return segment.read_userdict(chosen)


def _synonyms(path: str | None = None) -> Synonyms:
    chosen = path if path is not None else current_app.config.get("QNA_SYNONYMS", "")
    if not chosen:
        return NO_SYNONYMS
    try:
        return Synonyms.load(project_path(chosen))
    except FileNotFoundError:
        raise click.ClickException(f"no synonyms file at {project_path(chosen)}") from None
    except SynonymsError as exc:
        raise click.ClickException(str(exc)) from None


def _faq(path: Path | None) -> faq_file.Faq | None:
    if path is None:
        return None
    try:
        return faq_file.load(path)
    except CorpusError as exc:
        raise click.ClickException(str(exc)) from None


def _build(
    paragraphs: list[Paragraph],
    words: list[str],
    ngram_weight: float,
    heading_weight: float = HEADING_WEIGHT,
    synonyms: Synonyms = NO_SYNONYMS,
    faq: faq_file.Faq | None = None,
    progress: Progress | None = None,
) -> Index:
    with _Steps("segmenting", len(paragraphs), progress) as steps:
        return Index.build(
            paragraphs,
            words,
            ngram_weight=ngram_weight,
            heading_weight=heading_weight,
            synonyms=synonyms,
            faq=faq,
            progress=steps.add,
        )


class _Steps:
    """A build step's count: a progress bar on standard error, or `progress(phase, done,
    total)` when the caller shows it itself."""

    def __init__(self, phase: str, total: int, progress: Progress | None) -> None:
        self.phase, self.total, self.progress, self.done = phase, total, progress, 0
        self.bar = None
        if progress is None:
            self.bar = tqdm(total=total, desc=phase, unit="para", file=sys.stderr)

    def add(self, n: int) -> None:
        self.to(self.done + n)

    def to(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(done - self.done)
        elif self.progress is not None:
            self.progress(self.phase, done, self.total)
        self.done = done

    def __enter__(self) -> _Steps:
        return self

    def __exit__(self, *_: object) -> None:
        if self.bar is not None:
            self.bar.close()


def _report_synonyms(
    synonyms: Synonyms, paragraphs: list[Paragraph], echo: Echo = click.echo
) -> None:
    if not synonyms.groups:
        return
    unmatched = synonyms.unmatched(fold(f"{p.section} {p.text}") for p in paragraphs)
    echo(
        f"synonyms: {len(synonyms.groups)} groups, {len(unmatched)} matching nothing in the "
        "handbook"
    )
    for group in unmatched:
        echo(f"  matches nothing: {' '.join(group)}")


def _embed(engine: Engine, echo: Echo | None = None, progress: Progress | None = None) -> bool:
    """BERT vectors for the index's paragraphs when a BERT server answers; True if done."""
    if engine.encoder is None:
        return False
    paragraphs = len(engine.index)
    try:
        with _Steps("BERT", paragraphs, progress) as steps:
            engine.index.vectors = engine.embed_paragraphs(
                progress=lambda done, _total: steps.to(done)
            )
    except BertUnavailable as exc:
        message = f"BERT: no embeddings ({exc}); the index serves lexical search only"
        if echo is None:
            click.echo(message, err=True)
        else:
            echo(message)
        return False
    return True


def _load_corpus(corpus: str | None) -> list[Paragraph]:
    try:
        return load(project_path(corpus or current_app.config["QNA_CORPUS"]))
    except CorpusError as exc:
        raise click.ClickException(str(exc)) from None


def reviewed_path(target: Path) -> Path:
    """Where the build keeps the last edition whose references were reviewed."""
    return target.with_name(f"{target.stem}.reviewed{target.suffix}")


def _faq_path(path: str | None = None) -> Path | None:
    chosen = path if path is not None else current_app.config.get("QNA_FAQ", "")
    found = project_path(chosen) if chosen else None
    return found if found is not None and found.is_file() else None


def _question_paths(given: Sequence[str] = ()) -> list[Path]:
    names = list(given) or [
        n.strip() for n in str(current_app.config.get("QNA_QUESTIONS") or "").split(",")
    ]
    return [project_path(n) for n in names if n]


def _short(text: str, size: int = 40) -> str:
    return text if len(text) <= size else text[:size] + "…"


def check_references(
    paragraphs: list[Paragraph],
    baseline: list[Paragraph] | None,
    faq: Path | None,
    questions: list[Path],
    echo: Echo = click.echo,
) -> list[str]:
    """Print (`echo`) what changed since `baseline` and every reference to a changed, gone or
    unknown id; the problems, one line each (empty when every reference can be trusted)."""
    faqs = [faq] if faq is not None and faq.is_file() else []
    found = [q for q in questions if q.is_file()]
    for missing in sorted(set(questions) - set(found)):
        echo(f"questions file {ids.shown(missing)}: not found, not checked")
    try:
        refs = ids.references(faqs, found)
    except CorpusError as exc:
        raise click.ClickException(str(exc)) from None
    known = {p.id for p in paragraphs}
    suspect: dict[str, ids.Change] = {}
    if baseline is None:
        echo("ids: no earlier index to compare with")
    else:
        comparison = ids.compare(baseline, paragraphs)
        echo(
            f"ids against the earlier index: {comparison.kept} kept (same text or a small "
            f"edit), {len(comparison.changed)} changed, {len(comparison.gone)} gone, "
            f"{len(comparison.added)} new"
        )
        for change in comparison.changed:
            moved = f"; its old text is now {change.moved_to}" if change.moved_to else ""
            echo(
                f"  changed {change.id} (similarity {change.similarity:.2f}{moved})\n"
                f"      was: {_short(change.old)}\n      now: {_short(change.now)}"
            )
        for change in comparison.gone:
            moved = f"its text is now {change.moved_to}" if change.moved_to else "no match"
            echo(f"  gone {change.id} ({moved}): {_short(change.old)}")
        suspect = comparison.suspect
    problems = []
    for ref in refs:
        doubt = suspect.get(ref.id)
        if doubt is not None:
            what = "changed" if doubt.now else "gone"
            hint = f"; its old text is now {doubt.moved_to}" if doubt.moved_to else ""
            problems.append(f"{ref} names {ref.id} ({what}{hint})")
        elif ref.id not in known:
            problems.append(f"{ref} names {ref.id}, which the handbook does not have")
    checked = ", ".join(ids.shown(f) for f in [*faqs, *found]) or "none"
    echo(f"references checked: {len(refs)} in {checked}")
    if problems:
        echo(f"references to review: {len(problems)}")
        for line in problems:
            echo(f"  {line}")
    return problems


def build_index_file(
    corpus: str | None = None,
    userdict: str | None = None,
    out: str | Path | None = None,
    ngram_weight: float = NGRAM_WEIGHT,
    *,
    heading_weight: float = HEADING_WEIGHT,
    previous: str | None = None,
    questions: Sequence[str] = (),
    strict: bool = False,
    accept: bool = False,
    echo: Echo = click.echo,
    progress: Progress | None = None,
) -> Path:
    """Build the current app's index file from the corpus, check the ids the FAQ and question
    files name against the earlier index, and print a summary; the index file's path.

    The earlier index is `previous`, else the last reviewed edition (kept beside the index
    while references to changed ids wait for a review), else the index being replaced. With
    `strict`, a reference to review is an error and nothing is written; with `accept`, the
    references are taken as reviewed. The report goes to `echo` (a line at a time); with
    `progress`, the steps go there instead of progress bars on standard error."""
    started = time.perf_counter()
    paragraphs = _load_corpus(corpus)
    target = Path(out) if out else index_path(current_app)
    reviewed = reviewed_path(target)
    chosen = Path(previous) if previous else reviewed if reviewed.exists() else target
    try:
        baseline = read_paragraphs(chosen) if chosen.exists() or previous else None
    except IndexUnavailable as exc:
        if previous:
            raise click.ClickException(str(exc)) from None
        echo(f"ids: the earlier index cannot be read ({exc})")
        baseline = None
    faq, files = _faq_path(), _question_paths(questions)
    problems = check_references(paragraphs, baseline, faq, files, echo)
    if problems and baseline is not None and not accept:
        named = " ".join(ids.shown(f) for f in [faq, *files] if f is not None and f.is_file())
        source = corpus or current_app.config["QNA_CORPUS"]
        # The earlier edition as it will be on disk after this command.
        earlier = chosen if strict or previous or reviewed.exists() else reviewed
        echo(
            f"  to move them to the new ids: flask --app run qna ids migrate "
            f"{ids.shown(earlier)} {source} {named}\n"
            f"  once they are reviewed: flask --app run qna build --accept"
        )
    if problems and strict:
        raise click.ClickException(
            f"{len(problems)} references to review (--strict); the index was not written"
        )
    synonyms = _synonyms()
    _report_synonyms(synonyms, paragraphs, echo)
    index = _build(
        paragraphs,
        _userdict(userdict),
        ngram_weight,
        heading_weight,
        synonyms,
        _faq(faq),
        progress,
    )
    engine = Engine(index, encoder_from_config(current_app.config))
    embedded = _embed(engine, None if echo is click.echo else echo, progress)
    if problems and not accept:
        if baseline is not None and not reviewed.exists():
            shutil.copyfile(chosen, reviewed)
    elif reviewed.exists():
        reviewed.unlink()
    if progress is not None:
        progress("writing", 0, 1)
    size = index.save(target)
    seconds = time.perf_counter() - started
    echo(f"paragraphs: {len(index)}")
    echo(f"terms: {len(index.words.terms)} words, {len(index.chars.terms)} characters and bigrams")
    echo(f"FAQ: {len(index.faq)} entries")
    echo(f"BERT embeddings: {'yes' if embedded else 'no'}")
    echo(f"seconds: {seconds:.2f}")
    echo(f"written: {target} ({size / 1024:.0f} KiB)")
    return target


@qna_cli.command("build")
@click.option("--corpus", help="a handbook .txt file or folder, or a .jsonl corpus")
@click.option("--userdict", help="jieba user dictionary (default QNA_USERDICT)")
@click.option("--out", help="the index file (default QNA_INDEX or instance/qna-index.npz)")
@click.option(
    "--ngram-weight", default=NGRAM_WEIGHT, show_default=True, type=click.FloatRange(0, 1)
)
@click.option(
    "--heading-weight", default=HEADING_WEIGHT, show_default=True, type=click.FloatRange(0, 5)
)
@click.option("--if-missing", is_flag=True, help="do nothing when an index of this version exists")
@click.option("--previous", type=click.Path(exists=True, dir_okay=False), help="earlier index")
@click.option("--questions", multiple=True, help="question files to check (default QNA_QUESTIONS)")
@click.option("--strict", is_flag=True, help="a reference to review is an error")
@click.option("--accept", is_flag=True, help="the references listed have been reviewed")
def build_command(
    corpus: str | None,
    userdict: str | None,
    out: str | None,
    ngram_weight: float,
    heading_weight: float,
    if_missing: bool,
    previous: str | None,
    questions: tuple[str, ...],
    strict: bool,
    accept: bool,
) -> None:
    """Build the index file from the corpus; the workers serve it within a few seconds."""
    target = Path(out) if out else index_path(current_app)
    if if_missing and target.exists() and current_format(target):
        click.echo(f"kept: {target}")
        return
    build_index_file(
        corpus,
        userdict,
        target,
        ngram_weight,
        heading_weight=heading_weight,
        previous=previous,
        questions=questions,
        strict=strict,
        accept=accept,
    )


@qna_cli.command("eval")
@click.option("--corpus", help="the corpus to index (default QNA_CORPUS)")
@click.option(
    "--questions", required=True, type=click.Path(exists=True, dir_okay=False), help="JSONL"
)
@click.option("--userdict", help="jieba user dictionary (default QNA_USERDICT)")
@click.option("--synonyms", help="synonyms file (default QNA_SYNONYMS; '' for none)")
@click.option("--faq", help="FAQ file (default QNA_FAQ; '' for none)")
@click.option("--mode", type=click.Choice(MODES), default="lexical", show_default=True)
@click.option(
    "--ngram-weight", default=NGRAM_WEIGHT, show_default=True, type=click.FloatRange(0, 1)
)
@click.option(
    "--heading-weight", default=HEADING_WEIGHT, show_default=True, type=click.FloatRange(0, 5)
)
@click.option(
    "--cv",
    type=click.IntRange(2, 100),
    help="cross-validate over chapters in this many folds (lexical)",
)
def eval_command(
    corpus: str | None,
    questions: str,
    userdict: str | None,
    synonyms: str | None,
    faq: str | None,
    mode: str,
    ngram_weight: float,
    heading_weight: float,
    cv: int | None,
) -> None:
    """Build a fresh index from the corpus and print top-1, recall@3, MRR@10, how often an
    answer was right and how many unanswerable questions were declined; the FAQ's answers
    are counted apart. With --cv K, choose the weights and threshold on the other chapters'
    questions and print each fold's held-out figures and their mean."""
    try:
        asked = load_questions(questions)
    except CorpusError as exc:
        raise click.ClickException(str(exc)) from None
    faq_path = _faq_path(faq)
    index = _build(
        _load_corpus(corpus),
        _userdict(userdict),
        ngram_weight,
        heading_weight,
        _synonyms(synonyms),
        _faq(faq_path),
    )
    config = current_app.config
    engine = Engine(index, encoder_from_config(config), Thresholds.from_config(config))
    if mode != "lexical" and not _embed(engine):
        raise click.ClickException(f"mode {mode} needs a BERT server (BERT_HOST)")
    faq_shown = ids.shown(faq_path) if faq_path else "none"
    # Imported here: the console's build process (berater/qna/rebuild.py) imports this module
    # and needs none of what the services import.
    from berater.qna.services import eval_figures

    measured = partial(
        eval_figures,
        mode=mode,
        questions_file=ids.shown(questions),
        corpus=str(corpus or config["QNA_CORPUS"]),
    )
    if cv:
        held_out: list[Metrics] = []
        _cross_validate(engine, asked, cv, faq_shown, held_out)
        _save_eval(measured(held_out, cv_folds=cv))
        return
    try:
        metrics = evaluate(engine, asked, mode)  # type: ignore[arg-type]
        bare = evaluate(engine, asked, mode, use_faq=False) if len(index.faq) else metrics  # type: ignore[arg-type]
    except (CorpusError, BertUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"mode: {mode}, ngram weight: {ngram_weight}, heading weight: {heading_weight}, "
        f"threshold: {engine.thresholds.floor(mode)}"  # type: ignore[arg-type]
    )
    for line in metrics.lines():
        click.echo(line)
    click.echo(
        f"FAQ ({faq_shown}, {len(index.faq)} entries): answered {metrics.faq_questions} "
        f"questions first ({metrics.faq_right} right at top-1, "
        f"{metrics.faq_wrong_unanswerable} of them unanswerable)"
    )
    click.echo(f"without the FAQ: {bare.short()}")
    _save_eval(measured([metrics]))


def _save_eval(figures: EvalFigures) -> None:
    """Keep the figures beside the index file, for the console."""
    from berater.qna.services import save_eval

    try:
        path = save_eval(figures)
    except OSError as exc:
        click.echo(f"the figures were not saved for the console: {exc}", err=True)
        return
    click.echo(f"figures saved for the console: {ids.shown(path)}")


def _cross_validate(
    engine: Engine, asked: list, k: int, faq_shown: str, held_out: list[Metrics]
) -> None:
    """Print each fold and the mean, with the FAQ and without; the folds' held-out figures of
    the first pass (with the FAQ when there is one) go to `held_out`."""
    for use_faq in (True, False) if len(engine.index.faq) else (False,):
        try:
            folds, overall = cross_validate(engine, asked, k, use_faq)
        except CorpusError as exc:
            raise click.ClickException(str(exc)) from None
        if not held_out:
            held_out.extend(part.held_out for part in folds)
        label = f"with the FAQ ({faq_shown})" if use_faq else "without the FAQ"
        click.echo(f"cross-validation over chapters, {k} folds, {label}:")
        for part in folds:
            held = part.held_out
            click.echo(
                f"  fold {part.number} ({', '.join(part.chapters)}): chosen "
                f"{part.choice.describe()}, FAQ questions {part.choice.asked_weight}; "
                f"held out {held.questions} answerable, "
                f"{held.unanswerable} unanswerable: {held.short()}"
            )
        averaged = mean([part.held_out for part in folds])
        click.echo(
            f"  mean: top-1 {averaged['top1']:.3f}, recall@3 {averaged['recall3']:.3f}, "
            f"MRR@10 {averaged['mrr10']:.3f}, answered {averaged['answered']:.3f}, right "
            f"when answered {averaged['right_when_answered']:.3f}, declined "
            f"{averaged['declined']:.3f}"
        )
        click.echo(f"  chosen the same way on every question: {overall.describe()}")
        click.echo(f"  and the FAQ questions' weight: {overall.asked_weight}")


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
        faq = " (FAQ)" if hit.faq else ""
        click.echo(f"[{hit.score:.3f}] {hit.id}{faq} {hit.source}\n{hit.text}")
        if hit.highlight != hit.text:
            click.echo(f"  best: {hit.highlight}")
        click.echo()
    if not result.hits:
        click.echo("no answer; closest sections: " + ("; ".join(result.suggestions) or "none"))


ids_cli = AppGroup("ids", help="Paragraph ids across editions of the handbook.")
qna_cli.add_command(ids_cli)


def _edition(path: str) -> list[Paragraph]:
    """A handbook edition: a corpus (folder, .txt or .jsonl) or an index file (.npz)."""
    try:
        return read_paragraphs(path) if path.endswith(".npz") else load(path)
    except (CorpusError, IndexUnavailable) as exc:
        raise click.ClickException(str(exc)) from None


@ids_cli.command("migrate")
@click.argument("old")
@click.argument("new")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--yes", is_flag=True, help="rewrite without asking")
def migrate_command(old: str, new: str, files: tuple[str, ...], yes: bool) -> None:
    """Move the ids named in FILES (FAQ or .jsonl question files) from the OLD handbook's
    to the NEW one's, matching paragraphs by their text. OLD and NEW are corpora or index
    files (the build keeps the last reviewed edition as qna-index.reviewed.npz)."""
    mapping = ids.propose(_edition(old), _edition(new))
    try:
        plans = [ids.plan_rewrite(f, mapping) for f in files]
    except (CorpusError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    changes = sum(len(plan.changes) for plan in plans)
    for plan in plans:
        for line, before, after in plan.changes:
            click.echo(f"{plan.path}:{line}  {before} -> {after}")
        for ref in plan.unmatched:
            click.echo(f"{ref}  {ref.id}: no paragraph of the new handbook matches its text")
    unmatched = sum(len(plan.unmatched) for plan in plans)
    if not changes:
        click.echo("nothing to rewrite")
    elif yes or click.confirm(f"rewrite {changes} references in {len(files)} files?"):
        for plan in plans:
            if plan.changes:
                plan.save()
        click.echo(f"rewritten: {changes} references")
    else:
        click.echo("nothing rewritten")
    if unmatched:
        raise click.ClickException(f"{unmatched} references match nothing: edit them by hand")
