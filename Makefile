# `make check` is what CI and humans run: lint, type-check, the whole test suite.
VENV ?= .venv
BIN := $(VENV)/bin
PACKAGES := controller invoker homerun

.PHONY: check lint format typecheck test test-fast bench

check: lint typecheck test

lint:
	$(BIN)/ruff check $(PACKAGES) migrations tests bench deploy
	$(BIN)/ruff format --check $(PACKAGES) migrations tests bench deploy

format:
	$(BIN)/ruff check --fix $(PACKAGES) migrations tests bench deploy
	$(BIN)/ruff format $(PACKAGES) migrations tests bench deploy

typecheck:
	$(BIN)/mypy --strict $(PACKAGES)

test:
	$(BIN)/pytest

# Only SQLite, no Docker: a quick loop while editing.
test-fast:
	HOMERUN_TEST_BACKENDS=sqlite $(BIN)/pytest -m "not docker and not slow"

# Benchmarks against a private Redis, a controller and a docker-sandbox invoker on loopback.
bench:
	$(BIN)/python -m bench
