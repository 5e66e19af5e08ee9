"""Ad hoc SQL on a case: the one way `forensics sql` and the Python API open a case and run a
statement someone typed.

Reads: a case file, opened read-only through `case.db.connect` (macros and TEMP views
installed, nothing stored) and then sandboxed by `case.db.sandbox`: external access off (no
file, glob, network or extension; only the case itself) unless the caller allows reading files
(`forensics sql --allow-files`), and the configuration locked. Runs: exactly one statement of
the text, and only a kind that reads (SELECT in any of DuckDB's spellings: FROM-first, WITH,
VALUES, DESCRIBE, SHOW, SUMMARIZE; and EXPLAIN of one of those). Refuses, before running
anything: empty text, two statements or more, and every other kind (writes, COPY, ATTACH, SET,
PRAGMA, CALL, LOAD, ...) with a UsageError.
Writes: nothing; `forensics sql` streams the statement through `output.write_result`, `run`
returns its rows as a polars DataFrame (the Python API). Guarantees: every ad hoc statement
goes through `open_for_query` and `statement`: the statement check refuses what would write,
and the sandboxed connection could not write even if a statement got past it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from forensics.case import db
from forensics.errors import UsageError, duckdb_error

if TYPE_CHECKING:
    import polars as pl

READ_HINT = "use SELECT (or FROM, WITH, VALUES, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN SELECT)"


def open_for_query(
    path: str | Path | None, *, allow_files: bool = False
) -> duckdb.DuckDBPyConnection:
    """A read-only, sandboxed connection to an existing case, for ad hoc statements; with
    `allow_files` its statements may also read local files (read_csv, read_text, glob, ...)."""
    con = db.connect(path, read_only=True, create=False)
    try:
        db.sandbox(con, allow_files=allow_files)
    except BaseException:
        con.close()
        raise
    return con


def statement(con: duckdb.DuckDBPyConnection, text: str) -> str:
    """The text of the one read-only statement in `text`; UsageError for anything else."""
    if not text.strip():
        raise UsageError("the query is empty")
    statements = _parse(con, text)
    if not statements:
        raise UsageError("the query has no SQL statement (only comments or semicolons)")
    if len(statements) > 1:
        raise UsageError(
            f"the query has {len(statements)} statements; one is run at a time",
            hint="run them one by one, or join them with WITH / UNION ALL",
        )
    [only] = statements
    if only.type == duckdb.StatementType.EXPLAIN:
        explained = _explained(con, only.query)
        kind = "EXPLAIN" if explained is None else f"EXPLAIN {explained.type.name}"
        reads = explained is not None and explained.type == duckdb.StatementType.SELECT
    else:
        kind, reads = only.type.name, only.type == duckdb.StatementType.SELECT
    if not reads:
        raise UsageError(f"{kind} refused: ad hoc SQL on a case is read-only", hint=READ_HINT)
    return str(only.query)


def run(
    con: duckdb.DuckDBPyConnection, text: str, params: dict[str, Any] | None = None
) -> pl.DataFrame:
    """Run the one read-only statement of `text` with `params`; its rows as a polars frame."""
    query = statement(con, text)
    try:
        frame: pl.DataFrame = con.sql(query, params=params).pl()
    except duckdb.Error as e:
        raise duckdb_error(e) from e
    return frame


def _parse(con: duckdb.DuckDBPyConnection, text: str) -> list[duckdb.Statement]:
    try:
        return list(con.extract_statements(text))
    except duckdb.Error as e:
        raise duckdb_error(e) from e


def _explained(con: duckdb.DuckDBPyConnection, query: str) -> duckdb.Statement | None:
    """The statement after `EXPLAIN [ANALYZE] [(options)]` (EXPLAIN ANALYZE runs it), if one."""
    tokens = duckdb.tokenize(query)
    ends = [p for p, _ in tokens[1:]] + [len(query)]
    words = [
        (p, query[p:end].strip().upper())
        for (p, kind), end in zip(tokens, ends, strict=True)
        if kind != duckdb.token_type.comment
    ][1:]  # the first is EXPLAIN
    if words and words[0][1] in ("ANALYZE", "ANALYSE"):
        words = words[1:]
    if words and words[0][1] == "(":
        depth = 0
        for n, (_, word) in enumerate(words):
            depth += {"(": 1, ")": -1}.get(word, 0)
            if depth == 0:
                words = words[n + 1 :]
                break
    if not words:
        return None
    try:
        inner = con.extract_statements(query[words[0][0] :])
    except duckdb.Error:
        return None  # e.g. EXPLAIN (SELECT ...) UNION ...: read as options, so refused
    return inner[0] if len(inner) == 1 else None
