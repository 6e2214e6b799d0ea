#!/usr/bin/env bash
# Set up and run the tests: lint, type checks, then pytest (arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh dev
scripts/setup-browser.sh
echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy"
.venv/bin/mypy
echo "==> pytest"
.venv/bin/pytest "$@"
