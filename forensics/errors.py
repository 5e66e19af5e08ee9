"""Errors raised by the library; the CLI prints each as one `Error:` line on stderr, with its
hint (which may run over several lines) below it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """Process exit codes of the `forensics` command."""

    OK = 0
    ERROR = 1
    USAGE = 2
    FINDINGS = 3
    INTEGRITY = 4
    NOT_ANALYSED = 5  # --fail-on: the evidence asked about was not (fully) analysed


class ForensicsError(Exception):
    """Base class: a problem the user can act on, shown as one line."""

    exit_code: ExitCode = ExitCode.ERROR
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class InputError(ForensicsError):
    """A file (optionally a line of it) that cannot be read as asked."""

    def __init__(
        self, path: str | Path, message: str, *, line: int | None = None, hint: str | None = None
    ) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}", hint=hint)
        self.path = str(path)
        self.line = line


class CaseError(ForensicsError):
    """The case database cannot be used (other schema version, not a case, locked)."""


class IntegrityError(ForensicsError):
    """Evidence on disk no longer matches what was ingested."""

    exit_code = ExitCode.INTEGRITY


class UsageError(ForensicsError):
    """Options that do not fit together."""

    exit_code = ExitCode.USAGE


class QueryError(ForensicsError):
    """DuckDB refused a query. `line` is the line of the SQL it names (`LINE n:`), if any;
    `one_line` is message and suggestions together, for places that store one string."""

    def __init__(
        self, message: str, *, hint: str | None = None, line: int | None = None, one_line: str = ""
    ) -> None:
        super().__init__(message, hint=hint)
        self.line = line
        self.one_line = one_line or message


# --- DuckDB's errors ------------------------------------------------------------------------
#
# DuckDB puts what helps after its first line: `Did you mean "requests"?`, `Candidate bindings:`,
# an indented list of candidate functions, and `LINE n:` with a caret line under the culprit.
# These functions keep all of it, compacted; errors.py itself never imports duckdb (the text
# is enough), which keeps `forensics --help` fast.

_LINE = re.compile(r"^LINE (\d+):")
_MAX_LISTED = 5  # entries of an indented list (candidate functions) before "... and N more"
_MAX_NOTES = 12  # lines of notes before the rest is left out


@dataclass
class _Note:
    text: str
    entries: list[str] = field(default_factory=list)
    more: int = 0


def duckdb_error(error: BaseException, where: str | None = None) -> QueryError:
    """The error to raise for a `duckdb.Error`: DuckDB's first line as the message (after
    `where`, e.g. the detector's path), the rest that helps as a multi-line hint.

    Use it as `raise duckdb_error(e, str(path)) from e`.
    """
    first, notes, context, line = _split(error)
    message = f"{where}: {first}" if where else first
    hint_lines: list[str] = []
    for note in notes:
        hint_lines.append(note.text)
        hint_lines.extend(f"  {entry}" for entry in note.entries)
        if note.more:
            hint_lines.append(f"  ... and {note.more} more")
    hint_lines.extend(context)
    summary = " ".join([message, *(_inline(note) for note in notes)])
    return QueryError(message, hint="\n".join(hint_lines) or None, line=line, one_line=summary)


def describe_duckdb_error(error: BaseException, where: str | None = None) -> str:
    """The same as one line of text (message, then suggestions; no caret), for places that
    store an error string, such as the runner's error per detector or a `path:line` problem."""
    return duckdb_error(error, where).one_line


def _inline(note: _Note) -> str:
    if not note.entries:
        return note.text
    listed = "; ".join(note.entries) + (f"; ... and {note.more} more" if note.more else "")
    return f"{note.text} {listed}"


def _split(error: BaseException) -> tuple[str, list[_Note], list[str], int | None]:
    """DuckDB's text as its first line, its notes, its `LINE n:` + caret lines and that n."""
    lines = [raw.rstrip() for raw in str(error).splitlines() if raw.strip()]
    if not lines:
        return type(error).__name__, [], [], None
    notes: list[_Note] = []
    context: list[str] = []
    line: int | None = None
    left_out = 0
    for raw in lines[1:]:
        text = raw.strip()
        found = _LINE.match(text)
        if found:
            context.append(raw)
            line = int(found.group(1))
        elif context and set(text) == {"^"}:
            context.append(raw)  # unstripped: the caret keeps its column under LINE n:
        elif notes and notes[-1].text.endswith(":") and raw[0] in " \t":
            if len(notes[-1].entries) < _MAX_LISTED:
                notes[-1].entries.append(text)
            else:
                notes[-1].more += 1
        elif len(notes) < _MAX_NOTES:
            if text.startswith("Candidate bindings: : "):  # DuckDB's doubled colon
                text = text.replace(": : ", ": ", 1)
            notes.append(_Note(text))
        else:
            left_out += 1
    if left_out:
        notes.append(_Note(f"(and {left_out} more lines)"))
    return lines[0].strip(), notes, context, line
