"""The handbook corpus: paragraphs with their chapter, section and page.

Two formats (data/qna/README.md documents both):

- the handbook text format, one file or a folder of `*.txt` files read in name order:
  `# chapter`, `## section`, `@page N`, `@id name`, and paragraphs separated by blank
  lines; a paragraph's id is the name of the `@id` line before it, or else its position,
  `chapter.section.paragraph` (1-based; section 0 when a paragraph comes before the
  chapter's first section; a paragraph with a name still counts in the positions, so naming
  one renumbers nothing);
- JSONL, one paragraph per line: `id`, `title`, `text`, and optional `chapter`, `section`,
  `page`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PAGE = re.compile(r"^@page\s+(\d{1,5})\s*$")
# A name never looks like a position (it starts with a letter), so the two cannot collide.
NAMED = re.compile(r"^@id\s+([A-Za-z][A-Za-z0-9_-]{0,63})\s*$")
MAX_PARAGRAPH = 20_000  # characters; longer means a missing blank line, not a paragraph


class CorpusError(ValueError):
    """The corpus is not in either format; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Paragraph:
    id: str
    text: str
    chapter: str = ""
    section: str = ""
    page: int | None = None
    title: str = ""

    @property
    def heading(self) -> str:
        """Title, or chapter and section, for showing where an answer comes from."""
        return self.title or " ".join(part for part in (self.chapter, self.section) if part)


