"""Finding evidence files: files, directories walked recursively, and globs with `**`.

Directory symlinks are followed but never into a directory already being walked, so a symlink
loop ends instead of recursing; a directory that cannot be listed is reported, never skipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from pathlib import Path

from forensics.errors import InputError

_WILD = re.compile(r"[*?[]")


def expand_paths(
    patterns: list[str], on_problem: Callable[[InputError], None] | None = None
) -> list[Path]:
    """Files, directories (recursively, hidden files skipped) and globs, in a stable order.

    A directory with no file to ingest and a glob that matches nothing are problems too: a
    mistyped path never ingests nothing quietly.

    Directory symlinks are followed, but never into a directory already being walked (a
    symlink loop ends there). A directory that cannot be listed is a problem handed to
    `on_problem` (raised when there is none), never silently nothing.
    """
    found: list[Path] = []

    def problem(error: InputError) -> None:
        if on_problem is None:
            raise error
        on_problem(error)

    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found.extend(_directory(pattern, problem))
        elif path.is_file():
            found.append(path)
        elif _WILD.search(pattern):
            files = _glob(pattern, problem)
            if not files:
                problem(InputError(pattern, "no such file, directory or glob match"))
            found.extend(files)
        else:
            problem(InputError(pattern, "no such file, directory or glob match"))
    unique: dict[Path, None] = {}
    for p in found:
        unique.setdefault(p.resolve(), None)
    return list(unique)


def _directory(pattern: str, problem: Callable[[InputError], None]) -> list[Path]:
    """The files under a directory; none at all is a problem (unless it could not be read,
    which is its own problem already)."""
    unreadable: list[InputError] = []

    def noted(error: InputError) -> None:
        unreadable.append(error)
        problem(error)

    files = list(_walk(Path(pattern), noted))
    if not files and not unreadable:
        problem(
            InputError(
                pattern,
                "no files to ingest in this directory (hidden files and folders, those"
                " starting with '.', are left out)",
            )
        )
    return files


def _listing(d: Path, problem: Callable[[InputError], None]) -> list[tuple[Path, bool, bool]]:
    """(path, is a directory, is a file) of each entry of `d` by name, symlinks followed."""
    try:
        entries = sorted(os.scandir(d), key=lambda e: e.name)
    except OSError as e:
        problem(InputError(d, f"cannot read this directory: {e.strerror or e}"))
        return []
    out = []
    for entry in entries:
        try:
            is_dir = entry.is_dir()
            out.append((d / entry.name, is_dir, not is_dir and entry.is_file()))
        except OSError:
            continue
    return out


def _identity(d: Path) -> tuple[int, int] | None:
    try:
        st = d.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _walk(
    root: Path,
    problem: Callable[[InputError], None],
    seen: frozenset[tuple[int, int]] = frozenset(),
) -> Iterator[Path]:
    """Every file under root, depth first in name order; a directory already on the way down
    (a symlink loop) is not entered again."""
    here = _identity(root)
    if here is None or here in seen:
        return
    seen = seen | {here}
    for path, is_dir, is_file in _listing(root, problem):
        if path.name.startswith("."):
            continue
        if is_dir:
            yield from _walk(path, problem, seen)
        elif is_file:
            yield path


def _glob(pattern: str, problem: Callable[[InputError], None]) -> list[Path]:
    """A glob with `**` (any number of directories) that never loops on directory symlinks
    and lists only the directories the pattern can reach."""
    parts = Path(pattern).parts
    fixed = 0
    while fixed < len(parts) and not _WILD.search(parts[fixed]):
        fixed += 1
    base = Path(*parts[:fixed]) if fixed else Path()
    if not base.is_dir():
        return []
    return sorted(set(_glob_in(base, parts[fixed:], problem, frozenset())))


def _glob_in(
    d: Path,
    pattern: tuple[str, ...],
    problem: Callable[[InputError], None],
    seen: frozenset[tuple[int, int]],
) -> Iterator[Path]:
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        here = _identity(d)
        if here is None or here in seen:
            return
        seen = seen | {here}
        if rest:
            yield from _glob_in(d, rest, problem, seen)
        for path, is_dir, is_file in _listing(d, problem):
            if path.name.startswith("."):
                continue  # as glob: wildcards do not match hidden names
            if is_dir:
                yield from _glob_in(path, pattern, problem, seen)
            elif is_file and not rest:
                yield path
        return
    for path, is_dir, is_file in _listing(d, problem):
        if path.name.startswith(".") and not head.startswith("."):
            continue
        if not fnmatchcase(path.name, head):
            continue
        if rest and is_dir:
            yield from _glob_in(path, rest, problem, seen)
        elif not rest and is_file:
            yield path
