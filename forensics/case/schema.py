"""The case-database contract: every table and column, its type, meaning and standard name.

This module is the one place the schema is written down. `db.py` creates the tables from it and
`forensics schema` prints it, so the documentation cannot drift from the database.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 4  # 2: severity ENUM, run_detectors, superseded findings, stored costs
# 3: client_host, port, asn_source, geo_source per field group
# 4: incidents.primary_detector, run_detectors.explains (the primary diagnosis),
# requests.client_kind, client_net, token_audience, token_tenant


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str
    standard: str = ""  # the OpenTelemetry / ECS attribute it corresponds to, if any


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]

    def ddl(self) -> str:
        cols = ",\n  ".join(f"{c.name} {c.type}" for c in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n  {cols}\n)"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


C = Column

# The vocabularies of the allowlist and triage tables (the CLI's choices are these).
ALLOW_KINDS = ("asn", "ip", "cidr", "tenant", "credential", "user", "provider_key", "user_agent")
PRINCIPAL_TYPES = ("tenant", "credential", "user", "ip", "asn", "cidr", "provider_key")
TRIAGE_STATUSES = ("open", "investigating", "false_positive", "accepted_risk", "resolved")

META = Table(
    "meta",
    "Case settings: schema version, creating tool version, per-case fingerprint salt.",
    (
        C("key", "VARCHAR PRIMARY KEY", "setting name"),
        C("value", "VARCHAR", "setting value"),
    ),
)

SOURCES = Table(
    "sources",
    "One row per ingested file: what it was, its hash, and how every record was accounted for.",
    (
        C("source_id", "INTEGER PRIMARY KEY", "case-local id of the file"),
        C("path", "VARCHAR", "absolute path at ingest time", "file.path"),
        C("sha256", "VARCHAR", "SHA-256 of the file bytes as read at ingest", "file.hash.sha256"),
        C("bytes", "BIGINT", "file size on disk (the bytes read and hashed)", "file.size"),
        C("format", "VARCHAR", "adapter that parsed it (kong, combined, envoy, ...)"),
        C("kind", "VARCHAR", "requests | reference | enrichment | usage"),
        C("ingested_at", "TIMESTAMPTZ", "when the ingest committed", "event.ingested"),
        C("tool_version", "VARCHAR", "forensics version that ingested it"),
        C("rows_read", "BIGINT", "records read (non-blank lines or array elements)"),
        C("rows_loaded", "BIGINT", "records stored in the target table"),
        C("rows_quarantined", "BIGINT", "records stored in quarantine instead"),
        C("lines_blank", "BIGINT", "blank lines (no record, not counted as read)"),
        C("options", "JSON", "ingest options that shaped the rows (mapping file, keep-prompts)"),
        C(
            "content_sha256",
            "VARCHAR",
            "SHA-256 of the decompressed content (= sha256 for a plain file); a .gz or .zst"
            " copy of an ingested file is recognised by it and skipped",
        ),
    ),
)

QUARANTINE = Table(
    "quarantine",
    "Every record that could not be loaded, with where it was and why. Raw text is redacted.",
    (
        C("source_id", "INTEGER", "file it came from (sources.source_id)"),
        C("line_no", "BIGINT", "1-based line number in the decompressed file", "log.file.line"),
        C("error", "VARCHAR", "why it could not be loaded", "error.message"),
        C("raw", "VARCHAR", "the record, credentials replaced by fingerprints, cut to 2,000 chars"),
    ),
)

REQUESTS = Table(
    "requests",
    "One row per API request seen at the gateway, in canonical columns.",
    (
        C("ts", "TIMESTAMPTZ", "request start, UTC", "@timestamp"),
        C("request_id", "VARCHAR", "gateway's own request id", "http.request.id"),
        C("source_id", "INTEGER", "file it came from (sources.source_id)"),
        C("line_no", "BIGINT", "1-based line in that file", "log.file.line"),
        C("format", "VARCHAR", "adapter that parsed it"),
        C(
            "tenant_id",
            "VARCHAR",
            "tenant: consumer, team, project or workspace",
            "organization.id",
        ),
        C("user_id", "VARCHAR", "end user named by the request or basic auth", "enduser.id"),
        C("credential_id", "VARCHAR", "credential: gateway credential id or key fingerprint"),
        C("credential_type", "VARCHAR", "api_key | jwt | oauth | basic | unknown"),
        C("key_fingerprint", "VARCHAR", "cred:<hmac 12 hex>:<last 4> of a raw key seen in the log"),
        C("token_id", "VARCHAR", "JWT jti"),
        C("issuer", "VARCHAR", "JWT iss"),
        C("key_id", "VARCHAR", "JWT header kid"),
        C("token_iat", "TIMESTAMPTZ", "JWT iat"),
        C("token_exp", "TIMESTAMPTZ", "JWT exp"),
        C("scopes", "VARCHAR[]", "JWT scope / scp"),
        C("client_id", "VARCHAR", "JWT client_id / azp / cid"),
        C("token_audience", "VARCHAR[]", "JWT aud (a string or a list)"),
        C(
            "token_tenant",
            "VARCHAR",
            "JWT tenant claim: the first of --tenant-claim, else tenant_id, tid, tenant, org_id",
        ),
        C(
            "client_ip",
            "VARCHAR",
            "client address after the gateway's real-IP handling; only an IP address (any other"
            " text in the log's address field is in client_addr_raw, never a principal)",
            "client.address",
        ),
        C(
            "client_net",
            "VARCHAR",
            "client_ip's network block: IPv4 /24 (203.0.113.0/24), IPv6 /64 (2001:db8:0:1::/64)",
        ),
        C(
            "client_host",
            "VARCHAR",
            "a host name in the log's address field (HostnameLookups, a resolver in front),"
            " lower case; client_ip is then NULL",
            "client.domain",
        ),
        C(
            "client_addr_raw",
            "VARCHAR",
            "the log's client address when it is neither an IP address nor a host name"
            " (credentials scrubbed); NULL when client_ip or client_host holds the address",
        ),
        C(
            "xff",
            "VARCHAR",
            "X-Forwarded-For chain as logged",
            "http.request.header.x-forwarded-for",
        ),
        C("asn", "BIGINT", "autonomous system of client_ip", "source.as.number"),
        C("as_org", "VARCHAR", "AS organisation name", "source.as.organization.name"),
        C("asn_category", "VARCHAR", "hosting | enterprise_egress | privacy_relay | mobile | isp"),
        C("country", "VARCHAR", "ISO 3166 alpha-2, upper case", "client.geo.country_iso_code"),
        C("city", "VARCHAR", "city name when known", "client.geo.locality.name"),
        C("lat", "DOUBLE", "latitude (city, or country centroid)", "client.geo.location.lat"),
        C("lon", "DOUBLE", "longitude (city, or country centroid)", "client.geo.location.lon"),
        C(
            "asn_source",
            "VARCHAR",
            "where asn/as_org came from: log | iptoasn | mmdb-asn | mmdb-city",
        ),
        C(
            "geo_source",
            "VARCHAR",
            "where country/city/lat/lon came from: log | iptoasn | mmdb-asn | mmdb-city | centroid"
            " (a city is kept only when its country agrees with the country used)",
        ),
        C("user_agent", "VARCHAR", "User-Agent, credentials scrubbed", "user_agent.original"),
        C("origin", "VARCHAR", "Origin header (browser calls)", "http.request.header.origin"),
        C(
            "client_kind",
            "VARCHAR",
            "web (Origin header or browser agent) | app (a mobile or desktop app's HTTP stack) |"
            " NULL (server, script, declared crawler)",
        ),
        C("referer", "VARCHAR", "Referer header", "http.request.referrer"),
        C("host", "VARCHAR", "requested host (virtual host)", "server.address"),
        C("port", "INTEGER", "server port the request came in on (vhost logs)", "server.port"),
        C("method", "VARCHAR", "HTTP method", "http.request.method"),
        C("path", "VARCHAR", "URL path without query string", "url.path"),
        C("query", "VARCHAR", "query string, credentials scrubbed", "url.query"),
        C("route", "VARCHAR", "gateway route name", "http.route"),
        C(
            "endpoint",
            "VARCHAR",
            "chat | responses | completions | embeddings | images | audio | moderation | other",
            "gen_ai.operation.name",
        ),
        C("provider", "VARCHAR", "AI provider behind the gateway", "gen_ai.provider.name"),
        C("model", "VARCHAR", "model requested", "gen_ai.request.model"),
        C("response_model", "VARCHAR", "model that answered", "gen_ai.response.model"),
        C(
            "model_family",
            "VARCHAR",
            "model without date/version suffix (gpt-4o, claude-3-5-sonnet)",
        ),
        C("stream", "BOOLEAN", "streaming request"),
        C("prompt_chars", "INTEGER", "characters of prompt text in the request body"),
        C(
            "prompt_prefix_fp",
            "UBIGINT",
            "64-bit hash of the normalised first 64 chars of the last user message",
        ),
        C(
            "prompt_text",
            "VARCHAR",
            "last user message, only with --keep-prompts",
            "gen_ai.input.messages",
        ),
        C("input_tokens", "BIGINT", "input tokens, cached included", "gen_ai.usage.input_tokens"),
        C("output_tokens", "BIGINT", "output tokens", "gen_ai.usage.output_tokens"),
        C(
            "cached_input_tokens",
            "BIGINT",
            "input tokens read from cache",
            "gen_ai.usage.cache_read.input_tokens",
        ),
        C("reasoning_tokens", "BIGINT", "reasoning tokens (part of output)"),
        C("total_tokens", "BIGINT", "total tokens as reported"),
        C("tool_calls", "INTEGER", "tool calls in the response"),
        C(
            "finish_reason",
            "VARCHAR",
            "first finish / stop reason",
            "gen_ai.response.finish_reasons",
        ),
        C("error_code", "VARCHAR", "provider error code or type (content_filter, ...)"),
        C("session_id", "VARCHAR", "session or conversation id", "session.id"),
        C("status", "INTEGER", "HTTP status sent to the client", "http.response.status_code"),
        C("upstream_status", "INTEGER", "HTTP status from the upstream provider"),
        C(
            "error_type",
            "VARCHAR",
            "rate_limited | content_filter | auth | invalid | server",
            "error.type",
        ),
        C("latency_ms", "DOUBLE", "request duration in ms", "event.duration"),
        C("request_bytes", "BIGINT", "request size in bytes", "http.request.body.size"),
        C("response_bytes", "BIGINT", "response size in bytes", "http.response.body.size"),
        C("log_cost", "DOUBLE", "cost as the gateway logged it (Kong ai.proxy.usage.cost)"),
        C("est_cost_usd", "DOUBLE", "estimated cost in USD from the prices table"),
    ),
)

USAGE = Table(
    "usage",
    "Provider-side usage buckets (OpenAI Usage/Costs API, Anthropic usage/cost report, LiteLLM"
    " daily spend), one row per bucket and grouping, deduplicated across overlapping exports.",
    (
        C("source_id", "INTEGER", "file it came from"),
        C("line_no", "BIGINT", "record position in that file (line, or bucket/result index)"),
        C(
            "source_format",
            "VARCHAR",
            "openai_usage | openai_costs | anthropic_usage | anthropic_cost | litellm_daily",
        ),
        C("provider", "VARCHAR", "openai | anthropic | ...", "gen_ai.provider.name"),
        C("bucket_start", "TIMESTAMPTZ", "bucket start, UTC"),
        C("bucket_end", "TIMESTAMPTZ", "bucket end, UTC"),
        C("bucket_width", "VARCHAR", "1m | 1h | 1d"),
        C("org_id", "VARCHAR", "organisation"),
        C("project_id", "VARCHAR", "project / workspace / team", "organization.id"),
        C("api_key_id", "VARCHAR", "provider's key id (never the key)"),
        C("user_id", "VARCHAR", "provider user / account", "enduser.id"),
        C("model", "VARCHAR", "model as the provider reports it", "gen_ai.request.model"),
        C("model_family", "VARCHAR", "model without date/version suffix"),
        C("operation", "VARCHAR", "completions | embeddings | images | audio_speeches | ..."),
        C("service_tier", "VARCHAR", "service tier"),
        C("batch", "BOOLEAN", "batch API"),
        C(
            "requests",
            "BIGINT",
            "model requests (OpenAI num_model_requests, LiteLLM api_requests); OpenAI file"
            " searches, which report none, give their search calls (num_requests)",
        ),
        C(
            "input_tokens",
            "BIGINT",
            "input tokens, cache reads and writes included",
            "gen_ai.usage.input_tokens",
        ),
        C("input_uncached_tokens", "BIGINT", "input tokens neither read from nor written to cache"),
        C("cached_input_tokens", "BIGINT", "cache reads", "gen_ai.usage.cache_read.input_tokens"),
        C(
            "cache_creation_input_tokens",
            "BIGINT",
            "cache writes (all TTLs)",
            "gen_ai.usage.cache_creation.input_tokens",
        ),
        C("output_tokens", "BIGINT", "output tokens", "gen_ai.usage.output_tokens"),
        C(
            "other_units",
            "DOUBLE",
            "the result's own count in the unit other_unit_name names",
        ),
        C(
            "other_unit_name",
            "VARCHAR",
            "images | characters | seconds | bytes | sessions | web_searches | file_searches"
            " | quantity",
        ),
        C("cost", "DOUBLE", "cost in major currency units (cents converted)"),
        C("currency", "VARCHAR", "ISO 4217, upper case"),
        C("line_item", "VARCHAR", "cost line item / description"),
        C("extra", "JSON", "fields of the record this version does not map (kept, not dropped)"),
        C("dedupe_key", "VARCHAR", "provider, format, bucket and grouping keys: one row per key"),
    ),
)

KNOWN_KEYS = Table(
    "known_keys",
    "Provider keys that belong to the gateway (user CSV provider,api_key_id,label).",
    (
        C("provider", "VARCHAR", "provider", "gen_ai.provider.name"),
        C("api_key_id", "VARCHAR", "provider's key id"),
        C("label", "VARCHAR", "what the key is for"),
        C("source_id", "INTEGER", "file it came from"),
        C("line_no", "BIGINT", "line in that file"),
    ),
)

REVOCATIONS = Table(
    "revocations",
    "Credentials revoked or rotated, and when (user-provided CSV).",
    (
        C("credential_id", "VARCHAR", "credential id as logged, or the fingerprint of a raw key"),
        C("revoked_at", "TIMESTAMPTZ", "revocation time, UTC"),
        C("source_id", "INTEGER", "file it came from"),
        C("line_no", "BIGINT", "line in that file"),
    ),
)

KEY_INVENTORY = Table(
    "key_inventory",
    "The gateway's API keys as its key management knows them (user CSV `--format"
    " key-inventory`, header credential_id|key,owner_tenant,created_at,expires_at,scopes,label):"
    " who owns each key, when it was made and when it expires. A raw key is stored only as its"
    " fingerprint.",
    (
        C(
            "credential_id",
            "VARCHAR",
            "credential id as logged (Kong credential id, LiteLLM key hash), or the fingerprint"
            " of a raw key (a `key` column is fingerprinted whatever its shape)",
        ),
        C("owner_tenant", "VARCHAR", "tenant that owns the key, as logged (NULL = not given)"),
        C("created_at", "TIMESTAMPTZ", "when the key was created, UTC (NULL = not given)"),
        C("expires_at", "TIMESTAMPTZ", "when the key expires, UTC (NULL = never)"),
        C("scopes", "VARCHAR[]", "scopes or permissions granted to the key"),
        C("label", "VARCHAR", "what the key is for"),
        C("source_id", "INTEGER", "file it came from"),
        C("line_no", "BIGINT", "line in that file"),
    ),
)

RETIRED_KEYS = Table(
    "retired_keys",
    "JWT signing keys (kid) and issuers retired, and when (user-provided CSV): a token signed"
    " by one should not be accepted after that time.",
    (
        C("issuer", "VARCHAR", "JWT iss of the retired issuer, or of the retired key (NULL = any)"),
        C("key_id", "VARCHAR", "JWT header kid of the retired key (NULL = every key of issuer)"),
        C("retired_at", "TIMESTAMPTZ", "retirement time, UTC"),
        C("reason", "VARCHAR", "why it was retired (rotation, compromise, ...)"),
        C("source_id", "INTEGER", "file it came from"),
        C("line_no", "BIGINT", "line in that file"),
    ),
)

ALLOWLIST = Table(
    "allowlist",
    "Known-good principals and networks that suppress findings: a user's CSV, `forensics allow"
    " add`, or a false positive triaged with --suppress-similar. Rows are never deleted:"
    " `allow remove` marks them removed.",
    (
        C("kind", "VARCHAR", " | ".join(ALLOW_KINDS)),
        C("value", "VARCHAR", "the value to match"),
        C("detectors", "VARCHAR[]", "detector id globs it applies to (empty = all)"),
        C("reason", "VARCHAR", "why it is allowed (shown on suppressed findings)"),
        C("expires", "TIMESTAMPTZ", "after this time the entry no longer applies"),
        C("source_id", "INTEGER", "file it came from (NULL: added with the CLI)"),
        C("line_no", "BIGINT", "line in that file"),
        C("entry_id", "VARCHAR", "stable id (`allow list`, `allow remove`; unique prefixes)"),
        C("added_by", "VARCHAR", "who added it with the CLI (NULL: from a file)"),
        C("added_at", "TIMESTAMPTZ", "when it was added with the CLI"),
        C("removed_at", "TIMESTAMPTZ", "when `allow remove` retired it (it no longer applies)"),
        C("removed_by", "VARCHAR", "who removed it"),
    ),
)

TRIAGE = Table(
    "triage",
    "What an investigator decided about a finding or an incident (`forensics triage`): an"
    " append-only history, never updated or deleted, kept across detection runs. Ids change"
    " with every run, so an entry also records what it was about, and the views finding_triage"
    " and incident_triage match it to the current findings and incidents by that.",
    (
        C("entry_id", "VARCHAR PRIMARY KEY", "id of this entry"),
        C("recorded_at", "TIMESTAMPTZ", "when it was recorded"),
        C("recorded_by", "VARCHAR", "who recorded it (--by, else the login name)"),
        C("target_type", "VARCHAR", "finding | incident"),
        C("target_id", "VARCHAR", "the finding or incident id as it was then"),
        C("detector_id", "VARCHAR", "the finding's detector (NULL for an incident)"),
        C("principal_type", "VARCHAR", "its principal's type (an incident's as grouped)"),
        C("principal_id", "VARCHAR", "its principal"),
        C("window_start", "TIMESTAMPTZ", "the finding's window, or the incident's first_seen"),
        C("window_end", "TIMESTAMPTZ", "the finding's window, or the incident's last_seen"),
        C("status", "VARCHAR", " | ".join(TRIAGE_STATUSES)),
        C("reason", "VARCHAR", "why (scrubbed like every stored string)"),
        C("allowlist_entry", "VARCHAR", "the allowlist entry --suppress-similar added, if any"),
    ),
)

ASN_INFO = Table(
    "asn_info",
    "Network categories by AS number: shipped with the package, extended by the user.",
    (
        C("asn", "BIGINT", "AS number", "source.as.number"),
        C("category", "VARCHAR", "hosting | enterprise_egress | privacy_relay | mobile | isp"),
        C("name", "VARCHAR", "AS organisation", "source.as.organization.name"),
        C("origin", "VARCHAR", "shipped, or the user file it came from"),
    ),
)

IP_RANGES = Table(
    "ip_ranges",
    "IP ranges from the enrichment databases (--asn-db), IPv4 mapped into IPv6 numbers.",
    (
        C("ip_start", "UHUGEINT", "first address of the range"),
        C("ip_end", "UHUGEINT", "last address of the range"),
        C("asn", "BIGINT", "AS number", "source.as.number"),
        C("as_org", "VARCHAR", "AS organisation", "source.as.organization.name"),
        C("country", "VARCHAR", "ISO 3166 alpha-2", "source.geo.country_iso_code"),
        C("city", "VARCHAR", "city", "source.geo.locality.name"),
        C("lat", "DOUBLE", "latitude", "source.geo.location.lat"),
        C("lon", "DOUBLE", "longitude", "source.geo.location.lon"),
        C("source_id", "INTEGER", "enrichment file (sources.source_id)"),
    ),
)

COUNTRY_CENTROIDS = Table(
    "country_centroids",
    "Approximate geographic centre of each country (shipped), for country-level geography.",
    (
        C("country", "VARCHAR PRIMARY KEY", "ISO 3166 alpha-2", "geo.country.iso_code"),
        C("name", "VARCHAR", "country name", "geo.country.name"),
        C("lat", "DOUBLE", "latitude", "geo.location.lat"),
        C("lon", "DOUBLE", "longitude", "geo.location.lon"),
    ),
)

PRICES = Table(
    "prices",
    "Model prices per million tokens, dated: shipped with the package, extended or overridden"
    " with `forensics ingest --format prices`.",
    (
        C("provider", "VARCHAR", "provider", "gen_ai.provider.name"),
        C("model_pattern", "VARCHAR", "model name or LIKE pattern"),
        C("input_per_mtok", "DOUBLE", "USD per 1M input tokens"),
        C("cached_input_per_mtok", "DOUBLE", "USD per 1M cached input tokens"),
        C("output_per_mtok", "DOUBLE", "USD per 1M output tokens"),
        C("effective_from", "DATE", "first day the price applies"),
        C("origin", "VARCHAR", "shipped, or the user file it came from"),
    ),
)

ENDPOINT_ROLES = Table(
    "endpoint_roles",
    "What a request path is for (signup, login, password_reset, key_create, form), shipped with"
    " the package; abuse.account_farm reads it, and its `extra_roles` parameter adds patterns.",
    (
        C("pattern", "VARCHAR", "path ending, `*` = any characters (`/signup`, `*_form`)"),
        C("role", "VARCHAR", "signup | login | password_reset | key_create | form"),
    ),
)

SOURCE_REMOVALS = Table(
    "source_removals",
    "Sources taken out of the case (`forensics sources remove`, or replaced by `forensics ingest"
    " --force`): what the source was, who removed it, when and why, and what it did to the"
    " findings. Its rows are gone from every table; this row is the record that they were there.",
    (
        C("source_id", "INTEGER", "sources.source_id it had (never given to another file)"),
        C("path", "VARCHAR", "absolute path at ingest time", "file.path"),
        C("sha256", "VARCHAR", "SHA-256 of the file bytes as ingested", "file.hash.sha256"),
        C("format", "VARCHAR", "format it was read as"),
        C("kind", "VARCHAR", "requests | reference | enrichment | usage"),
        C("ingested_at", "TIMESTAMPTZ", "when it had been ingested"),
        C("rows_read", "BIGINT", "records its ingest read"),
        C("rows_loaded", "BIGINT", "records its ingest stored (now deleted)"),
        C("rows_quarantined", "BIGINT", "records its ingest quarantined (now deleted)"),
        C("removed_at", "TIMESTAMPTZ", "when the removal ran (its transaction began)"),
        C("removed_by", "VARCHAR", "operating-system user who ran the removal", "user.name"),
        C("reason", "VARCHAR", "why, as given (--reason), credentials scrubbed"),
        C(
            "replaced_by",
            "INTEGER",
            "the source that replaced it (ingest --force), NULL for `sources remove`",
        ),
        C(
            "findings_deleted",
            "BIGINT",
            "current findings deleted: every request of their principal in their window came"
            " from this source",
        ),
        C(
            "findings_stale",
            "BIGINT",
            "current findings kept but marked stale (findings.stale_by_source)",
        ),
    ),
)

LAKE_FILES = Table(
    "lake_files",
    "The Parquet files of a case that keeps requests and usage in a lake (forensics --lake;"
    " docs/lake.md): the views read exactly these. Empty in a case that keeps its rows itself.",
    (
        C("table_name", "VARCHAR", "requests | usage"),
        C("path", "VARCHAR", "the file, relative to the lake directory (meta.lake_dir)"),
        C("added_at", "TIMESTAMPTZ", "when the transaction that wrote it began"),
        C("file_no", "BIGINT", "order of the listing (a request's request_row derives from it)"),
    ),
)

SOURCE_DIGESTS = Table(
    "source_digests",
    "What each ingest stored, per source and table: row count and a digest of the rows, so that"
    " `forensics verify` finds rows edited, added or deleted outside the tool.",
    (
        C("source_id", "INTEGER", "sources.source_id"),
        C("table_name", "VARCHAR", "table holding rows of the source"),
        C("rows", "BIGINT", "rows of the source in that table at ingest"),
        C(
            "digest",
            "VARCHAR",
            "sum of DuckDB hash() of each row, over the columns ingest wrote (not the ones"
            " enrichment or repricing fill in later)",
        ),
        C("engine", "VARCHAR", "DuckDB version that computed the digest"),
    ),
)

RUNS = Table(
    "runs",
    "One row per `forensics detect`: what ran, with which parameters, over which inputs.",
    (
        C("run_id", "VARCHAR PRIMARY KEY", "run id"),
        C("started_at", "TIMESTAMPTZ", "when the run started"),
        C("finished_at", "TIMESTAMPTZ", "when it finished"),
        C("tool_version", "VARCHAR", "forensics version"),
        C("detectors", "JSON", "detector id -> version (SHA-256 of its .sql and .yml)"),
        C("params", "JSON", "parameters as bound, per detector, and the run's filters"),
        C("sources", "JSON", "the case's sources at run time: id and sha256"),
        C("status", "VARCHAR", "running | ok | errors"),
        C("errors", "JSON", "detector id -> the error that stopped it"),
        C("since", "TIMESTAMPTZ", "scope: earliest request time read (NULL: unbounded)"),
        C("until", "TIMESTAMPTZ", "scope: latest request time read (NULL: unbounded)"),
        C("tenant", "VARCHAR", "scope: the one tenant read (NULL: all)"),
    ),
)

RUN_DETECTORS = Table(
    "run_detectors",
    "Each detector as a run ran it: the version's text and metadata, so reports and exports"
    " never read queries/ on disk.",
    (
        C("run_id", "VARCHAR", "runs.run_id"),
        C("detector_id", "VARCHAR", "<family>.<name>"),
        C("version", "VARCHAR", "SHA-256 of the detector's .sql and .yml"),
        C("title", "VARCHAR", "title"),
        C("description", "VARCHAR", "description"),
        C("runbook", "VARCHAR", "runbook"),
        C("severity", "severity", "the YAML's severity"),
        C("severity_bounds", "severity[]", "[lowest, highest] a computed severity may take"),
        C("principal_type", "VARCHAR", "principal it groups by"),
        C(
            "explains",
            "VARCHAR[]",
            "detector ids (globs) whose findings in one incident its finding explains",
        ),
        C("params", "JSON", "parameters as bound"),
        C("sql", "VARCHAR", "the SELECT as it ran"),
        C("status", "VARCHAR", "ok | failed"),
        C("error", "VARCHAR", "why it failed"),
        C("seconds", "DOUBLE", "time it took"),
        C("findings", "BIGINT", "findings it stored"),
    ),
)

FINDINGS = Table(
    "findings",
    "What detectors found: one row per detector, principal and window (stable id).",
    (
        C(
            "finding_id",
            "VARCHAR PRIMARY KEY",
            "hash of detector, principal and window",
            "finding_info.uid",
        ),
        C("detector_id", "VARCHAR", "<family>.<name>", "finding_info.analytic.uid"),
        C("detector_version", "VARCHAR", "SHA-256 of the detector's two files"),
        C("run_id", "VARCHAR", "run that produced it"),
        C("severity", "severity", "info < low < medium < high < critical (ENUM)", "severity_id"),
        C("score", "DOUBLE", "0-100", "risk_score"),
        C(
            "principal_type",
            "VARCHAR",
            " | ".join(PRINCIPAL_TYPES),
        ),
        C("principal_id", "VARCHAR", "the principal"),
        C("tenant_id", "VARCHAR", "tenant of the principal", "organization.id"),
        C("window_start", "TIMESTAMPTZ", "start of the evidence window", "start_time"),
        C("window_end", "TIMESTAMPTZ", "end of the evidence window", "end_time"),
        C("summary", "VARCHAR", "one sentence", "finding_info.title"),
        C("evidence", "JSON", "the numbers that justify it", "unmapped"),
        C(
            "est_cost_usd",
            "DOUBLE",
            "cost of the principal's gateway requests inside the window (request_principals)",
        ),
        C(
            "provider_cost_usd",
            "DOUBLE",
            "provider-side cost the detector measured (usage the gateway never saw)",
        ),
        C("suppressed", "BOOLEAN", "matched an allowlist entry (kept, never deleted)"),
        C("suppressed_by", "VARCHAR", "the allowlist entry that matched, and its reason"),
        C(
            "superseded_by",
            "VARCHAR",
            "run that re-ran the detector over this finding's scope (NULL: current)",
        ),
        C(
            "stale_by_source",
            "INTEGER",
            "a removed source (source_removals.source_id) this finding's run read and may have"
            " drawn on: its numbers may be out of date until `forensics detect` runs again"
            " (NULL: as its run stored it)",
        ),
    ),
)

FINDING_REQUESTS = Table(
    "finding_requests",
    "Sample requests behind each finding.",
    (
        C("finding_id", "VARCHAR", "findings.finding_id"),
        C("request_id", "VARCHAR", "requests.request_id", "http.request.id"),
    ),
)

INCIDENTS = Table(
    "incidents",
    "Findings on one principal (credentials roll up to their tenant) close in time, grouped.",
    (
        C("incident_id", "VARCHAR PRIMARY KEY", "hash of principal and first finding"),
        C("principal_type", "VARCHAR", "tenant, or the finding's own principal type"),
        C("principal_id", "VARCHAR", "the principal"),
        C("tenant_id", "VARCHAR", "tenant", "organization.id"),
        C("first_seen", "TIMESTAMPTZ", "earliest window start"),
        C("last_seen", "TIMESTAMPTZ", "latest window end"),
        C("score", "DOUBLE", "0-100"),
        C("severity", "severity", "highest severity of its findings"),
        C("detectors", "VARCHAR[]", "detectors involved"),
        C(
            "primary_detector",
            "VARCHAR",
            "the primary diagnosis: the detector whose finding best explains the others",
        ),
        C("finding_ids", "VARCHAR[]", "its findings"),
        C(
            "est_cost_usd",
            "DOUBLE",
            "cost of the union of its principals' gateway requests in its window, at detect time",
        ),
        C("provider_cost_usd", "DOUBLE", "provider-side cost of its provider_key findings"),
    ),
)

TABLES: tuple[Table, ...] = (
    META,
    SOURCES,
    QUARANTINE,
    REQUESTS,
    USAGE,
    REVOCATIONS,
    RETIRED_KEYS,
    ALLOWLIST,
    KNOWN_KEYS,
    KEY_INVENTORY,
    ASN_INFO,
    IP_RANGES,
    COUNTRY_CENTROIDS,
    PRICES,
    ENDPOINT_ROLES,
    SOURCE_DIGESTS,
    SOURCE_REMOVALS,
    LAKE_FILES,
    RUNS,
    RUN_DETECTORS,
    FINDINGS,
    FINDING_REQUESTS,
    INCIDENTS,
    TRIAGE,
)


def table(name: str) -> Table:
    for t in TABLES:
        if t.name == name:
            return t
    raise KeyError(name)


# The views every case holds (stored; TEMP on a read-only connection), defined where they live.
VIEWS: tuple[tuple[str, str], ...] = (
    (
        "request_rows",
        "Each request once: request_row, the number telling the case's requests apart (its rowid,"
        " or in a lake its file's place in lake_files and its own in the file; stable until the"
        " rows are next written), then every column of requests (forensics/lake/store.py).",
    ),
    (
        "request_principals",
        "Each request once per principal it belongs to (principal_type, principal_id, request_row"
        " (request_rows), then every column of requests): the one definition of a"
        " principal's requests"
        " (forensics/sql/request_principals.sql); principal_requests(type, id) is its macro.",
    ),
    (
        "request_subjects",
        "Each request once with the one principal detectors judge it by (principal_type,"
        " principal_id: its credential, else its client address, else its tenant; request_row,"
        " then every column of requests) (forensics/sql/request_principals.sql).",
    ),
    (
        "request_costs",
        "Each gateway request's estimated cost from the prices table (forensics/case/costs.py).",
    ),
    (
        "principal_hours",
        "The detector pack's shared feature: per principal and hour, requests, targets, models,"
        " networks and places (forensics/sql/principal_hours.sql).",
    ),
    (
        "usage_vs_gateway",
        "Provider usage against the gateway's own traffic by provider, key and hour"
        " (forensics/case/reconcile.py).",
    ),
    (
        "finding_triage",
        "Each finding's triage status: the latest `triage` entry about it, else open"
        " (forensics/sql/triage_status.sql).",
    ),
    (
        "incident_triage",
        "Each incident's triage status, the same way (forensics/sql/triage_status.sql).",
    ),
)
