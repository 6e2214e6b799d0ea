#!/usr/bin/env bash
# Set up and run the tests: lint, import contracts, type checks, then pytest.
#
#   scripts/test.sh              everything: the whole suite on SQLite, then the in-process
#                                suite again on PostgreSQL (a throwaway database)
#   scripts/test.sh --fast       the edit loop: no child processes, no browser, SQLite only
#   scripts/test.sh -- ARGS      pass ARGS to pytest (the first lane only), e.g. -k manifest
#
# SERVICES_AI_TEST_POSTGRES names the PostgreSQL server for the second lane (default
# postgresql://postgres@127.0.0.1:5432/test; a database named test_sai_<random> is created on it
# and dropped after). SERVICES_AI_SKIP_POSTGRES=1 skips that lane.
set -euo pipefail
cd "$(dirname "$0")/.."
fast=0
if [ "${1:-}" = "--fast" ]; then fast=1; shift; fi
[ "${1:-}" = "--" ] && shift
scripts/setup-venv.sh dev
[ "$fast" = 1 ] || scripts/setup-browser.sh
echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> import contracts (lint-imports)"
.venv/bin/lint-imports
echo "==> mypy"
.venv/bin/mypy
in_process=(-m "not subprocess and not browser")
if [ "$fast" = 1 ]; then
  echo "==> pytest (fast lane: in-process tests, SQLite)"
  exec .venv/bin/pytest "${in_process[@]}" --durations=10 "$@"
fi
echo "==> pytest (all tests, SQLite)"
.venv/bin/pytest --durations=20 "$@"
if [ "${SERVICES_AI_SKIP_POSTGRES:-}" != 1 ]; then
  admin="${SERVICES_AI_TEST_POSTGRES:-postgresql://postgres@127.0.0.1:5432/test}"
  name="sai_$(.venv/bin/python -c 'import uuid; print(uuid.uuid4().hex[:10])')"
  echo "==> pytest (in-process tests, PostgreSQL: test_$name on ${admin%/*})"
  DATABASE_URL="${admin%/*}/$name" .venv/bin/pytest "${in_process[@]}" --durations=10 \
    -p no:cacheprovider
fi
