"""Provider usage exports: OpenAI Usage / Costs API pages, Anthropic usage / cost reports."""

from __future__ import annotations

from pathlib import Path

import duckdb

from forensics.ingest.base import Counts, Options, ReferenceFormat


class _Stub(ReferenceFormat):
    kind = "usage"
    table = "usage"
    auto_detect = False

    def sniff(self, head: list[str]) -> bool:
        return False

    def load(
        self, con: duckdb.DuckDBPyConnection, path: Path, source_id: int, options: Options
    ) -> tuple[Counts, list[str]]:
        raise NotImplementedError


class OpenAIUsage(_Stub):
    name = "openai-usage"
    description = "OpenAI organization Usage API pages (any usage type, bucket width, group_by)"


class OpenAICosts(_Stub):
    name = "openai-costs"
    description = "OpenAI organization Costs API pages"


class AnthropicUsage(_Stub):
    name = "anthropic-usage"
    description = "Anthropic Admin API messages usage report pages"


class AnthropicCost(_Stub):
    name = "anthropic-cost"
    description = "Anthropic Admin API cost report pages (amounts in cents)"
