# Two set-up commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo-out

.PHONY: help demo test check format lint typecheck bench bench-detect bench-quota eval clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/forensics: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,dev,spark]'
	touch $@

demo: $(BIN)/forensics  ## the whole path on sample_data/: case, findings, scores and HTML reports in demo-out/
	$(BIN)/forensics demo -o $(DEMO_OUT)
	$(BIN)/forensics --db $(DEMO_OUT)/demo.duckdb sql -f sample_data/summary.sql

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

bench: $(BIN)/forensics  ## ingest benchmarks: Kong with payloads, the real Apache log x100 against GoAccess
	@command -v goaccess >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq \
		&& apt-get install -y -qq goaccess >/dev/null; } \
		|| echo "goaccess is not installed: the access-log benchmark runs without its peer"
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/access.py

eval: $(BIN)/forensics  ## the pack on 20 default and 20 --hard synth worlds (benchmarks/README.md)
	$(BIN)/python benchmarks/eval.py --seeds 20 --write

bench-quota: $(BIN)/forensics  ## quota replay speed (1M, 10M) and the suggested policy on seeds 1-5 (benchmarks/README.md)
	$(BIN)/python benchmarks/quota.py --speed --accept --seeds 5 --write

bench-detect: $(BIN)/forensics  ## detection benchmark, 1M and 10M requests (benchmarks/README.md)
	$(BIN)/python benchmarks/detect.py --repeat 2

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(DEMO_OUT)
