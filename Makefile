# The two commands of the README, and the checks behind them. Every target installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dbt,duckdb,postgres,aws,s3,google,azure,openlineage,dev
CONSTRAINTS ?= constraints.txt
# dbt with every warehouse adapter, without Airflow (see dbt-venv below).
DBT_VENV ?= .venv-dbt
# The lowest supported Airflow gets its own virtualenv and constraints; CI runs the core of the suite on it.
LOWEST_AIRFLOW := 3.1
LOWEST_TESTS ?= tests/unit tests/integration/test_provider_registration.py tests/e2e/test_example_dag.py \
	tests/e2e/test_celery.py tests/e2e/test_model_runs_ui.py

.PHONY: dbt-venv install demo test test-lowest lint typecheck check constraints clean bench bench-install bench-constraints bench-smoke \
	dist docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: $(BIN)/python
	$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --default-pip >/dev/null
	$(BIN)/python -m pip install --quiet uv

install: $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c $(CONSTRAINTS) -e ".[$(EXTRAS)]"

tests/servers/node_modules: tests/servers/package.json tests/servers/package-lock.json
	npm ci --prefix tests/servers --no-audit --no-fund --loglevel=error
	touch $@

# DEMO_ARGS=--ui leaves Airflow's UI up on the demo's run (the grid, the task logs, the Model runs view).
demo: install
	$(BIN)/idbt demo $(DEMO_ARGS)

# The suite runs in parallel, one test file per worker process (a file's module fixtures, such as a whole Airflow
# run, stay in one process); TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= auto
test: install tests/servers/node_modules $(DBT_VENV)/bin/dbt
	$(BIN)/pytest --numprocesses=$(TEST_WORKERS) --maxprocesses=4 --dist=loadfile $(PYTEST_ARGS)

test-lowest:
	$(MAKE) test VENV=.venv-$(LOWEST_AIRFLOW) CONSTRAINTS=constraints-airflow-$(LOWEST_AIRFLOW).txt \
		PYTEST_ARGS="$(LOWEST_TESTS)"

# Re-pin after changing dependencies: names and versions only, no download URLs.
# Every extra but bigquery, whose google-cloud pins the Google provider does not take (it lives in dbt's own
# virtualenv, constraints-dbt.txt). constraints-dbt.txt pins every adapter for a dbt-only virtualenv.
PINNED_EXTRAS := $(shell sed -n '/^\[project.optional-dependencies\]/,/^\[/s/^\([a-z0-9]*\) = .*/\1/p' pyproject.toml \
	| grep -v -x bigquery | sed 's/^/--extra /')
constraints: $(BIN)/uv
	$(BIN)/uv pip compile --quiet $(PINNED_EXTRAS) --no-header --no-annotate pyproject.toml -o constraints.txt
	$(BIN)/uv pip compile --quiet $(PINNED_EXTRAS) --no-header --no-annotate \
		pyproject.toml -c <(echo "apache-airflow==$(LOWEST_AIRFLOW).*") -o constraints-airflow-$(LOWEST_AIRFLOW).txt
	$(BIN)/uv pip compile --quiet --no-header --no-annotate constraints-dbt.in -o constraints-dbt.txt

# dbt with every warehouse adapter (and the fakesnow stand-in) in a virtualenv of its own, without Airflow: the
# warehouse tests run dbt there through `dbt_python=`, as platform teams who keep dbt apart do.
$(DBT_VENV)/bin/dbt: constraints-dbt.txt $(BIN)/uv
	$(BIN)/uv venv --quiet --allow-existing --python $(BIN)/python $(DBT_VENV)
	$(BIN)/uv pip install --quiet --python $(DBT_VENV)/bin/python -c constraints-dbt.txt -r constraints-dbt.in
	touch $@

dbt-venv: $(DBT_VENV)/bin/dbt

# The benchmarks run in their own virtualenv: astronomer-cosmos and matplotlib are compared against and drawn
# with, never dependencies of the package. `make bench BENCH_ARGS="--only scheduler"` runs one section.
BENCH_VENV ?= .venv-bench
BENCH_EXTRAS ?= dbt,duckdb,postgres

bench-install:
	$(MAKE) install VENV=$(BENCH_VENV) EXTRAS=$(BENCH_EXTRAS)
	$(BENCH_VENV)/bin/uv pip install --quiet --python $(BENCH_VENV)/bin/python \
		-c $(CONSTRAINTS) -c bench/constraints.txt -r bench/requirements.in

bench: bench-install
	$(BENCH_VENV)/bin/python -m bench $(BENCH_ARGS)

# The small version CI runs: the DAG-parse benchmark at 100 models beside cosmos, one interpreter per contender,
# printing only; it fails when a build breaks or the provider imports a heavy package at parse time. The full
# runs are `make bench`.
bench-smoke: bench-install
	$(BENCH_VENV)/bin/python -m bench --only parse --sizes 100 --processes 1 --first-builds 1 --no-write

# Pins for bench/requirements.in on top of constraints.txt: only what constraints.txt does not pin already.
bench-constraints: $(BIN)/uv
	$(BIN)/uv pip compile --quiet --no-header --no-annotate bench/requirements.in -c $(CONSTRAINTS) \
		| grep -v -i -f <(sed 's/==.*/==/; s/^/^/' $(CONSTRAINTS)) \
		| cat <(echo "# Pinned by \`make bench-constraints\` from bench/requirements.in on top of constraints.txt.") - \
		> bench/constraints.txt

lint: install
	$(BIN)/ruff check airflow_provider_idbt tests dags $(wildcard bench)
	$(BIN)/ruff format --check airflow_provider_idbt

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

# The release artifacts: an sdist and a wheel, built in an isolated environment (hatchling comes from the package
# registry; uv installs it), checked the way the package index will read them (metadata, README rendering).
dist: install
	rm -rf dist
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m build --installer uv --sdist --wheel --outdir dist/ .
	$(BIN)/twine check --strict dist/*

# The documentation site (docs/ and the API reference from docstrings); any warning fails the build. Run from the
# repository root: pages include the example DAG and the CHANGELOG by paths from there.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site/

clean:
	rm -rf .demo .pytest_cache .mypy_cache .ruff_cache
