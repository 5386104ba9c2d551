#!/usr/bin/env bash
# The headless browser the console tests drive (tests/test_console_browser.py): Debian's own `chromium`
# package, used by Playwright through `executable_path`, so no browser is ever downloaded at test time.
# Idempotent and non-interactive; on a fresh Debian 12 run it as root (CI does). Nothing to do if it is there.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present) at /usr/bin/chromium"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-browser: /usr/bin/chromium is missing; run this script as root to install it" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null) at /usr/bin/chromium"
