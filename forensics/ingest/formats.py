"""Every format `forensics ingest` reads, and auto-detection from a file's first records."""

from __future__ import annotations

from pathlib import Path

from forensics.errors import InputError
from forensics.ingest import enrichment, reference
from forensics.ingest.access_log import Combined, Common, CustomLogFormat, VhostCombined
from forensics.ingest.base import Format
from forensics.ingest.cloudflare import Cloudflare
from forensics.ingest.envoy import Envoy
from forensics.ingest.jsonl import JsonLines
from forensics.ingest.kong import Kong
from forensics.ingest.litellm import LiteLLM
from forensics.ingest.litellm_daily import LiteLLMDaily
from forensics.ingest.nginx import NginxJson
from forensics.ingest.prices import KnownKeys, Prices
from forensics.ingest.provider_usage import (
    AnthropicCost,
    AnthropicUsage,
    OpenAICosts,
    OpenAIUsage,
)

_ALL: list[Format] = [
    Kong(),
    Combined(),
    Common(),
    VhostCombined(),
    CustomLogFormat(),
    NginxJson(),
    Envoy(),
    Cloudflare(),
    JsonLines(),
    LiteLLM(),
    LiteLLMDaily(),
    OpenAIUsage(),
    OpenAICosts(),
    AnthropicUsage(),
    AnthropicCost(),
    Prices(),
    KnownKeys(),
    reference.Revocations(),
    reference.RetiredKeys(),
    reference.Allowlist(),
    reference.AsnCategories(),
    enrichment.IpToAsn(),
    enrichment.MaxMind(),
]
FORMATS: dict[str, Format] = {f.name: f for f in _ALL}


def register(fmt: Format) -> None:
    FORMATS[fmt.name] = fmt


def detect_format(path: Path, head: list[str]) -> str:
    """The one format whose sniffer accepts the file's first records, or a clear error."""
    if path.suffix.lower() == ".mmdb" or path.name.lower().endswith(".mmdb.gz"):
        return "mmdb"
    if not head:
        raise InputError(
            path,
            "empty file: no records to detect a format from",
            hint="nothing to load; pass --format to record it anyway",
        )
    matches = [f.name for f in FORMATS.values() if f.auto_detect and f.sniff(head)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise InputError(
            path,
            "unknown format: the first records match none of "
            + ", ".join(sorted(n for n, f in FORMATS.items() if f.auto_detect)),
            line=1,
            hint="pass --format NAME (see `forensics ingest --help`), or --format jsonl"
            " --mapping FILE for another JSON-lines gateway",
        )
    raise InputError(
        path,
        f"ambiguous format: the first records fit {' and '.join(sorted(matches))}",
        hint="pass --format to choose",
    )
