"""What a detector's SELECT may call: only the case, nothing of the machine it runs on.

A detector is shared text (a `--rules` folder from a colleague, a pack from the internet), so it
is read as hostile. `refusals` walks DuckDB's own parse tree of the SELECT (`json_serialize_sql`)
and names every call a detector may not make:

- a table function other than the few that only make rows (`range`, `unnest`, ...) or the
  case's own table macros (`principal_requests`): that refuses `read_text`, `read_csv`, `glob`,
  `read_parquet`, `query(...)` (SQL in a string) and every other reader of files or settings;
- a file or URL named in FROM (`FROM '/etc/passwd'`, DuckDB's replacement scans);
- a scalar function DuckDB marks as having side effects (sequences: `nextval`, `currval`,
  `setval`; `setseed`, `random`, `uuid`, `write_log`, `sleep_ms`, ...), and the readers of the
  environment or configuration (`getenv`, `current_setting`).

`forensics detectors check` reports these as problems, and the runner refuses them again before
a detector runs, on a connection that is sandboxed besides (`case.db.sandbox`): what a parse
tree misses, the engine still refuses.

`Deadline` is the other limit: how long a detector may run (`forensics detect --timeout`).
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Iterator
from typing import Any

import duckdb

ROW_MAKERS = frozenset(
    {"range", "generate_series", "unnest", "repeat", "repeat_row", "json_each", "json_tree"}
)
"""Table functions that only turn their arguments into rows."""

ENVIRONMENT = {
    "getenv": "reads the environment",
    "current_setting": "reads the engine's configuration",
    "nextval": "advances a sequence of the case",
    "currval": "reads a sequence of the case",
    "setval": "sets a sequence of the case",
}
_NOWHERE = 2**64 - 1  # DuckDB's "no location"


def refusals(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[int, str]]:
    """Every call in `sql` a detector may not make, as (line, message), in text order.

    Text DuckDB cannot parse gives none: the parser's own error is reported where the SQL is
    bound. Names are checked against the functions of `con` (a case's connection); to check
    many detectors on one connection, build one `Guard` and ask it.
    """
    return Guard(con).refusals(sql)


class Guard:
    """The refusals of one connection: its catalog (table macros, functions with side effects)
    is read once, when the guard is made, or taken from another guard of the same case."""

    def __init__(self, con: duckdb.DuckDBPyConnection, like: Guard | None = None) -> None:
        self._con = con
        if like is None:
            self._macros, self._side_effects = _catalog(con)
        else:
            self._macros, self._side_effects = like._macros, like._side_effects

    def refusals(self, sql: str) -> list[tuple[int, str]]:
        """See the module function `refusals`."""
        [(tree,)] = self._con.execute("SELECT json_serialize_sql($sql)", {"sql": sql}).fetchall()
        parsed = json.loads(tree)
        if parsed.get("error"):
            return []
        newlines = [i for i, c in enumerate(sql) if c == "\n"]
        found: list[tuple[int, str]] = []
        for node, where in _nodes(parsed["statements"], 0):
            kind = node.get("type")
            message = None
            if kind == "TABLE_FUNCTION":
                name = str((node.get("function") or {}).get("function_name", "")).lower()
                if name not in ROW_MAKERS and name not in self._macros:
                    message = f"{name}(): {_why(name)}"
            elif kind == "BASE_TABLE" and any(c in str(node.get("table_name")) for c in "/\\.:"):
                message = f"FROM {node['table_name']!r}: {_why('')}"
            elif node.get("class") == "FUNCTION":
                name = str(node.get("function_name", "")).lower()
                if name in ENVIRONMENT:
                    message = f"{name}(): {ENVIRONMENT[name]}; {_READS_ONLY}"
                elif name in self._side_effects:
                    message = f"{name}(): has side effects; {_READS_ONLY}"
            if message is not None:
                found.append((bisect.bisect_left(newlines, min(where, len(sql))) + 1, message))
        return sorted(set(found))


_READS_ONLY = "a detector only reads the case"


def _why(name: str) -> str:
    if name.startswith(("read_", "parquet_", "sniff_", "glob")) or not name:
        return f"reads files; {_READS_ONLY} (files belong in `forensics ingest`)"
    return f"not a table function a detector may call; {_READS_ONLY}"


def _catalog(con: duckdb.DuckDBPyConnection) -> tuple[set[str], set[str]]:
    """The case's table macros, and the scalar functions DuckDB says have side effects."""
    rows = con.execute(
        "SELECT DISTINCT lower(function_name), function_type FROM duckdb_functions()"
        " WHERE function_type = 'table_macro'"
        " OR (function_type = 'scalar' AND has_side_effects)"
    ).fetchall()
    macros = {name for name, kind in rows if kind == "table_macro"}
    return macros, {name for name, kind in rows if kind == "scalar"}


def _nodes(value: Any, where: int) -> Iterator[tuple[dict[str, Any], int]]:
    """Every mapping of the parse tree with the nearest query location at or above it."""
    stack: list[tuple[Any, int]] = [(value, where)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, dict):
            location = item.get("query_location")
            if isinstance(location, int) and location != _NOWHERE:
                at = location
            yield item, at
            stack.extend((child, at) for child in item.values() if isinstance(child, dict | list))
        elif isinstance(item, list):
            stack.extend((child, at) for child in item if isinstance(child, dict | list))


class Deadline:
    """Interrupts the connection's running query once `seconds` have passed (None: never).

    The timer thread interrupts only while the block is still running: leaving the block and
    the timer firing are serialised by a lock, so a late timer cannot stop the next detector.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, seconds: float | None) -> None:
        self._con = con
        self._lock = threading.Lock()
        self._running = False
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire) if seconds is not None else None
        if self._timer is not None:
            self._timer.daemon = True

    def _expire(self) -> None:
        with self._lock:
            if self._running:
                self.expired = True
                self._con.interrupt()

    def __enter__(self) -> Deadline:
        self._running = True
        if self._timer is not None:
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._running = False
        if self._timer is not None:
            self._timer.cancel()
