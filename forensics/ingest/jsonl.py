"""Any other JSON-lines gateway log, through a user's TOML mapping file."""

from __future__ import annotations

from forensics.ingest.base import Adapter, Options, Staging


class JsonLines(Adapter):
    name = "jsonl"
    description = "any JSON-lines gateway log, mapped by a TOML file (--mapping)"
    auto_detect = False

    def sniff(self, head: list[str]) -> bool:
        return False

    def staging(self, options: Options) -> Staging:
        raise NotImplementedError
