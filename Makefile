# Modelyard — every install step lives here. A fresh machine needs only Python 3.11, git and make.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
# uv from PATH, else the one pip installs into the user's Python (see `uv` target).
UV = $(shell command -v uv 2>/dev/null || echo python3 -m uv)
BUF_VERSION := 1.75.0

.PHONY: help setup demo up test lint generate docs browser bench-registry bench-serving bench-monitor bench-soak clean

help:
	@echo "make demo      set everything up and run the whole loop once (DEMO_ARGS=--keep leaves the stack running)"
	@echo "make up        set everything up and run the platform (embedded broker, SQLite, local artifacts)"
	@echo "make test      set everything up and run lint + the whole test suite"
	@echo "make generate  rebuild the generated contracts from protos/"
	@echo "make docs      regenerate docs/events.md's topic tables"

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

setup: uv
	$(UV) sync --frozen --all-packages

DEMO_ARGS ?=
demo: setup
	$(UV) run modelyard demo $(DEMO_ARGS)

up: setup
	$(UV) run modelyard up

generate: setup
	$(UV) run python protos/generate.py

docs: setup
	$(UV) run python -m modelyard.events.catalogue docs/events.md && $(UV) run python deploy/config_reference.py docs/operations.md

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

# Headless Chromium for the dashboard test (Debian packages). CI must have it; elsewhere the test skips with a notice.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	elif [ "$${CI:-}" = "true" ]; then \
		echo "the dashboard test needs chromium and chromium-driver on CI" >&2; exit 1; \
	else \
		echo "NOTICE: chromium/chromedriver not found and not root: the dashboard browser test will be skipped"; \
	fi

# One pytest worker per core (pytest-xdist); each worker has its own broker and scratch databases. A module stays on
# one worker (loadscope): its module-scoped stacks start once, and tests of one stack (tests/fault) keep their order.
test: lint browser
	$(UV) run pytest -n auto --dist loadscope --durations=15

bench-registry: setup
	$(UV) run python bench/registry/run.py
	$(UV) run python bench/registry/mlflow_flows.py

bench-serving: setup
	$(UV) run python bench/serving/run.py
	$(UV) run python bench/serving/explain.py

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache

bench-monitor: setup
	$(UV) run python bench/monitor/run.py
	$(UV) run python bench/monitor/feedback.py
	$(UV) run python bench/monitor/performance.py

# Not in `make test`: SOAK_MINUTES (default 10) of steady traffic against `modelyard up`; writes bench/soak/RESULTS.md.
bench-soak: setup
	$(UV) run python bench/soak/run.py
