"""forensics: offline log forensics and reporting for abuse of AI APIs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forensics._version import __version__

if TYPE_CHECKING:
    from pathlib import Path

    from forensics.api import Case

__all__ = ["__version__", "open_case"]


def open_case(path: str | Path) -> Case:
    """Open a case read-only for notebooks: `Case.sql()`, `.requests()`, `.findings()`,
    `.incidents()`, each a polars DataFrame (see `forensics.api`).

    duckdb and polars are imported here, not by `import forensics`, so the CLI starts fast.
    """
    from forensics.api import open_case as _open_case

    return _open_case(path)
