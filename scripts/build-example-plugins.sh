#!/usr/bin/env bash
# Build the wheels of the example plugins into the folder given (default var/wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-var/wheels}"
mkdir -p "$out"
for project in example_plugins/*/; do
  if ! log=$(.venv/bin/python -m build --wheel --no-isolation --outdir "$out" "$project" 2>&1); then
    echo "$log" >&2
    echo "building $project failed" >&2
    exit 1
  fi
  rm -rf "$project/build"
  echo "built $(basename "$project")"
done
