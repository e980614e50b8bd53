# rtcc: every target prepares what it needs first (scripts/bootstrap.sh is idempotent).
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
UNITS ?= 5

.PHONY: setup demo test chaos lint bench fuzz clean

setup:
	@scripts/bootstrap.sh

demo: setup
	$(BIN)/rtcc demo --units $(UNITS)

test: setup
	$(BIN)/pytest -q --ignore=tests/chaos

# Network faults and crashes in a lab of network namespaces (needs root): a table at the end.
chaos: setup
	$(BIN)/pytest -q -m chaos tests/chaos

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m tests.lint.sizes

bench: setup
	$(BIN)/python -m bench

FUZZ_SECONDS ?= 60
fuzz: setup
	$(BIN)/python fuzz/link_frames.py -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048
	$(BIN)/python fuzz/envelopes.py -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis bench/results
