#!/usr/bin/env bash
# Run three local nodes of the platform on one PostgreSQL database, as three hosts would:
#   node-a  the plugin index, a web server on :8000 and a worker
#   node-b  a worker only
#   node-c  a web server only, on :8001
# Each has its own SERVICES_AI_HOME (its own managed plugin environment) under var/nodes/.
# Install or enable a plugin on any of them and watch the others follow:
#   SERVICES_AI_HOME=var/nodes/node-a DATABASE_URL=... .venv/bin/services-ai nodes
# Ctrl-C stops every process this script started.
#
#   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/services_ai_nodes scripts/three-nodes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL database, e.g. postgresql://postgres@127.0.0.1:5432/services_ai_nodes}"
case "$DATABASE_URL" in postgres://*|postgresql://*) ;; *)
  echo "three-nodes.sh: DATABASE_URL must be a PostgreSQL URL (SQLite cannot be shared by hosts)" >&2
  exit 2;;
esac
export DATABASE_URL
scripts/setup-venv.sh dev
sai="$PWD/.venv/bin/services-ai"
root="$PWD/var/nodes"
mkdir -p "$root"
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  SERVICES_AI_HOME="$root/node-a" "$sai" index stop || true
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# Hosts share the keys: one Django secret key (sessions) and one key of secret plugin settings.
[ -f "$root/secret-settings.key" ] || SERVICES_AI_HOME="$root" "$sai" plugins rotate-secrets --new-key >"$root/secret-settings.key"
[ -f "$root/django-secret-key" ] || python3 -c "import secrets; print(secrets.token_urlsafe(50))" >"$root/django-secret-key"
chmod 600 "$root/secret-settings.key" "$root/django-secret-key"
SERVICES_AI_SECRET_KEYS=$(cat "$root/secret-settings.key")
DJANGO_SECRET_KEY=$(cat "$root/django-secret-key")
export SERVICES_AI_SECRET_KEYS DJANGO_SECRET_KEY

node() {  # node NAME COMMAND...: run a services-ai command as that node
  local name=$1; shift
  SERVICES_AI_HOME="$root/$name" SERVICES_AI_NODE="$name" "$sai" "$@"
}

echo "==> node-a: database, plugin index, example plugins"
node node-a migrate --no-input -v0
node node-a index init
node node-a index start
port=$(cat "$root/node-a/index/port")
password=$(cat "$root/node-a/index/password")
# The other nodes use node-a's index, as hosts would use one shared devpi.
export SERVICES_AI_INDEX_URL="http://127.0.0.1:$port/services-ai/stable"
export SERVICES_AI_INDEX_PASSWORD="$password"
scripts/build-example-plugins.sh "$root/wheels"
node node-a index publish "$root"/wheels/*.whl
node node-a plugins catalogue
node node-a ensure_admin

echo "==> starting node-a (web :8000 + worker), node-b (worker), node-c (web :8001)"
SERVICES_AI_HOME="$root/node-a" SERVICES_AI_NODE=node-a "$sai" worker &
pids+=($!)
SERVICES_AI_HOME="$root/node-a" SERVICES_AI_NODE=node-a PORT=8000 "$sai" serve &
pids+=($!)
SERVICES_AI_HOME="$root/node-b" SERVICES_AI_NODE=node-b "$sai" worker &
pids+=($!)
SERVICES_AI_HOME="$root/node-c" SERVICES_AI_NODE=node-c PORT=8001 "$sai" serve &
pids+=($!)
sleep 8
node node-a nodes
cat <<EOF

Three nodes run. Try, in another shell (same DATABASE_URL):
  SERVICES_AI_HOME=$root/node-a $sai plugins install lead-scorer
  SERVICES_AI_HOME=$root/node-a $sai nodes      # node-b and node-c follow within seconds
Console: http://127.0.0.1:8000/console/history/ (user admin, password in $root/node-a/admin-password)
Ctrl-C stops all three.
EOF
wait
