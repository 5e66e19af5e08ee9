"""What an adapter is: a SQL mapping from raw lines to the staging columns.

Every request-log adapter reads the temp table ``chunk_lines(line_no, line)`` and returns one row
per record with the staging columns below (any it leaves out are NULL) and ``_error``, the reason
the record cannot be loaded (NULL when it can). `pipeline.py` then applies the shared steps
(credentials, normalisation, enrichment) once, for every format alike.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from forensics.ingest.decompress import Limits

# name -> DuckDB type of what an adapter may deliver.
STAGING: dict[str, str] = {
    "ts": "TIMESTAMPTZ",
    "request_id": "VARCHAR",
    "tenant_id": "VARCHAR",
    "user_id": "VARCHAR",
    "credential_id": "VARCHAR",  # a non-secret credential id the gateway logged
    "auth_header": "VARCHAR",  # raw Authorization value: fingerprinted, never stored
    "api_key": "VARCHAR",  # raw key from apikey / x-api-key headers or query: same
    "client_ip": "VARCHAR",
    "xff": "VARCHAR",
    "asn": "BIGINT",
    "as_org": "VARCHAR",
    "country": "VARCHAR",
    "city": "VARCHAR",
    "lat": "DOUBLE",
    "lon": "DOUBLE",
    "user_agent": "VARCHAR",
    "origin": "VARCHAR",
    "referer": "VARCHAR",
    "host": "VARCHAR",
    "port": "INTEGER",  # server port (vhost logs)
    "method": "VARCHAR",
    "uri": "VARCHAR",  # path and query as received
    "upstream_uri": "VARCHAR",  # path sent to the provider, when the gateway rewrote it
    "route": "VARCHAR",
    "provider": "VARCHAR",
    "model": "VARCHAR",
    "response_model": "VARCHAR",
    "stream": "BOOLEAN",
    "req_payload": "VARCHAR",  # request body JSON when logged
    "resp_payload": "VARCHAR",  # response body JSON when logged
    "input_tokens": "BIGINT",
    "output_tokens": "BIGINT",
    "cached_input_tokens": "BIGINT",
    "reasoning_tokens": "BIGINT",
    "total_tokens": "BIGINT",
    "tool_calls": "INTEGER",
    "finish_reason": "VARCHAR",
    "error_code": "VARCHAR",
    "session_id": "VARCHAR",
    "status": "INTEGER",
    "upstream_status": "INTEGER",
    "latency_ms": "DOUBLE",
    "request_bytes": "BIGINT",
    "response_bytes": "BIGINT",
    "log_cost": "DOUBLE",
}


# Raw text kept per quarantined record (credentials scrubbed first).
QUARANTINE_RAW_CHARS = 2000


def quarantine_rows(
    con: duckdb.DuckDBPyConnection, source_id: int, rows: list[tuple[int, str, str]]
) -> None:
    """Put (line, reason, raw) records that Python found bad into `quarantine`, scrubbed."""
    if rows:
        con.executemany(
            "INSERT INTO quarantine VALUES ($1, $2, scrub($3), left(scrub(left($4, 4 * $5)), $5))",
            [[source_id, line, reason, raw, QUARANTINE_RAW_CHARS] for line, reason, raw in rows],
        )


def head_json(head: list[str], n: int = 5) -> list[Any]:
    """The first `n` head lines that parse as JSON (for sniffers); a batch array gives its
    first element."""
    values = []
    for line in head[:n]:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        values.append(value[0] if isinstance(value, list) and value else value)
    return values


def json_records(record: str) -> str:
    """A SELECT of chunk_lines' records read as the struct `record` (json_transform's type
    text): `r`, one per line, or one per element of a line that holds a JSON array. `r` is NULL
    for a line that does not parse, and once for an array line that does not. Object lines are
    read without a list around each record: wrapping every record in a list to unnest it costs
    a third as much again as parsing it (a Kong log, 4 KB lines)."""
    one = record.replace("'", "''")
    many = f"[{one}]"
    return f"""
