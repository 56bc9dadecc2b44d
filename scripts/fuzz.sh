#!/usr/bin/env bash
# Fuzzes the XML-RPC codec (src/rpc/codec.rs) with cargo-fuzz for a bounded time.
#
# Usage:
#   scripts/fuzz.sh [SECONDS] [TARGET]
#
#   SECONDS  how long libFuzzer runs (-max_total_time); default 60
#   TARGET   parse_call (default) or parse_response; see fuzz/fuzz_targets/
#
# Examples:
#   scripts/fuzz.sh                        # parse_call for 60 s
#   scripts/fuzz.sh 600                    # parse_call for 10 minutes
#   scripts/fuzz.sh 300 parse_response
#
# Environment:
#   FUZZ_SANITIZER  address (default) or none (faster, no ASan)
#   FUZZ_MAX_LEN    largest input in bytes; default 65536
#
# It works on a stable toolchain: cargo-fuzz needs -Z flags, so the script sets
# RUSTC_BOOTSTRAP=1 (harmless on nightly). cargo-fuzz itself is installed from
# crates.io when missing (`cargo install cargo-fuzz --locked`).
#
# Inputs come from fuzz/seeds/TARGET (committed, a few valid messages) and
# fuzz/corpus/TARGET (grown by libFuzzer, gitignored); new interesting inputs
# go to fuzz/corpus/TARGET. A crash is written under fuzz/artifacts/TARGET/ and
# the script exits non-zero. Reproduce or shrink one with:
#   RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-...
#   RUSTC_BOOTSTRAP=1 cargo fuzz tmin TARGET fuzz/artifacts/TARGET/crash-...
# Not part of CI: run it by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
target="${2:-parse_call}"
sanitizer="${FUZZ_SANITIZER:-address}"
max_len="${FUZZ_MAX_LEN:-65536}"

case "$seconds" in
  '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;;
esac
if [ ! -f "fuzz/fuzz_targets/$target.rs" ]; then
  echo "fuzz.sh: no target '$target'; have: $(cd fuzz/fuzz_targets && ls -- *.rs | sed 's/\.rs$//' | tr '\n' ' ')" >&2
  exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"

# Build first so the time limit below only covers fuzzing.
cargo fuzz build --sanitizer "$sanitizer" "$target"

# libFuzzer stops itself after -max_total_time; `timeout` is a backstop in
# case it hangs. A crash, a slow input (-timeout) or running out of memory
# (-rss_limit_mb) makes libFuzzer, and so this script, exit non-zero.
timeout --kill-after=30 "$((seconds + 120))" \
  cargo fuzz run --sanitizer "$sanitizer" "$target" \
  "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
  -max_total_time="$seconds" \
  -max_len="$max_len" \
  -timeout=10 \
  -rss_limit_mb=2048 \
  -dict=fuzz/xmlrpc.dict \
  -print_final_stats=1
