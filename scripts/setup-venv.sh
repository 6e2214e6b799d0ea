#!/usr/bin/env bash
# Create .venv if missing and install the platform (editable) with the given extras.
# Usage: scripts/setup-venv.sh [EXTRAS]   e.g. scripts/setup-venv.sh dev
# Installs ignore this machine's pip configuration, so only PyPI is used.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_INDEX_URL
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $python"
  "$python" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  echo "==> installing uv into .venv"
  .venv/bin/python -m pip install -q "uv>=0.5"
fi
target="."
[ -n "$extras" ] && target=".[$extras]"
echo "==> installing services-ai $target"
.venv/bin/uv pip install --no-config -q --python .venv/bin/python -e "$target"
