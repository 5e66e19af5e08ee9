"""nginx / Apache access logs: combined and common text, and nginx JSON (escape=json)."""

from __future__ import annotations

from forensics.ingest.base import Adapter, Options, Staging


class Combined(Adapter):
    name = "combined"
    description = "nginx / Apache combined or common access log (text)"

    def sniff(self, head: list[str]) -> bool:
        return False

    def staging(self, options: Options) -> Staging:
        raise NotImplementedError


class Common(Combined):
    name = "common"
    description = "nginx / Apache common access log (same parser as combined)"
    auto_detect = False


class NginxJson(Adapter):
    name = "nginx-json"
    description = "nginx JSON access log written with log_format escape=json"

    def sniff(self, head: list[str]) -> bool:
        return False

    def staging(self, options: Options) -> Staging:
        raise NotImplementedError
