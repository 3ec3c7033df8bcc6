# The two commands of the README: `make quickstart` and `make test`.
# Each creates or updates the virtual environment in .venv as needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: quickstart test lint bench clean-venv

quickstart: $(VENV)/.core-installed
	$(BIN)/slmscope quickstart

test: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src
	$(BIN)/pytest

bench: $(VENV)/.dev-installed
	$(BIN)/python benchmarks/overhead.py

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "slmscope needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# llama-cpp-python builds from source on first install (about 3-5 minutes on 2 cores);
# pip keeps the built wheel in its cache, so later installs take seconds.
$(VENV)/.core-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.core-installed

clean-venv:
	rm -rf $(VENV)
