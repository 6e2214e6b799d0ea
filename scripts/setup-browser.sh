#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests if it is missing (Playwright cannot download
# browsers here). Needs root, or sudo without a password.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
echo "==> installing chromium (Debian package) for the browser tests"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo -n"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq chromium >/dev/null
command -v chromium
