"""Errors raised by the library; the CLI turns them into one line on stderr."""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """Process exit codes of the `forensics` command."""

    OK = 0
    ERROR = 1
    USAGE = 2
    FINDINGS = 3
    INTEGRITY = 4


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
