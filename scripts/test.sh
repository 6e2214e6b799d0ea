#!/usr/bin/env bash
# Set up and run the tests: lint, import contracts, type checks, then pytest.
#
#   scripts/test.sh              everything: the whole suite on SQLite and, beside it, the
#                                in-process suite again on PostgreSQL (a throwaway database)
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
# The PostgreSQL lane runs beside the SQLite one (they share nothing: each has its own home and
# database), its output shown once both are done; the run fails if either does.
pg_pid=""
if [ "${SERVICES_AI_SKIP_POSTGRES:-}" != 1 ]; then
  admin="${SERVICES_AI_TEST_POSTGRES:-postgresql://postgres@127.0.0.1:5432/test}"
  name="sai_$(.venv/bin/python -c 'import uuid; print(uuid.uuid4().hex[:10])')"
  pg_log="$(mktemp)"
  echo "==> pytest (in-process tests, PostgreSQL: test_$name on ${admin%/*}), in the background"
  DATABASE_URL="${admin%/*}/$name" .venv/bin/pytest "${in_process[@]}" --durations=10 \
    -p no:cacheprovider >"$pg_log" 2>&1 &
  pg_pid=$!
fi
echo "==> pytest (all tests, SQLite)"
sqlite_status=0
.venv/bin/pytest --durations=20 "$@" || sqlite_status=$?
pg_status=0
if [ -n "$pg_pid" ]; then
  wait "$pg_pid" || pg_status=$?
  echo "==> pytest (in-process tests, PostgreSQL): its output"
  cat "$pg_log"
  rm -f "$pg_log"
fi
if [ "$sqlite_status" != 0 ] || [ "$pg_status" != 0 ]; then
  echo "tests failed: SQLite lane exit $sqlite_status, PostgreSQL lane exit $pg_status" >&2
  exit 1
fi