SELECT line_no, line, try(json_transform(line, '{one}')) AS r
FROM chunk_lines WHERE NOT json_opens(line, '[')
UNION ALL
SELECT line_no, line, unnest(coalesce(try(json_transform(line, '{many}')), [NULL])) AS r
FROM chunk_lines WHERE json_opens(line, '[')
"""


@dataclass(frozen=True)
class Staging:
    """One adapter's mapping: `source` is a SELECT over chunk_lines aliased as p downstream."""

    source: str
    columns: dict[str, str]
    error: str = "NULL"

    def sql(self) -> str:
        unknown = set(self.columns) - set(STAGING)
        if unknown:
            raise ValueError(f"not staging columns: {sorted(unknown)}")
        cols = ",\n  ".join(
            f"TRY_CAST({self.columns[name]} AS {typ}) AS {name}"
            if name in self.columns
            else f"NULL::{typ} AS {name}"
            for name, typ in STAGING.items()
        )
        return (
            "SELECT line_no, _error, CASE WHEN _error IS NOT NULL THEN line END AS _raw,\n"
            f"  {cols}\n"
            f"FROM (SELECT *, ({self.error}) AS _error FROM ({self.source}) p) p"
        )


# JWT claims that commonly carry the tenant (Entra ID `tid`, Auth0 / Okta custom claims)
DEFAULT_TENANT_CLAIMS = ("tenant_id", "tid", "tenant", "org_id")


@dataclass
class Options:
    """What the user told ingest about a file beyond its path."""

    keep_prompts: bool = False
    mapping: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)  # expansion and record length
    # A file with more than this share of its records quarantined fails (--max-quarantine-share).
    max_quarantine_share: float = 0.5
    # --force: a file already in the case (same content, or same path) replaces that source.
    replace: bool = False
    # --log-format: an Apache LogFormat or nginx log_format string for a text access log.
    log_format: str | None = None
    # --tenant-claim: the JWT claims that name the token's tenant, first match wins
    tenant_claims: tuple[str, ...] = DEFAULT_TENANT_CLAIMS


@dataclass
class Counts:
    """How a file's records were accounted for."""

    read: int = 0
    loaded: int = 0
    quarantined: int = 0
    blank: int = 0
    # requests a database's city placed in another country than their log's (enrichment.py)
    geo_disagreements: int = 0


class Adapter(ABC):
    """A request-log format."""

    name: str
    description: str
    kind: str = "requests"
    table: str = "requests"
    source_column: str | None = "source_id"
    auto_detect: bool = True
    # each line parses without the other lines of its chunk (not so a CSV row, which needs its
    # header): only then may some lines go through the canonical SELECT again on their own
    # (canonical.dense_secrets)
    lines_stand_alone: bool = True

    @abstractmethod
    def sniff(self, head: list[str]) -> bool:
        """True when the first non-blank lines of a file look like this format."""

    @abstractmethod
    def staging(self, options: Options) -> Staging:
        """The SQL mapping of chunk_lines to staging columns."""

    def check_options(self, options: Options) -> None:  # noqa: B027 - optional hook
        """Raise UsageError when the format needs an option that was not given."""


class ReferenceFormat(ABC):
    """A small user-provided table (revocations, allowlist, ...) or an enrichment database."""

    name: str
    description: str
    kind: str = "reference"
    table: str
    source_column: str | None = "source_id"  # how rows in `table` name their file
    auto_detect: bool = True

    @abstractmethod
    def sniff(self, head: list[str]) -> bool:
        """True when the first non-blank lines of a file look like this format."""

    @abstractmethod
    def load(
        self, con: duckdb.DuckDBPyConnection, path: Path, source_id: int, options: Options
    ) -> tuple[Counts, list[str]]:
        """Load the file inside the caller's transaction; return counts and warnings."""

    def check_options(self, options: Options) -> None:  # noqa: B027 - optional hook
        """Raise UsageError when the format needs an option that was not given."""


Format = Adapter | ReferenceFormat
