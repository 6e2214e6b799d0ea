#!/usr/bin/env bash
# Set up and run the platform on a fresh machine: SQLite in SERVICES_AI_HOME (default ./var),
# the example plugins installed, enabled and configured, an admin user, demo data, the event
# delivery worker, and the web server on http://127.0.0.1:${PORT:-8000}/ (Ctrl-C stops both).
set -euo pipefail
cd "$(dirname "$0")/.."
export SERVICES_AI_HOME="${SERVICES_AI_HOME:-$PWD/var}"
scripts/setup-venv.sh dev
sai=.venv/bin/services-ai

echo "==> migrating the database in $SERVICES_AI_HOME"
$sai migrate --no-input -v0

echo "==> installing the example plugins into $SERVICES_AI_HOME/plugins"
scripts/build-example-plugins.sh "$SERVICES_AI_HOME/wheels"
.venv/bin/uv pip install --no-config -q --no-deps --reinstall \
  --target "$SERVICES_AI_HOME/plugins/site-packages" "$SERVICES_AI_HOME"/wheels/*.whl
$sai plugins sync

if [ ! -f "$SERVICES_AI_HOME/.demo-configured" ]; then
  echo "==> first run: enabling the example plugins and granting what they ask for"
  $sai plugins configure crm-sync api_key=demo-key-0000-1234
  $sai plugins grant lead-scorer read_leads
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
trap 'kill -TERM "$worker" 2>/dev/null; wait "$worker" 2>/dev/null' EXIT INT TERM

echo "==> serving on http://127.0.0.1:${PORT:-8000}/ (admin at /admin/)"
$sai runserver --noreload "127.0.0.1:${PORT:-8000}"
