"""Model prices: the shipped dated table, a user's prices CSV, and est_cost_usd on requests.

The case starts with the shipped `forensics/data/prices.csv`. A user's prices file has the same
columns: a row with the same (provider, model_pattern, effective_from) replaces the row in the
case, any other row is added. Loading one reprices every request already in the case, so
`est_cost_usd` always follows the `prices` table (see forensics/costs.py for the matching).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from forensics.case import costs
from forensics.case.fingerprints import BEARER_PATTERN, FINGERPRINT_PATTERN, KEY_PATTERN
from forensics.ingest.base import Counts, Options, ReferenceFormat
from forensics.ingest.reference import load_csv_checked

# A provider name as gateways log it (openai, anthropic, azure, vertex_ai, ...).
PROVIDER_PATTERN = "[a-z][a-z0-9_.-]{0,39}"
DEFAULT_EFFECTIVE_FROM = "1970-01-01"


def _provider_error(v: str) -> str:
    """SQL: why `v` is not a provider name, or NULL."""
    return (
        f"CASE WHEN {v} = '' THEN 'provider is empty'"
        f" WHEN NOT regexp_full_match(lower({v}), '{PROVIDER_PATTERN}')"
        f" THEN 'provider is not a provider name (like openai, anthropic): ' || value_shape({v})"
        " END"
    )


def _price(v: str) -> str:
    """SQL: the price in column `v` as a DOUBLE (NULL when empty or not a number)."""
    return f"TRY_CAST(nullif({v}, '') AS DOUBLE)"


def _price_error(v: str, required: bool) -> str:
    """SQL: why column `v` is not a price in USD per 1M tokens, or NULL."""
    empty = f"WHEN {v} = '' THEN '{v} is empty' " if required else f"WHEN {v} = '' THEN NULL "
    return (
        f"CASE {empty}"
        f"WHEN {_price(v)} IS NULL OR isnan({_price(v)}) OR isinf({_price(v)})"
        f" THEN '{v} is not a number: ' || value_shape({v})"
        f" WHEN {_price(v)} < 0 THEN '{v} is negative: ' || value_shape({v}) END"
    )


class Prices(ReferenceFormat):
    name = "prices"
    description = (
        "CSV provider,model_pattern,input_per_mtok,cached_input_per_mtok,output_per_mtok,"
        "effective_from"
    )
    table = "prices"
    source_column = None
    auto_detect = False
    columns = [
        "provider",
        "model_pattern",
        "input_per_mtok",
        "cached_input_per_mtok",
        "output_per_mtok",
        "effective_from",
    ]

    def sniff(self, head: list[str]) -> bool:
        return False

    def load(
        self, con: duckdb.DuckDBPyConnection, path: Path, source_id: int, options: Options
    ) -> tuple[Counts, list[str]]:
        effective = (
            "coalesce(TRY_CAST(nullif(effective_from, '') AS DATE),"
            f" DATE '{DEFAULT_EFFECTIVE_FROM}')"
        )
        checked = f"""
            SELECT line_no, lower(provider) AS provider, lower(model_pattern) AS model_pattern,
                   {_price("input_per_mtok")} AS input_per_mtok,
                   {_price("cached_input_per_mtok")} AS cached_input_per_mtok,
                   {_price("output_per_mtok")} AS output_per_mtok,
                   {effective} AS effective_from,
                   coalesce({_provider_error("provider")},
                            CASE WHEN model_pattern = '' THEN 'model_pattern is empty' END,
                            {_price_error("input_per_mtok", True)},
                            {_price_error("cached_input_per_mtok", False)},
                            {_price_error("output_per_mtok", True)},
                            CASE WHEN effective_from <> ''
                                  AND TRY_CAST(effective_from AS DATE) IS NULL
                                 THEN 'effective_from is not a date (YYYY-MM-DD): '
                                      || value_shape(effective_from) END) AS _error
            FROM ref_rows"""
        key = "(provider, model_pattern, effective_from)"
        inserts = [
            f"DELETE FROM prices WHERE {key} IN"
            f" (SELECT {key} FROM ref_checked WHERE _error IS NULL)",
            # The last row of the file wins when it repeats a key.
            "INSERT INTO prices SELECT provider, model_pattern, input_per_mtok,"
            " cached_input_per_mtok, output_per_mtok, effective_from, 'source ' || $sid"
            " FROM ref_checked WHERE _error IS NULL"
            f" QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY line_no DESC) = 1",
        ]
        # Like asn_info, prices keeps one row per key (a user row overrides the shipped one),
        # so the table is not reconciled by source; `loaded` counts the rows read.
        counts = load_csv_checked(con, path, source_id, self.columns, 5, checked, inserts)
        warnings = [
            f"{path}:{line}: repeats the provider, model_pattern and effective_from of an"
            " earlier line, which it replaces"
            for (line,) in con.execute(
                "SELECT line_no FROM ref_checked WHERE _error IS NULL QUALIFY row_number()"
                f" OVER (PARTITION BY {key} ORDER BY line_no) > 1 ORDER BY line_no"
            ).fetchall()
        ]
        costs.reprice(con)
        return counts, warnings


class KnownKeys(ReferenceFormat):
    name = "known-keys"
    description = "CSV provider,api_key_id,label: provider keys that belong to the gateway"
    table = "known_keys"
    auto_detect = False
    columns = ["provider", "api_key_id", "label"]

    def sniff(self, head: list[str]) -> bool:
        return False

    def load(
        self, con: duckdb.DuckDBPyConnection, path: Path, source_id: int, options: Options
    ) -> tuple[Counts, list[str]]:
        checked = f"""
            SELECT line_no, lower(provider) AS provider, api_key_id, nullif(label, '') AS label,
                   coalesce({_provider_error("provider")},
                            CASE WHEN api_key_id = '' THEN 'api_key_id is empty'
                                 WHEN regexp_full_match(api_key_id, '{KEY_PATTERN}')
                                      OR regexp_full_match(api_key_id, '{FINGERPRINT_PATTERN}')
                                      OR regexp_matches(api_key_id, '{BEARER_PATTERN}')
                                 THEN 'api_key_id is a secret key, not the provider''s key id'
                            END) AS _error
            FROM ref_rows"""
        insert = (
            "INSERT INTO known_keys SELECT provider, api_key_id, label, $sid, line_no"
            " FROM ref_checked WHERE _error IS NULL"
        )
        counts = load_csv_checked(con, path, source_id, self.columns, 2, checked, [insert])
        return counts, []
