#!/usr/bin/env bash
# Runs once when the dev container is created: virtualenv, install, and the
# development PKI, so `make run` and `make test` start at once.
set -euo pipefail
cd "$(dirname "$0")/.."
make install pki
