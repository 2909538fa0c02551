#!/usr/bin/env bash
# Runs each libFuzzer target for a bounded time from a seed corpus.
# usage: scripts/run_fuzzers.sh BUILD_DIR SECONDS
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1
seconds=${2:-30}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/gguf" "$work/template"
.venv/bin/python scripts/make_fuzz_seeds.py "$work/gguf"
cp tests/data/templates/*.jinja "$work/template/"

run() {
  local target=$1 corpus=$2
  echo "fuzz: $target for ${seconds}s"
  "$build/$target" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "$corpus" 2>&1 | tail -n 12
  # libFuzzer exits non-zero on a crash, leak or timeout; pipefail carries it here.
}
run fuzz_gguf "$work/gguf"
run fuzz_chat_template "$work/template"
echo "fuzz: no crash found"
