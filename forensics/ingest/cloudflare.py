"""Cloudflare Logpush http_requests (JSON lines)."""

from __future__ import annotations

from forensics.ingest.base import Adapter, Options, Staging


class Cloudflare(Adapter):
    name = "cloudflare"
    description = "Cloudflare Logpush http_requests JSON lines"

    def sniff(self, head: list[str]) -> bool:
        return False

    def staging(self, options: Options) -> Staging:
        raise NotImplementedError
