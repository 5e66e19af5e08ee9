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

The parse is the text's alone (`calls`); judging it needs the case's catalog (`Guard.judge`). A
detector's text is parsed once per process (`statement`, which loading fills): every run then
judges the same parse against its case. `forensics detectors check` reports these as problems,
and the runner refuses them again before a detector runs, on a connection that is sandboxed
besides (`case.db.sandbox`): what a parse tree misses, the engine still refuses.

`Deadline` is the other limit: how long a detector may run (`forensics detect --timeout`).
"""

from __future__ import annotations

import bisect
import functools
import json
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

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


class Call(NamedTuple):
    """A call in SQL text, from DuckDB's parse tree: kind is table_function, from (a FROM
    target) or function; line is where it is."""

    line: int
    kind: str
    name: str


class Statement(NamedTuple):
    """A detector's SQL as parsed once: the one statement without a trailing semicolon (None
    when the text is not exactly one SELECT: `kinds` says what it is) and what it calls."""

    query: str | None
    kinds: str
    calls: tuple[Call, ...]


_PARSER_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1024)
def statement(sql: str) -> Statement:
    """`sql` parsed, once per text in a process (loading parses every detector; each run then
    reuses it): parsing reads no catalog, so any connection gives the same answer."""
    with _PARSER_LOCK:
        con = _parser()
        statements = con.extract_statements(sql)
        kinds = ", ".join(s.type.name for s in statements) or "nothing"
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            return Statement(None, kinds, ())
        return Statement(statements[0].query, kinds, calls(con, sql))


@functools.cache
def _parser() -> duckdb.DuckDBPyConnection:
    """The process's one in-memory database for parsing (used under _PARSER_LOCK)."""
    return duckdb.connect()


def calls(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Call, ...]:
    """What `sql` calls, read from DuckDB's parse tree on `con` (any connection: parsing does
    not read the catalog): table functions, FROM targets and scalar functions, each with the
    line it is on, in text order. Text DuckDB cannot parse gives none: the parser's own error is
    reported where the SQL is bound."""
    [(tree,)] = con.execute("SELECT json_serialize_sql($sql)", {"sql": sql}).fetchall()
    parsed = json.loads(tree)
    if parsed.get("error"):
        return ()
    newlines = [i for i, c in enumerate(sql) if c == "\n"]
    found: set[Call] = set()
    for node, where in _nodes(parsed["statements"], 0):
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            call = ("table_function", (node.get("function") or {}).get("function_name", ""))
        elif kind == "BASE_TABLE":
            call = ("from", node.get("table_name"))
        elif node.get("class") == "FUNCTION":
            call = ("function", node.get("function_name", ""))
        else:
            continue
        line = bisect.bisect_left(newlines, min(where, len(sql))) + 1
        found.add(Call(line, call[0], str(call[1])))
    return tuple(sorted(found))


def refusals(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[int, str]]:
    """Every call in `sql` a detector may not make, as (line, message), in text order.

    Names are checked against the functions of `con` (a case's connection); to check many
    detectors on one connection, build one `Guard` and ask it.
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
        return self.judge(calls(self._con, sql))

    def judge(self, found: tuple[Call, ...]) -> list[tuple[int, str]]:
        """The refused among `found` (from `calls` or `statement`), as (line, message), in
        text order."""
        refused: list[tuple[int, str]] = []
        for line, kind, name in found:
            message = None
            lower = name.lower()
            if kind == "table_function":
                if lower not in ROW_MAKERS and lower not in self._macros:
                    message = f"{lower}(): {_why(lower)}"
            elif kind == "from":
                if any(c in name for c in "/\\.:"):
                    message = f"FROM {name!r}: {_why('')}"
            elif lower in ENVIRONMENT:
                message = f"{lower}(): {ENVIRONMENT[lower]}; {_READS_ONLY}"
            elif lower in self._side_effects:
                message = f"{lower}(): has side effects; {_READS_ONLY}"
            if message is not None:
                refused.append((line, message))
        return sorted(set(refused))


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
