# DataFactor — one Makefile for people and CI. `make run` and `make test` are the quick start.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
export DATAFACTOR_DATABASE_URL ?= sqlite:///var/datafactor.db

.PHONY: help install build-deps system-deps catalogs migrate demo run serve test lint typecheck bench soak clean

help:
	@echo "make run    install, migrate, load the demo province, serve on http://$(HOST):$(PORT)"
	@echo "make test   lint + the whole test suite on SQLite and PostgreSQL, with browser tests"
	@echo "make bench  benchmarks -> docs/benchmarks.md      make soak  long crash/soak runs"

# Installs the Debian packages listed in $$missing when we are root; otherwise says what is missing.
APT_INSTALL_MISSING = if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing system packages (need root to install):$$missing"; fi; \
	fi

# The ledger's native verify code (src/datafactor/ledger/_native.c, built by `pip install -e .`)
# needs a C compiler and OpenSSL's and SQLite's headers; without them the install still succeeds
# and `ledger verify` runs its Python fallback (slower; tests/ledger/test_batch.py reports it).
build-deps:
	@missing=""; \
	command -v gcc >/dev/null || missing="$$missing gcc"; \
	[ -e /usr/include/openssl/sha.h ] || missing="$$missing libssl-dev"; \
	[ -e /usr/include/sqlite3.h ] || missing="$$missing libsqlite3-dev"; \
	$(APT_INSTALL_MISSING)

$(STAMP): requirements.lock.txt pyproject.toml src/datafactor/ledger/_native.c | build-deps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP) catalogs

# Browser tests need Debian's chromium (+ CJK fonts), database tests PostgreSQL's server binaries,
# the API benchmark wrk, the Spark engine and its tests a Java runtime (17+), the MySQL reader tests
# MariaDB's server (mariadbd; mariadb-install-db needs the client's my_print_defaults). Installed when
# missing and we are root; otherwise the tests say what is missing and skip (and CI fails on such
# a skip).
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || missing="$$missing fonts-wqy-microhei"; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v java >/dev/null || [ -x "$$JAVA_HOME/bin/java" ] || missing="$$missing default-jre-headless"; \
	command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || missing="$$missing mariadb-server-core"; \
	command -v my_print_defaults >/dev/null || missing="$$missing mariadb-client-core"; \
	$(APT_INSTALL_MISSING)

# Rewrites a .mo only when its content changed, atomically (a server may be reading it).
catalogs: $(STAMP)
	$(BIN)/python scripts/i18n.py compile >/dev/null

migrate: install
	$(BIN)/datafactor db upgrade

demo: migrate
	$(BIN)/datafactor demo load

run: demo
	@$(BIN)/datafactor demo users
	@echo "Serving on http://$(HOST):$(PORT)  (Ctrl-C to stop)"
	$(BIN)/datafactor serve --host $(HOST) --port $(PORT)

serve: install
	$(BIN)/datafactor serve --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/lint-imports --no-cache

typecheck: install
	$(BIN)/mypy

# Test processes (pytest-xdist workers): one per core, at most 4. They share one PostgreSQL server;
# the Spark and MariaDB tests each run in one worker (tests/support/xdist_groups.py). A worker that
# dies fails the run (no restart: pytest-xdist 3.8 can hang rescheduling its tests). TEST_WORKERS=0:
# one process.
TEST_WORKERS ?= $(shell n=$$(nproc); echo $$(( n < 4 ? n : 4 )))

test: install system-deps lint typecheck
	$(BIN)/python -m pytest -q -m "not soak" -n $(TEST_WORKERS) --dist loadgroup --max-worker-restart=0 $(PYTEST_ARGS)

bench: install system-deps
	$(BIN)/python bench/run.py $(BENCH_ARGS)

soak: install system-deps
	DATAFACTOR_SOAK=1 $(BIN)/python -m pytest -q -m soak $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis .ruff_cache .mypy_cache .import_linter_cache
	find src \( -name '*.mo' -o -name '*.so' \) -delete
