# Two commands do everything on a fresh machine (Python 3.11+ and make are all it needs):
#   make run    set up .venv from the lock, run the example flow on the embedded defaults, then
#               open the app on the example flows (http://127.0.0.1:5006; Ctrl-C stops it)
#   make test   set up .venv from the lock, then lint, type-check and run the whole test suite
# Installs come from a committed lock (exact versions): requirements/lock-cpu.txt on machines
# without an NVIDIA GPU, requirements/lock-cuda.txt with `nvidia-smi` present. `make lock`
# regenerates both from pyproject.toml; `make test-latest` tries the newest allowed versions
# in a second venv, so upgrades happen on purpose.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP_VERSION := 26.3
HAS_GPU := $(shell command -v nvidia-smi 2>/dev/null)
LOCK   := requirements/lock-$(if $(HAS_GPU),cuda,cpu).txt
PYTEST_ARGS ?= -n 2

# For `make lock` and `make test-latest`: where the torch CPU build can be found (a folder or a
# wheel index URL); this machine kind keeps it in /opt/wheels.
TORCH_CPU_WHEELS ?= /opt/wheels
LOCK_FLAGS := --all-extras --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
              -c requirements/torch.txt --custom-compile-command "make lock" --quiet

.PHONY: run example test test-latest lint fmt lock bench clean

$(STAMP): pyproject.toml setup.py $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q pip==$(PIP_VERSION)
	$(BIN)/python -m pip install -q -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

# The trader example on the built-in tiny model (spans in .workbench/traces.duckdb), then the
# app on the example flows, owning that trace file.
run: example
	$(BIN)/workbench serve

example: $(STAMP)
	$(BIN)/workbench run trader -i "news=BOLT shares jump after a record quarter; the stock trades at 12.5" -i cash=1000
	$(BIN)/workbench traces show latest

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Regenerate both locks from pyproject.toml (needs the registries; uv comes with the dev extra).
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml $(LOCK_FLAGS) --find-links $(TORCH_CPU_WHEELS) -o requirements/lock-cpu.txt
	$(BIN)/uv pip compile pyproject.toml $(LOCK_FLAGS) -o requirements/lock-cuda.txt

# The newest versions pyproject.toml allows (torch stays on requirements/torch.txt's release
# where there is no GPU: its CPU build), in .venv-latest, then the same checks as `make test`.
LATEST := .venv-latest
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip
	$(LATEST)/bin/python -m pip install -q --upgrade --upgrade-strategy eager \
		$(if $(HAS_GPU),,-c requirements/torch.txt --find-links $(TORCH_CPU_WHEELS)) -e '.[all]'
	$(LATEST)/bin/python -m pip freeze --exclude-editable > $(LATEST)/freeze.txt
	$(LATEST)/bin/ruff check .
	$(LATEST)/bin/ruff format --check .
	$(LATEST)/bin/mypy
	$(LATEST)/bin/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_executor.py

clean:
	rm -rf $(VENV) $(LATEST) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache
