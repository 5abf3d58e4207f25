# One command per task; CI calls `make test` (see .ci/run). Each creates .venv and installs the project.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tests read the shared public data in place (never copied into the project).
export SLOTHLAB_SHARED_DIR ?= $(abspath $(CURDIR)/../shared)

.PHONY: demo test install check lint format typecheck bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## demo: set up, start a local cluster (master + 2 agents on loopback), run a workflow spread over
## the agents, show agents, results and metrics, stop it (KEEP=1 leaves it up). No configuration.
demo: install
	KEEP=$(KEEP) SLOTHLAB=$(BIN)/slothlab bash examples/cluster_demo.sh

## test: set up, lint, type-check and run the whole test suite
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest --cov --cov-report=term:skip-covered

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck:
	$(BIN)/mypy

bench: install
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
