# Modelyard — every install step lives here. A fresh machine needs only Python 3.11, git and make.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
# uv from PATH, else the one pip installs into the user's Python (see `uv` target).
UV = $(shell command -v uv 2>/dev/null || echo python3 -m uv)
BUF_VERSION := 1.75.0

.PHONY: help setup demo up test lint generate docs bench-registry bench-serving bench-monitor clean

help:
	@echo "make demo      set everything up and run the platform (embedded broker, SQLite, local artifacts)"
	@echo "make test      set everything up and run lint + the whole test suite"
	@echo "make generate  rebuild the generated contracts from protos/"
	@echo "make docs      regenerate docs/events.md's topic tables"

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

setup: uv
	$(UV) sync --frozen --all-packages

demo: setup
	$(UV) run modelyard up

up: demo

generate: setup
	$(UV) run python protos/generate.py

docs: setup
	$(UV) run python -m modelyard.events.catalogue docs/events.md

lint: setup
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	@if command -v npx >/dev/null 2>&1; then \
		cd protos && npx --yes @bufbuild/buf@$(BUF_VERSION) lint; \
	elif [ "$${CI:-}" = "true" ]; then \
		echo "buf lint needs Node (npx) and must run on CI" >&2; exit 1; \
	else \
		echo "NOTICE: Node/npx not found: skipping 'buf lint' of protos/ (CI runs it)"; \
	fi

test: lint
	$(UV) run pytest

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
