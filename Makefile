# ticketsort: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
KAFKA := python3 deploy/kafka/kafka_local.py
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: help setup kafka-up kafka-down topics run train test test-fast bench bench-quick lint \
	format typecheck schemas chaos clean review

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv and install ticketsort with its dev tools (wheels are cached by uv)

# --compile-bytecode: the .pyc files are written once here, so that every Python process
# (the tests start dozens) reads them even where PYTHONDONTWRITEBYTECODE is set, instead of
# compiling torch and transformers again (about 5 s a process on a 2-core machine).
$(STAMP): pyproject.toml
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check uv
	@test -x $(PY) || python3 -m uv venv --quiet --python python3.11 $(VENV) || python3 -m uv venv --quiet $(VENV)
	python3 -m uv pip install --quiet --compile-bytecode --python $(PY) -e '.[dev]'
	@touch $(STAMP)

kafka-up: ## start the local single-node Kafka 4.x broker (no-op when it is up)
	@$(KAFKA) up

kafka-down: ## stop the local broker
	@$(KAFKA) down

topics: setup ## create the topics (idempotent)
	$(PY) -m producer_tools topics

run: setup ## quick start: broker, topics, a demo model if none, then the consumer
	@if [ -z "$$KAFKA_BOOTSTRAP_SERVERS" ]; then $(KAFKA) up >/dev/null; fi
	$(PY) -m producer_tools quickstart
	$(PY) -m consumer

review: setup ## the reviewers' web page on http://127.0.0.1:8088/ (ARGS="--port N ...")
	$(PY) -m producer_tools review-web $(ARGS)

train: setup ## retrain from the labeled archive topic (ARGS="--from-file FILE ..." for files)
	$(PY) -m training $(ARGS)

test: setup ## run the whole test suite against a real broker
	$(PY) -m pytest $(ARGS)

test-fast: setup ## unit tests only (no broker, no training)
	$(PY) -m pytest -m "not integration and not slow" $(ARGS)

BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): pyproject.toml $(STAMP)
	python3 -m uv pip install --quiet --compile-bytecode --python $(PY) -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

bench: setup $(BENCH_STAMP) ## speed and accuracy benchmarks (writes BENCHMARKS.md and bench-results/)
	@if [ -z "$$KAFKA_BOOTSTRAP_SERVERS" ]; then $(KAFKA) up >/dev/null; fi
	$(PY) -m bench $(ARGS)

bench-quick: setup ## a few-minute smoke run of the benchmarks
	@if [ -z "$$KAFKA_BOOTSTRAP_SERVERS" ]; then $(KAFKA) up >/dev/null; fi
	$(PY) -m bench --quick $(ARGS)

chaos: setup ## the failure suite (crashes, broker restarts, hostile input) with its figures
	$(PY) -m pytest -m chaos -s $(ARGS)

lint: setup ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: setup ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: setup ## mypy only
	$(VENV)/bin/mypy

schemas: setup ## re-export the event JSON Schemas into consumer/schemas/
	$(PY) -m consumer schemas

clean: ## remove caches (keeps .venv, models and the broker's data)
	rm -rf .pytest_cache .mypy_cache .ruff_cache build *.egg-info
