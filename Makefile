# Two set-up commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DB ?= demo.duckdb

.PHONY: help demo test check format lint typecheck bench bench-detect clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/forensics: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,dev]'
	touch $@

demo: $(BIN)/forensics  ## ingest sample_data/ into demo.duckdb, detect, show and score the findings
	rm -f $(DEMO_DB) $(DEMO_DB).wal
	$(BIN)/forensics --db $(DEMO_DB) ingest --asn-db sample_data/ip2asn-v4.tsv sample_data/logs/
	$(BIN)/forensics --db $(DEMO_DB) sql -f sample_data/summary.sql
	$(BIN)/forensics --db $(DEMO_DB) detect
	$(BIN)/forensics --db $(DEMO_DB) findings
	$(BIN)/forensics --db $(DEMO_DB) evaluate sample_data/labels.csv

test: $(BIN)/forensics  ## run the whole test suite
	$(BIN)/python -m pytest

format: $(BIN)/forensics  ## ruff format
	$(BIN)/ruff format forensics tests benchmarks

lint: $(BIN)/forensics  ## ruff check
	$(BIN)/ruff check forensics tests benchmarks
	$(BIN)/ruff format --check forensics tests benchmarks

typecheck: $(BIN)/forensics  ## mypy --strict on forensics/
	$(BIN)/mypy

check: lint typecheck test  ## everything CI cares about

bench: $(BIN)/forensics  ## ingest benchmark (see benchmarks/README.md)
	$(BIN)/python benchmarks/ingest.py

bench-detect: $(BIN)/forensics  ## detection benchmark, 1M and 10M requests (benchmarks/README.md)
	$(BIN)/python benchmarks/detect.py --repeat 2

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(DEMO_DB)
