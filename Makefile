# The two commands of the README: `make demo` and `make test`. Both create .venv when needed,
# install the exact pins of requirements.lock, and are quick when .venv is already current.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.molddl-installed
SHARED_DATA := $(abspath ../shared/data)
# Real data comes from MOLDDL_DATA_DIR; beside a checkout with ../shared we use that copy.
ifeq ($(origin MOLDDL_DATA_DIR), undefined)
ifneq ($(wildcard $(SHARED_DATA)/tox21.csv.gz),)
export MOLDDL_DATA_DIR := $(SHARED_DATA)
endif
endif

LINT_PATHS := molddl tests $(wildcard benchmarks/*.py)

.PHONY: setup demo test lint format clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/molddl demo

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)
	$(VENV)/bin/ruff format $(LINT_PATHS)

test: lint
	$(PY) -m pytest -q -ra

clean:
	rm -rf $(VENV) .pytest_cache
