# The two commands of the README, and the checks behind them. Every target installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dbt,duckdb,postgres,dev

.PHONY: install demo test lint typecheck check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: $(BIN)/python
	$(BIN)/python -m pip install --quiet uv

install: $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e ".[$(EXTRAS)]"

tests/servers/node_modules: tests/servers/package.json tests/servers/package-lock.json
	npm ci --prefix tests/servers --no-audit --no-fund --loglevel=error
	touch $@

demo: install
	$(BIN)/idbt demo

test: install tests/servers/node_modules
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check airflow_provider_idbt tests dags bench
	$(BIN)/ruff format --check airflow_provider_idbt

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf .demo .pytest_cache .mypy_cache .ruff_cache
