#!/usr/bin/env bash
# Installs what the tests need beyond cargo, when missing:
#   python3   the interop tests and the scripts (standard library only)
#   iproute2  `ip`: the tests that run each process on a host of its own
#             (network namespaces; those also need root, and skip without it)
#   tmux      the test of scripts/run-local.sh inside a tmux session
set -euo pipefail
have() { command -v "$1" > /dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
missing=()
have python3 || missing+=(python3)
have ip || missing+=(iproute2)
have tmux || missing+=(tmux)
[ ${#missing[@]} -gt 0 ] || exit 0
if command -v apt-get > /dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q "${missing[@]}"
else
  echo "the tests need: ${missing[*]}; install them with your package manager" >&2
  exit 1
fi
