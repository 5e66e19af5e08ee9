"""What detection found, written out: exports (CSV, JSON, Parquet) and OCSF."""
