# The two commands of the README: `make run` and `make test`. Needs only Python 3.11+.
PYTHON ?= $(shell command -v python3.13 || command -v python3.12 || command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

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

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
