# rtcc: every target prepares what it needs first (scripts/bootstrap.sh is idempotent).
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
UNITS ?= 5

.PHONY: setup demo test lint bench clean

setup:
	@scripts/bootstrap.sh

demo: setup
	$(BIN)/rtcc demo --units $(UNITS)

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis bench/results
