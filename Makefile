# The two commands of the README: `make quickstart` and `make test`.
# Each creates or updates the virtual environment in .venv as needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: quickstart test lint bench clean-venv

quickstart: $(VENV)/.core-installed
	$(BIN)/slmscope quickstart

# The test suite's set-up (llama-server, the SmolLM2 weights, the sandbox filters) is built or
# fetched here, before any test runs, and cached in $(SLMSCOPE_HOME): see scripts/prepare-tests.
test: $(VENV)/.dev-installed
	PYTHON=$(BIN)/python scripts/prepare-tests
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src
	$(BIN)/pytest

bench: $(VENV)/.dev-installed
	$(BIN)/python benchmarks/overhead.py

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "slmscope needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# llama-cpp-python builds from source (the index has no Linux wheel): once per machine, into the
# slmscope cache, for any x86-64 CPU with AVX2. Not llama.cpp's native build: on CPUs with AMX
# (Sapphire Rapids and later) that turns on its AMX kernels, which crash in
# ggml_backend_amx_mul_mat. --no-cache-dir keeps pip from reusing a wheel built otherwise, and
# --prefer-binary makes the install take this wheel even where the index has a newer source
# (and the forced reinstall replaces one that an older .venv has).
# About 5 minutes on 2 cores; set LLAMA_CMAKE_ARGS to build another way (it keys the folder).
SLMSCOPE_HOME ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/slmscope
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
WHEELS := $(SLMSCOPE_HOME)/wheels/llama-$(shell printf '%s' '$(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-12)
PIP_INSTALL := $(BIN)/python -m pip install --quiet --prefer-binary --find-links $(WHEELS)

$(WHEELS)/.built: | $(BIN)/python
	mkdir -p $(WHEELS)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" scripts/setup-step llama-cpp-python-wheel \
		$(BIN)/python -m pip wheel --no-deps --no-cache-dir \
		--no-binary llama-cpp-python -w $(WHEELS) 'llama-cpp-python>=0.3.8'
	touch $@

$(VENV)/.core-installed: pyproject.toml $(WHEELS)/.built | $(BIN)/python
	$(PIP_INSTALL) --no-deps --force-reinstall $(WHEELS)/llama_cpp_python-*.whl
	scripts/setup-step venv $(PIP_INSTALL) -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(WHEELS)/.built | $(BIN)/python
	$(PIP_INSTALL) --no-deps --force-reinstall $(WHEELS)/llama_cpp_python-*.whl
	scripts/setup-step venv-dev $(PIP_INSTALL) -e '.[dev,postgres,ray]'
	touch $@ $(VENV)/.core-installed

clean-venv:
	rm -rf $(VENV)
