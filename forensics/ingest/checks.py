"""What a file must pass before its ingest commits; each failure rolls the whole file back.

* reconciliation: the records read are exactly the ones stored plus the ones quarantined;
* stability: the file did not change while it was read (a log still being written);
* quarantine share: no more than `Options.max_quarantine_share` of its records quarantined
  (by default half). A file read as the wrong format quarantines nearly every record; keeping
  it would leave an empty-looking source and a quiet case. The error says which format the
  sniffer would pick when that differs from the one used, else the commonest reasons.

Messages describe a bad value's shape, never the value: the message quotes quarantine reasons
(written that way by every format), with any token that holds a number drawn as its shape.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb

from forensics.errors import InputError
from forensics.ingest import decompress
from forensics.ingest.base import Counts, Format
from forensics.ingest.formats import detect_format
from forensics.times import shape

REASONS_SHOWN = 2  # commonest quarantine reasons quoted when the format looks right
_REASON_CHARS = 120
_NUMBERISH = re.compile(r"\S*\d{3,}\S*")  # a token with 3+ digits in a row may be a value


def check_reconciles(
    con: duckdb.DuckDBPyConnection, fmt: Format, source_id: int, counts: Counts, path: Path
) -> None:
    """Fail unless read = stored in the format's table + stored in quarantine."""
    table = fmt.table
    loaded = (
        f"(SELECT count(*) FROM {table} WHERE {fmt.source_column} = $s)"
        if fmt.source_column
        else str(counts.loaded)
    )
    stored = con.execute(
        f"SELECT {loaded}, (SELECT count(*) FROM quarantine WHERE source_id = $s)",
        {"s": source_id},
    ).fetchall()[0]
    if (stored[0], stored[1]) != (counts.loaded, counts.quarantined) or counts.read != (
        counts.loaded + counts.quarantined
    ):
        raise InputError(
            path,
            f"counts do not reconcile: read {counts.read}, stored {stored[0]} in {table}"
            f" and {stored[1]} in quarantine; nothing from this file was kept",
        )


def check_unchanged(path: Path, before: os.stat_result, end: decompress.ReadEnd | None) -> None:
    """Fail the file if it changed while it was read (a log still being written)."""
    after = path.stat()
    read = end.raw_bytes if end is not None else before.st_size
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or (
        read != before.st_size
    ):
        raise InputError(
            path,
            f"the file changed while it was read ({before.st_size:,} bytes when ingest began,"
            f" {read:,} read, {after.st_size:,} now); nothing from it was kept",
            hint="ingest it again once it is complete (or ingest a copy)",
        )


def check_quarantine_share(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    source_id: int,
    counts: Counts,
    share: float,
    *,
    used: str,
    given: bool,
    head: list[str],
) -> None:
    """Fail the file when more than `share` of its records were quarantined.

    `used` is the format it was read as, `given` whether the user chose it (--format), `head`
    its first records (what the sniffer reads).
    """
    if counts.read == 0 or counts.quarantined <= share * counts.read:
        return
    message = (
        f"{counts.quarantined:,} of {counts.read:,} records quarantined as {used}, more than"
        f" --max-quarantine-share {share:g} of them; nothing from this file was kept"
    )
    raise InputError(path, f"{message}: {_share_hint(con, path, source_id, used, given, head)}")


def _share_hint(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    source_id: int,
    used: str,
    given: bool,
    head: list[str],
) -> str:
    """The format the sniffer would pick, or what went wrong with the records."""
    try:
        sniffed: str | None = detect_format(path, head)
    except InputError:
        sniffed = None  # no format, or more than one, fits its first records
    if given and sniffed is not None and sniffed != used:
        return f"it looks like {sniffed}: try --format {sniffed} or leave --format out"
    reasons = con.execute(
        "SELECT error, count(*) AS n FROM quarantine WHERE source_id = $s"
        " GROUP BY error ORDER BY n DESC, error LIMIT $k",
        {"s": source_id, "k": REASONS_SHOWN},
    ).fetchall()
    quoted = "; ".join(f"{_cut(str(reason))} ({n:,})" for reason, n in reasons)
    if not given:
        why = f"its first records look like {used}"
    elif sniffed == used:
        why = f"its first records look like {used} too"
    else:
        why = "its first records fit no single format"
    return (
        f"{why}, and the records were refused as: {quoted}"
        " (pass --max-quarantine-share 1 to keep it with its quarantine)"
    )


def _cut(reason: str) -> str:
    """A reason on one line, short, any token that may quote a value drawn as its shape (the
    reasons describe shapes already, but a few name a number: a timestamp in no known unit)."""
    text = _NUMBERISH.sub(lambda m: shape(m.group()), " ".join(reason.split()))
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"
