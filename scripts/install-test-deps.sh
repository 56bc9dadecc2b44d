#!/usr/bin/env bash
# Installs what the tests need beyond cargo: python3 (standard library only).
set -euo pipefail
if command -v python3 >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q python3
else
  echo "python3 is required for the interop tests; install it with your package manager" >&2
  exit 1
fi
