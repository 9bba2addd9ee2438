# One target per task; CI (.ci/run) calls `make test` too.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTEST_ARGS ?=
# `make test` runs the suite on this many pytest-xdist workers, a test file per worker at a time (its
# module fixtures stay shared); 1 runs it in one process. Two halve the wall time on a 2-core machine.
PYTEST_WORKERS ?= 2

.PHONY: setup test test-unit test-integration chaos lint typecheck bench up clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed  ## create the venv and install Baton with its dev tools

test: setup  ## the whole suite: unit + integration (+ chaos when root)
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest -q -m unit $(PYTEST_ARGS)

test-integration: setup
	$(PY) -m pytest -q -m "integration or chaos" $(PYTEST_ARGS)

chaos: setup  ## the chaos matrix (root: network namespaces); writes docs/reliability.md
	$(PY) -m tests.chaos.run $(CHAOS_ARGS)

lint: setup
	$(VENV)/bin/ruff check libs services tests bench
	$(VENV)/bin/ruff format --check libs services tests bench

typecheck: setup
	$(VENV)/bin/mypy

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

up: setup  ## Baton's main job on its embedded default
	$(VENV)/bin/baton up --sandbox

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache
