"""Every format `forensics ingest` reads, and auto-detection from a file's first records
(`reader.sniff`: lines, or the records of a JSON document)."""

from __future__ import annotations

from pathlib import Path

from forensics.errors import InputError
from forensics.ingest import enrichment, reference
from forensics.ingest.access_log import Combined, Common, CustomLogFormat, VhostCombined
from forensics.ingest.base import Format
from forensics.ingest.cloudflare import Cloudflare
from forensics.ingest.envoy import Envoy
from forensics.ingest.jsonl import JsonLines
from forensics.ingest.key_inventory import KeyInventory
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
from forensics.ingest.reader import Head

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
    KeyInventory(),
    enrichment.IpToAsn(),
    enrichment.MaxMind(),
]
FORMATS: dict[str, Format] = {f.name: f for f in _ALL}


def register(fmt: Format) -> None:
    FORMATS[fmt.name] = fmt


def detect_format(path: Path, head: Head | list[str]) -> str:
    """The one format whose sniffer accepts the file's first records, or a clear error (which
    says so when not one record ended within the bytes read)."""
    cut = head.cut if isinstance(head, Head) else None
    records = head.lines if isinstance(head, Head) else head
    if path.suffix.lower() == ".mmdb" or path.name.lower().endswith(".mmdb.gz"):
        return "mmdb"
    if not records:
        raise InputError(
            path,
            "empty file: no records to detect a format from",
            hint="nothing to load; pass --format to record it anyway",
        )
    matches = [f.name for f in FORMATS.values() if f.auto_detect and f.sniff(records)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        names = ", ".join(sorted(n for n, f in FORMATS.items() if f.auto_detect))
        what = f"{cut}, and its start matches" if cut else "the first records match"
        raise InputError(
            path,
            f"unknown format: {what} none of {names}",
            line=1,
            hint="pass --format NAME (see `forensics ingest --help`), or --format jsonl"
            " --mapping FILE for another JSON-lines gateway",
        )
    raise InputError(
        path,
        f"ambiguous format: the first records fit {' and '.join(sorted(matches))}",
        hint="pass --format to choose",
    )
