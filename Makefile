# Lacus: the two commands are `make demo` and `make test` (see README.md).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test check lint types imports unit install install-test services bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

## Install, create a demo lake, upload a demo dataset and serve it.
demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

## Install everything the tests need, start missing services, run every check and the tests.
test: install-test services check unit

services:
	bash scripts/services.sh

check: lint types imports

lint:
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks

types:
	$(BIN)/mypy src/lacus

imports:
	$(BIN)/lint-imports

unit:
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/register_replicas.py
	$(BIN)/python benchmarks/upload_large.py
	$(BIN)/python benchmarks/upload_small_files.py
	$(BIN)/python benchmarks/rule_large.py
	$(BIN)/python benchmarks/rules_many.py
	$(BIN)/python benchmarks/transfer_large.py
	$(BIN)/python benchmarks/transfer_webdav.py
	$(BIN)/python benchmarks/transfer_small_files.py
	$(BIN)/python benchmarks/permission_cost.py
	$(BIN)/pip install --quiet -e '.[stream]'
	$(BIN)/python benchmarks/dress_rehearsal.py

clean:
	rm -rf $(VENV) demo-lake .pytest_cache .mypy_cache .ruff_cache
