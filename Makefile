# segbridge — one entry point per task. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
RUN_STAMP  = $(VENV)/.installed-run
TEST_STAMP = $(VENV)/.installed-test
# pytest-xdist workers for `make test`: twice the 2 cores, as most tests wait on servers
TEST_WORKERS ?= 4

.DEFAULT_GOAL := help
.PHONY: help run test check bench services browser clean

help: ## list the tasks
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	@touch $@ $(RUN_STAMP)

run: $(RUN_STAMP) ## start segbridge on http://127.0.0.1:8000 (migrates; first start prints a login link)
	$(BIN)/segbridge serve

services: ## start PostgreSQL if it is not running (the suite runs on SQLite and PostgreSQL)
	@scripts/ensure-services

browser: ## install Debian's chromium for the browser tests when it is missing
	@scripts/ensure-browser

test: $(TEST_STAMP) services browser ## install what the tests need and run the whole suite
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

check: $(TEST_STAMP) ## ruff and mypy (strict) on src
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: $(TEST_STAMP) ## benchmarks (receiver; flows vs segment-analytics-python); see docs/performance.md
	$(BIN)/python bench/sandbox_bench.py
	$(BIN)/python bench/flows_bench.py --rows 1000000
	$(BIN)/python bench/flows_bench.py --only ceiling
	$(BIN)/python bench/queue_bench.py 1    # the job queue (PostgreSQL): runs/s, 1-3 workers
	$(BIN)/python bench/queue_bench.py 2
	$(BIN)/python bench/queue_bench.py 3
	$(BIN)/python bench/governor_bench.py micro    # the cluster governor vs in-process
	$(BIN)/python bench/worker_bench.py --rows 300000 --rounds 2    # one big run: 1 worker vs in-process
	$(BIN)/python bench/lookup_bench.py --rows 1000000    # a flow with a lookup vs without
	$(BIN)/python bench/webhook_bench.py    # webhook requests/s and p99 into one server
	$(BIN)/python bench/parquet_bench.py --rows 1000000    # a Parquet flow vs the same rows as CSV
	$(BIN)/python bench/parquet_bench.py --rows 1000000 --typed    # ... typed as a warehouse writes it
	$(BIN)/python bench/diff_bench.py --rows 1000000    # diff syncs: first, unchanged, 1% changed

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
