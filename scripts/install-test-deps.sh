#!/usr/bin/env bash
# Installs what the tests need beyond cargo, when missing:
#   python3     the interop tests and the scripts (standard library only)
#   iproute2    `ip`: the tests that run each process on a host of its own
#               (network namespaces; those also need root, and skip without it)
#   tmux        the test of scripts/run-local.sh inside a tmux session
#   chromium    Debian's headless browser, for the scoreboard page's test
#               (tests/web_browser.rs); never a browser a tool downloads
#   playwright  Python's Playwright package, which drives that chromium
#               (pointed at /usr/bin/chromium; `playwright install` is never run)
set -euo pipefail
have() { command -v "$1" > /dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
missing=()
have python3 || missing+=(python3)
have ip || missing+=(iproute2)
have tmux || missing+=(tmux)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# pip, for Playwright, where the python3 on the PATH has none.
if ! have python3 || ! python3 -m pip --version > /dev/null 2>&1; then
  missing+=(python3-pip)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get > /dev/null 2>&1; then
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q "${missing[@]}"
  else
    echo "the tests need: ${missing[*]}; install them with your package manager" >&2
    exit 1
  fi
fi
# Playwright for the python3 the tests run. Debian's own python3 refuses
# pip installs outside a venv unless told (PEP 668); the package only adds
# a module and its bundled driver, which is what we want here.
if ! python3 -c "import playwright.sync_api" > /dev/null 2>&1; then
  python3 -m pip install -q --break-system-packages playwright \
    || python3 -m pip install -q playwright
fi
