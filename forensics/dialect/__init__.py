"""The detector pack in other engines' SQL: DuckDB's dialect transpiled with sqlglot.

`transpile.py` binds a detector's parameters and generates a target dialect; `spark.py` holds
the rewrites for what sqlglot leaves in DuckDB's terms (top-N `min_by`, ordered `list`,
`time_bucket`, `format`, slices, ...) so that Spark computes what DuckDB computes.

`DIALECTS` lives here, beside nothing that imports sqlglot, so that the CLI can offer them.
"""

DIALECTS = ("spark", "trino", "bigquery", "snowflake")
