# Two entry points for a fresh machine: `make plan` and `make test`.
# Both create the environment first; nothing outside this checkout is touched
# except the uv cache.

UV_VERSION := 0.13.9
PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
STACK ?= stacks/Pulumi.aws-10k.yaml
OUT ?= out/$(basename $(notdir $(subst Pulumi.,,$(STACK))))

export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON := $(PYTHON)
# Compile at install: these machines set PYTHONDONTWRITEBYTECODE, and every `xxl` run would
# otherwise compile the provider SDKs again (about half a second each time).
export UV_COMPILE_BYTECODE := 1

.PHONY: env plan render test lint typecheck unit bench bench-load golden clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --quiet --compile-bytecode
	touch $@

env: $(VENV)/.synced

plan: env
	$(VENV)/bin/xxl render --stack $(STACK) --out $(OUT)
	$(VENV)/bin/xxl plan --stack $(STACK)

lint: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: env
	$(VENV)/bin/mypy

unit: env
	$(VENV)/bin/pytest

test: lint typecheck unit

golden: env
	UPDATE_GOLDEN=1 $(VENV)/bin/pytest tests/test_golden.py

bench: env
	$(VENV)/bin/python bench/render.py
	$(VENV)/bin/python bench/plan.py

# Viewers against the signaling twin (root, and Jitsi's plugins as for the twin tests); about
# 40 minutes. Writes bench/results/ (capacity.md, capacity.png, load.json).
bench-load: env
	$(VENV)/bin/python bench/load.py

clean:
	rm -rf $(VENV) $(TOOLS) out .pytest_cache .mypy_cache .ruff_cache .hypothesis
