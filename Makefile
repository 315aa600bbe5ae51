# scalebook: `make book` builds the book, `make test` runs the tests. Both set up .venv from the lock file.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.scalebook-installed
JOBS ?= 2

.PHONY: book test env runs smoke check archive bench lock data-verify browser-deps clean distclean

# The environment: exact versions from requirements.lock, then scalebook itself (editable, no deps).
$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "scalebook needs Python 3.11, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

env: $(STAMP)

## Build the whole book from the bundled data into _build/html (reuses unchanged runs).
book: $(STAMP)
	$(BIN)/scalebook run --all --jobs $(JOBS)
	$(BIN)/scalebook book

## Run the test suite (unit, statistics, pipeline, book build, browser).
test: $(STAMP) browser-deps
	$(BIN)/python -m pytest -n 2 --dist loadgroup

## Every notebook with its small `smoke` parameter set, and a book from those runs.
smoke: $(STAMP)
	$(BIN)/scalebook run --all --set smoke --jobs $(JOBS)
	$(BIN)/scalebook book

check: $(STAMP)
	$(BIN)/scalebook check

archive: $(STAMP)
	$(BIN)/scalebook archive

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

data-verify: $(STAMP)
	$(BIN)/scalebook data verify

# Debian's Chromium for the browser test (root only; the test skips with a reason where it is missing).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; } ; } || true
	@command -v chromium >/dev/null 2>&1 && echo "chromium: $$(chromium --version 2>/dev/null)" || echo "chromium: not available (browser test will skip)"

## Re-resolve the lock file from pyproject.toml (needs the package index).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	{ echo "# Exact versions of every package scalebook installs (Python 3.11, Linux x86_64)."; \
	  echo "# Generated with: make lock  (pip freeze of a venv built from pyproject.toml's dependencies + [test] extras)."; \
	  .venv-lock/bin/pip freeze --all --exclude-editable | grep -v -i -E '^(scalebook|pip)=='; } > requirements.lock
	rm -rf .venv-lock

clean:
	rm -rf _build book/_generated test-artifacts

distclean: clean
	rm -rf $(VENV)
