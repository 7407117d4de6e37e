# jotkit: `make run` starts the service, `make test` runs the whole suite.
# Both set everything up first (a virtualenv in .venv with the project installed).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.jotkit-installed
PYTEST_ARGS ?=

.PHONY: setup run test lint typecheck pytest test-deps check-extras bench bench-service bench-me bench-refresh bench-multi bench-workers bench-forward-auth bench-dpop soak clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "jotkit needs Python >= 3.11 (set PYTHON=python3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	@touch $@

setup: $(STAMP)

# Ctrl-C stops the service with status 0 (also while it starts), so make reports no error.
run: $(STAMP)
	$(BIN)/jotkit serve --demo

test-deps: $(STAMP)
	@bash scripts/setup-test-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) test-deps
	$(BIN)/pytest -n 2 --dist loadgroup --timeout 600 $(PYTEST_ARGS)

test: lint typecheck pytest

# Each extra installed alone in a clean virtualenv (also part of `make test`; about a minute).
check-extras: $(STAMP)
	$(BIN)/pytest -q tests/test_extras_install.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_jwe.py

# DPoP (RFC 9449) at a resource server: overhead per request vs one ES256 verify (+ callgrind).
bench-dpop: $(STAMP)
	$(BIN)/python benchmarks/bench_dpop.py --callgrind --output benchmarks/results-dpop.md

bench-service: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		apt-get install -y -qq wrk >/dev/null 2>&1; } || \
		echo "wrk is not installed (apt-get install wrk): using the slower Python load generator"
	$(BIN)/python benchmarks/bench_service.py
	$(MAKE) bench-refresh

# Only the bare FastAPI endpoint vs GET /auth/me: 5 interleaved wrk rounds, medians (needs wrk).
bench-me: $(STAMP)
	$(BIN)/python benchmarks/bench_service.py --me-only

bench-refresh: $(STAMP)
	$(BIN)/python benchmarks/bench_refresh.py

bench-multi: $(STAMP)
	$(BIN)/python benchmarks/bench_multi.py

# jotkit serve --workers 1 vs 2, /auth/me and /auth/refresh, SQLite and PostgreSQL + Redis (needs wrk).
bench-workers: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		apt-get install -y -qq wrk >/dev/null 2>&1; } || \
		{ echo "wrk is not installed: apt-get install wrk"; exit 1; }
	$(BIN)/python benchmarks/bench_workers.py

# 10 minutes of mixed load on one instance; writes benchmarks/results-soak.md (not part of make test).
soak: $(STAMP)
	$(BIN)/python benchmarks/soak.py

# jotkit forward-auth vs a bare endpoint on the same uvicorn stack (needs wrk).
bench-forward-auth: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		apt-get install -y -qq wrk >/dev/null 2>&1; } || \
		{ echo "wrk is not installed: apt-get install wrk"; exit 1; }
	$(BIN)/python benchmarks/bench_forward_auth.py

clean:
	rm -rf $(VENV) .jotkit .pytest_cache .mypy_cache .ruff_cache test-artifacts
