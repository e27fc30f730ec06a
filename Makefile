# The two commands of the README: `make run` and `make test`. Needs only Python 3.11+.
# the first interpreter that really runs and is 3.11+ (pyenv shims can name versions not installed)
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && echo $$p && break; \
	done)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format bench clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is needed: none found on PATH" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools

$(VENV)/.app: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[app]"
	@touch $@

$(VENV)/.dev: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@ $(VENV)/.app

run: $(VENV)/.app
	$(BIN)/python -m tracking migrate
	$(BIN)/python -m dashboard.demo --if-empty
	$(BIN)/streamlit run dashboard/app.py

test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.dev
	$(BIN)/python -m bench.overhead
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.burst
	$(BIN)/python -m bench.instrumented
	$(BIN)/python -m bench.app_pages --calls 1000000

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
