"""The evidence lake: `requests` and `usage` as Hive-partitioned Parquet (docs/lake.md)."""