def load(path: str | Path) -> list[Paragraph]:
    """Every paragraph of the corpus at `path` (a .jsonl file, a .txt file or a folder)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == ".txt" and p.is_file())
        if not files:
            raise CorpusError(f"{path}: no .txt files in this folder")
        paragraphs = list(parse_text(_lines(files)))
    elif path.suffix == ".jsonl":
        paragraphs = list(parse_jsonl(_lines([path])))
    elif path.is_file():
        paragraphs = list(parse_text(_lines([path])))
    else:
        raise CorpusError(f"{path}: no such file or folder")
    if not paragraphs:
        raise CorpusError(f"{path}: the corpus has no paragraphs")
    seen: set[str] = set()
    for paragraph in paragraphs:
        if paragraph.id in seen:
            raise CorpusError(f"{path}: paragraph id {paragraph.id!r} appears twice")
        seen.add(paragraph.id)
    return paragraphs


def _lines(files: Iterable[Path]) -> Iterator[tuple[str, int, str]]:
    for file in files:
        try:
            text = file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CorpusError(f"{file}: not UTF-8 ({exc.reason})") from None
        for number, line in enumerate(text.splitlines(), 1):
            yield str(file), number, line


def parse_text(lines: Iterable[tuple[str, int, str]]) -> Iterator[Paragraph]:
    """Paragraphs of the handbook text format, from (file, line number, line) triples."""
    chapter = section = ""
    chapter_no = section_no = paragraph_no = 0
    page: int | None = None
    buffer: list[str] = []
    where = ""
    named: tuple[str, str] | None = None  # (name, where) of an `@id` line not yet used

    def flush() -> Iterator[Paragraph]:
        nonlocal paragraph_no, named
        if not buffer:
            return
        text = "".join(buffer)
        buffer.clear()
        if chapter_no == 0:
            raise CorpusError(f"{where}: a paragraph comes before the first '# chapter' line")
        if len(text) > MAX_PARAGRAPH:
            raise CorpusError(f"{where}: paragraph longer than {MAX_PARAGRAPH} characters")
        paragraph_no += 1
        name, named = (named[0] if named else None), None
        yield Paragraph(
            id=name or f"{chapter_no}.{section_no}.{paragraph_no}",
            text=text,
            chapter=chapter,
            section=section,
            page=page,
        )

    def unused_name() -> None:
        if named:
            raise CorpusError(f"{named[1]}: '@id {named[0]}' is not followed by a paragraph")

    for file, number, raw in lines:
        line = raw.strip()
        where = f"{file}:{number}"
        if not line:
            yield from flush()
        elif line.startswith("## "):
            yield from flush()
            unused_name()
            section, section_no, paragraph_no = line[3:].strip(), section_no + 1, 0
            if chapter_no == 0:
                raise CorpusError(f"{where}: a section comes before the first '# chapter' line")
        elif line.startswith("# "):
            yield from flush()
            unused_name()
            chapter, chapter_no = line[2:].strip(), chapter_no + 1
            section, section_no, paragraph_no = "", 0, 0
        elif line.startswith("@id"):
            match = NAMED.match(line)
            if not match:
                raise CorpusError(
                    f"{where}: expected '@id name' (a letter, then letters, digits, '-' or "
                    f"'_', at most 64), got {line[:40]!r}"
                )
            yield from flush()
            unused_name()
            named = (match.group(1), where)
        elif line.startswith("@"):
            match = PAGE.match(line)
            if not match:
                raise CorpusError(f"{where}: expected '@page N' or '@id name', got {line[:40]!r}")
            yield from flush()
            page = int(match.group(1))
        elif line.startswith("#"):
            raise CorpusError(f"{where}: headings are '# chapter' or '## section'")
        else:
            # Chinese text wraps without spaces; a wrapped Latin line keeps one.
            if buffer and buffer[-1][-1:].isascii() and line[:1].isascii():
                buffer.append(" ")
            buffer.append(line)
    yield from flush()
    unused_name()


def jsonl_objects(lines: Iterable[tuple[str, int, str]]) -> Iterator[tuple[str, dict]]:
    """(`file:line`, object) for each non-blank line; CorpusError names a line that is not
    a JSON object."""
    for file, number, line in lines:
        if not line.strip():
            continue
        where = f"{file}:{number}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise CorpusError(f"{where}: not JSON ({exc})") from None
        if not isinstance(row, dict):
            raise CorpusError(f"{where}: each line must be a JSON object")
        yield where, row


def read_lines(path: str | Path) -> Iterator[tuple[str, int, str]]:
    """(file, line number, line) for each line of one UTF-8 file."""
    return _lines([Path(path)])


def parse_jsonl(lines: Iterable[tuple[str, int, str]]) -> Iterator[Paragraph]:
    """Paragraphs of a JSONL corpus: `id`, `title`, `text`, optional chapter/section/page."""
    for where, row in jsonl_objects(lines):
        unknown = set(row) - {"id", "title", "text", "chapter", "section", "page"}
        if unknown:
            raise CorpusError(f"{where}: unknown fields {', '.join(sorted(unknown))}")
        pid, text, title = row.get("id"), row.get("text"), row.get("title", "")
        if isinstance(pid, int) and not isinstance(pid, bool):
            pid = str(pid)
        if not isinstance(pid, str) or not pid.strip():
            raise CorpusError(f"{where}: 'id' must be a non-empty string")
        if not isinstance(text, str) or not text.strip():
            raise CorpusError(f"{where}: 'text' must be a non-empty string")
        if len(text) > MAX_PARAGRAPH:
            raise CorpusError(f"{where}: paragraph longer than {MAX_PARAGRAPH} characters")
        page = row.get("page")
        if page is not None and (not isinstance(page, int) or isinstance(page, bool)):
            raise CorpusError(f"{where}: 'page' must be a whole number")
        strings = {k: row.get(k, "") for k in ("chapter", "section")}
        if not isinstance(title, str) or not all(isinstance(v, str) for v in strings.values()):
            raise CorpusError(f"{where}: 'title', 'chapter' and 'section' must be strings")
        yield Paragraph(id=pid.strip(), text=text.strip(), page=page, title=title, **strings)


def main(argv: list[str] | None = None) -> None:
    """`python -m berater.qna.corpus PATH`: list each paragraph's id, page and opening."""
    import sys

    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        raise SystemExit("usage: python -m berater.qna.corpus CORPUS")
    try:
        paragraphs = load(args[0])
    except CorpusError as exc:
        raise SystemExit(str(exc)) from None
    for p in paragraphs:
        print(f"{p.id}\tp.{p.page}\t{p.chapter} / {p.section}\t{p.text[:40]}")
    print(f"{len(paragraphs)} paragraphs", file=sys.stderr)


if __name__ == "__main__":
    main()
