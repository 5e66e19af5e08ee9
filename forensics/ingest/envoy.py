"""Envoy access logs: the default text format (and Istio's), and JSON (Istio / AI Gateway keys)."""

from __future__ import annotations

from forensics.ingest.base import Adapter, Options, Staging


class Envoy(Adapter):
    name = "envoy"
    description = "Envoy default / Istio text access log, or JSON access log (Istio, AI Gateway)"

    def sniff(self, head: list[str]) -> bool:
        return False

    def staging(self, options: Options) -> Staging:
        raise NotImplementedError
