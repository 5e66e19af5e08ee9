"""Model prices: the shipped dated table, a user's prices CSV, and est_cost_usd on requests."""

from __future__ import annotations

from pathlib import Path

import duckdb

from forensics.ingest.base import Counts, Options, ReferenceFormat


class Prices(ReferenceFormat):
    name = "prices"
    description = (
        "CSV provider,model_pattern,input_per_mtok,cached_input_per_mtok,output_per_mtok,"
        "effective_from"
    )
    table = "prices"
    source_column = None
    auto_detect = False

    def sniff(self, head: list[str]) -> bool:
        return False

    def load(
        self, con: duckdb.DuckDBPyConnection, path: Path, source_id: int, options: Options
    ) -> tuple[Counts, list[str]]:
        raise NotImplementedError


class KnownKeys(ReferenceFormat):
    name = "known-keys"
    description = "CSV provider,api_key_id,label: provider keys that belong to the gateway"
    table = "known_keys"
    auto_detect = False

    def sniff(self, head: list[str]) -> bool:
        return False

    def load(
        self, con: duckdb.DuckDBPyConnection, path: Path, source_id: int, options: Options
    ) -> tuple[Counts, list[str]]:
        raise NotImplementedError
