"""The detector pack on Apache Spark (`forensics detect --engine spark`).

`session.py` starts (or joins) a Spark session with the settings that make Spark SQL compute
what DuckDB computes; `evaluation.py` runs each detector's SELECT there, transpiled by
forensics/dialect/, and hands the rows back to the case connection, where a run on Spark is
stored exactly like a run on DuckDB. pyspark is an optional extra: `pip install
'forensics[spark]'`.
"""
