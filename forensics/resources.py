"""Where the shipped files live, in a checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_file(name: str) -> Path:
    """A reference file shipped inside the package (forensics/data/)."""
    return _PACKAGE / "data" / name


def shipped_dir(name: str) -> Path:
    """`queries` or `reports`: top level in a checkout, forensics/_data/ in a wheel."""
    installed = _PACKAGE / "_data" / name
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / name
