#!/usr/bin/env bash
# Serving speed on a GPU machine (no Go, no network), with what `make
# gpu-bundle` built: a synthetic model of gpt-oss-20b's real dimensions
# (random weights, 13.8 GB) is generated, pulled from a local test hub,
# converted, served on the doctor plan's engine; requests of 1 and 257
# tokens give the decode rate through the API, greedy and sampled.
set -u
cd "$(dirname "$0")/../../.."
B=$PWD/bin OUT=${OUT:-/tmp/gpu-bench}
mkdir -p "$OUT"
W=${WORK:-$(mktemp -d)}
export GPTOSS_HOME=$W/cache GPTOSS_FORCE=1
t0=$(date +%s)
"$B/gptoss-testhub" gen ${GEN_ARGS:---preset 20b --original none --metal-bytes -1} --out "$W/fx" >/dev/null || exit 1
echo "generated in $(($(date +%s) - t0))s"; t0=$(date +%s)
"$B/gptoss-testhub" --repo "openai/gpt-oss-20b=$W/fx" --ready-file "$W/ready" >"$W/hub.log" 2>&1 &
HUB=$!
for _ in $(seq 600); do [ -s "$W/ready" ] && break; sleep 0.1; done
export $(cat "$W/ready")
"$B/gptoss" pull 20b 2>&1 | tail -2
echo "pulled+converted in $(($(date +%s) - t0))s"; t0=$(date +%s)
"$B/gptoss" serve 20b --addr 127.0.0.1:0 --json >"$W/s.out" 2>"$OUT/serve.err" &
S=$!
for _ in $(seq 1200); do [ -s "$W/s.out" ] && break; sleep 0.1; done
cat "$W/s.out"; echo "loaded in $(($(date +%s) - t0))s"
URL=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$W/s.out")
req() { # max_tokens extra-json
  local a b
  a=$(date +%s.%N)
  curl -s "$URL/v1/chat/completions" -d "{\"model\":\"20b\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"max_tokens\":$1$2}" >"$OUT/resp.json"
  b=$(date +%s.%N)
  awk "BEGIN{print $b - $a}"
}
req 8 ',"temperature":0' >/dev/null # warm-up
for mode in ',"temperature":0' ',"temperature":1' ',"temperature":1,"top_p":0.9'; do
  t1=$(req 1 "$mode"); t257=$(req 257 "$mode")
  echo "mode{$mode} 1 token: ${t1}s, 257 tokens: ${t257}s, decode: $(awk "BEGIN{printf \"%.1f\", 256 / ($t257 - $t1)}") tok/s"
done
grep -o '"usage":{[^}]*}' "$OUT/resp.json"
kill -TERM $S; wait $S; echo "serve exit rc=$?"
tail -12 "$OUT/serve.err"
kill $HUB
