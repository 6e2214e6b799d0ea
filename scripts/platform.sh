#!/usr/bin/env bash
# Set up and run the platform on a fresh machine: SQLite in SERVICES_AI_HOME (default ./var),
# the embedded plugin index (devpi) with the example plugins published, then installed into the
# managed environment, enabled and configured, an admin user, demo data, the event
# delivery worker, and the web server (gunicorn, `services-ai serve`) on
# http://127.0.0.1:${PORT:-8000}/ (Ctrl-C stops the server, the worker and the index).
set -euo pipefail
cd "$(dirname "$0")/.."
export SERVICES_AI_HOME="${SERVICES_AI_HOME:-$PWD/var}"
scripts/setup-venv.sh dev
sai=.venv/bin/services-ai

echo "==> migrating the database in $SERVICES_AI_HOME"
$sai migrate --no-input -v0

echo "==> starting the plugin index (devpi-server on 127.0.0.1:${SERVICES_AI_INDEX_PORT:-3141})"
$sai index init
$sai index start
stop_all() {
  # Ctrl-C reaches the worker too (it then stops by itself): whatever its exit status, go on.
  if [ -n "${worker:-}" ]; then
    kill -TERM "$worker" 2>/dev/null || true
    wait "$worker" 2>/dev/null || true
  fi
  $sai index stop
}
trap stop_all EXIT
trap 'exit 130' INT TERM

echo "==> publishing the example plugins to the index"
scripts/build-example-plugins.sh "$SERVICES_AI_HOME/wheels"
$sai index publish "$SERVICES_AI_HOME"/wheels/*.whl

if [ ! -L "$SERVICES_AI_HOME/env/active" ]; then
  echo "==> installing the example plugins into the managed environment"
  $sai plugins install lead-scorer booking-widget crm-sync
else
  $sai plugins recover
fi
$sai plugins catalogue

if [ ! -f "$SERVICES_AI_HOME/.demo-configured" ]; then
  echo "==> first run: enabling the example plugins and granting what they ask for"
  $sai plugins configure crm-sync api_key=demo-key-0000-1234
  $sai plugins grant lead-scorer read_leads
  $sai plugins grant lead-scorer create_bookings
  $sai plugins grant booking-widget read_bookings
  $sai plugins grant crm-sync read_leads
  for plugin in lead-scorer booking-widget crm-sync; do $sai plugins enable "$plugin"; done
  $sai demo_data
  touch "$SERVICES_AI_HOME/.demo-configured"
fi
$sai ensure_admin
$sai plugins list

echo "==> starting the event delivery worker"
$sai worker --processes 1 &
worker=$!

echo "==> serving on http://127.0.0.1:${PORT:-8000}/ (console at /console/, admin at /admin/)"
# gunicorn, with SERVICES_AI_WEB_WORKERS worker processes (default 2 per CPU + 1): it collects the
# static files first (WhiteNoise serves them) and recycles its workers when the plugins change.
$sai serve --bind "127.0.0.1:${PORT:-8000}"
