"""LiteLLM proxy spend logs: LiteLLM_SpendLogs rows (requests) and daily spend tables (usage)."""

from __future__ import annotations

from forensics.ingest.base import Adapter, Options, Staging


class LiteLLM(Adapter):
    name = "litellm"
    description = "LiteLLM_SpendLogs rows as CSV, JSON lines or the /spend/logs JSON list"
    auto_detect = False

    def sniff(self, head: list[str]) -> bool:
        return False

    def staging(self, options: Options) -> Staging:
        raise NotImplementedError
