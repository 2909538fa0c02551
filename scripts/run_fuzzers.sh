#!/usr/bin/env bash
# Runs each libFuzzer target for a bounded time from a seed corpus.
# usage: scripts/run_fuzzers.sh BUILD_DIR SECONDS
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1
seconds=${2:-30}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/gguf" "$work/template" "$work/config"
.venv/bin/python scripts/make_fuzz_seeds.py "$work/gguf" "$work/config"
cp tests/data/templates/*.jinja "$work/template/"
# Server request bodies: the first byte picks the endpoint (0 OpenAI chat, 1 completions,
# 2 Ollama chat, 3 Ollama generate, 4 OpenAI embeddings, 5 Ollama embed, 6 Ollama embeddings).
mkdir -p "$work/server"
printf '\000{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"hi \\u00e9"}]}],"stream":true,"stream_options":{"include_usage":true},"temperature":0.5,"top_p":0.9,"max_tokens":16,"stop":["\\n","END"],"seed":42,"presence_penalty":0.1,"frequency_penalty":-0.2,"n":1,"response_format":{"type":"text"}}' >"$work/server/chat"
printf '\001{"model":"m","prompt":["The sky is"],"max_tokens":8,"stop":"\\n","seed":-1}' >"$work/server/completion"
printf '\002{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false,"options":{"temperature":0,"num_predict":-2,"top_k":40,"min_p":0.05,"repeat_penalty":1.1,"repeat_last_n":64,"stop":["a"],"seed":7}}' >"$work/server/ollama_chat"
printf '\003{"model":"m:latest","prompt":"Why?","system":"Be brief.","raw":false,"format":"","options":{"num_predict":5}}' >"$work/server/ollama_generate"
printf '\000{"model":"m","messages":[{"role":"user","content":"JSON"}],"response_format":{"type":"json_object"}}' >"$work/server/chat_json"
printf '\002{"model":"m","messages":[{"role":"user","content":"JSON"}],"format":"json"}' >"$work/server/ollama_json"
printf '\004{"model":"m","input":[[1,2],"two",[3]],"encoding_format":"base64","dimensions":576}' >"$work/server/embeddings"
printf '\005{"model":"m","input":["a","b"],"truncate":false}' >"$work/server/ollama_embed"
printf '\006{"model":"m","prompt":"hello"}' >"$work/server/ollama_embeddings"
# JSON mode (fuzz_json_constraint): the first byte sets the limits, then a document; after a
# 0xfe byte, a vocabulary (pieces split by 0xff), and after another 0xfe the token choices.
mkdir -p "$work/json"
printf '\000{"a": [1, -2.5e3, true, null, "x\\u00e9\\ud83d\\ude00"], "b": {}}' >"$work/json/doc"
printf '\011{"k":"v"}\376{"\377"\377:\3771\377}\377"a\377\\u\37700e9\377\303\377\251\377"}\376\001\002\003\004\005\006\007\010\011\012\013\014' >"$work/json/filter"

run() {
  local target=$1 corpus=$2
  echo "fuzz: $target for ${seconds}s"
  "$build/$target" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "$corpus" 2>&1 | tail -n 12
  # libFuzzer exits non-zero on a crash, leak or timeout; pipefail carries it here.
}
run fuzz_gguf "$work/gguf"
run fuzz_chat_template "$work/template"
run fuzz_server_request "$work/server"
run fuzz_json_constraint "$work/json"
run fuzz_config "$work/config"
echo "fuzz: no crash found"
