# The two set-up commands README promises: `make run` and `make test`.
# Everything else here is a step those two depend on.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PKI    := var/pki

.PHONY: run test lint format install pki clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,pkcs11,operator]'
	touch $@

install: $(STAMP)

$(PKI)/manifest.json: | $(STAMP)
	$(PY) -m fixtures mint --out $(PKI)

pki: $(PKI)/manifest.json

var/simulator/master.key: | $(STAMP)
	$(PY) -m simulator init-master-key $@

## run: the whole local stack in the foreground; Ctrl-C stops it.
##   BACKEND=pkcs11 serves from a SoftHSMv2 token (made in var/softhsm on the
##   first run) instead of the CryptoHub simulator: `make run BACKEND=pkcs11`.
BACKEND ?= cryptohub
run: install pki var/simulator/master.key
	XKS_DEV_BACKEND=$(BACKEND) $(PY) -m fixtures stack --pki $(PKI)

## test: the whole suite (lint first, so a red lint fails fast).
test: lint
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

## bench: the whole stack under KMS-like load, 1,800 requests/s for 60 s by
## default (docs/performance.md); e.g. make bench BENCH_ARGS="--rate 900".
.PHONY: bench
bench: install
	$(PY) -m tests.bench.stack_bench $(BENCH_ARGS)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .hypothesis
