# Two commands do everything on a fresh machine (Python 3.11+ and make are all it needs):
#   make run    set up .venv, then run the example flow on the embedded defaults
#   make test   set up .venv, then lint and run the whole test suite
# On a machine without an NVIDIA GPU, torch is pinned to the CPU build (requirements/cpu.txt);
# with `nvidia-smi` present the plain requirement brings the CUDA build.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := dev,model,server,otel,encrypt,notebook,bench,test-models
CONSTRAINTS := $(if $(shell command -v nvidia-smi 2>/dev/null),,-c requirements/cpu.txt)
PYTEST_ARGS ?= -n 2

.PHONY: run test lint fmt bench clean

$(STAMP): pyproject.toml setup.py requirements/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(CONSTRAINTS) -e '.[$(EXTRAS)]'
	touch $@

# The trader example on the built-in tiny model; its spans land in .workbench/traces.duckdb.
run: $(STAMP)
	$(BIN)/workbench run trader -i "news=BOLT shares jump after a record quarter; the stock trades at 12.50" -i cash=1000
	$(BIN)/workbench traces show latest

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_executor.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
