"""The engine's own SQL, shipped as `.sql` files beside this module (package data).

Long statements that the engine runs itself (views and macros of the case, the runner's
normalisation, suppression, incidents, report queries) live here as files, so they read and
diff as SQL, and a reader finds each definition in one place. `read("name")` returns the text
of `name.sql`; values are always bound as `$parameters`, never pasted in.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_HERE = Path(__file__).resolve().parent


@cache
def read(name: str) -> str:
    """The text of `forensics/sql/<name>.sql`."""
    return (_HERE / f"{name}.sql").read_text(encoding="utf-8")
