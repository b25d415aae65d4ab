#!/usr/bin/env bash
# make demo: the main job end to end, offline. A local Hugging Face test hub
# serves a tiny gpt-oss-shaped model as openai/gpt-oss-20b; gptoss pulls it
# (only the hf format's files), verifies it, lists it and prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
work=$(mktemp -d "${TMPDIR:-/tmp}/gptoss-demo.XXXXXX")
hub_pid=
cleanup() { [ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

echo "== writing a tiny gpt-oss checkpoint (HF layout + original/ + metal/)"
"$BIN/gptoss-testhub" gen --tiny --out "$work/repo" >/dev/null

echo "== starting the test hub on loopback"
"$BIN/gptoss-testhub" --repo "openai/gpt-oss-20b=$work/repo" --ready-file "$work/ready" >"$work/hub.log" 2>&1 &
hub_pid=$!
for _ in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.1; done
[ -s "$work/ready" ] || { cat "$work/hub.log"; exit 1; }
export $(cat "$work/ready")   # HF_ENDPOINT=http://127.0.0.1:PORT
export GPTOSS_HOME="$work/cache"
echo "   $HF_ENDPOINT"

set -x
"$BIN/gptoss" doctor 20b  # this machine, and where 20b would run
"$BIN/gptoss" pull 20b
"$BIN/gptoss" convert 20b # already done by pull: prints the layout file
"$BIN/gptoss" verify 20b
"$BIN/gptoss" list
ls "$("$BIN/gptoss" path 20b)"
"$BIN/gptoss" pull 20b    # second pull: nothing to download

# Air gap: export to one tar (an OCI image layout), then import it into a
# second cache with the network off (GPTOSS_OFFLINE=1, no reachable hub),
# and verify it there.
"$BIN/gptoss" export 20b --to "$work/usb/gpt-oss-20b.tar"
GPTOSS_HOME="$work/airgapped" GPTOSS_OFFLINE=1 HF_ENDPOINT=http://127.0.0.1:9 "$BIN/gptoss" import "$work/usb/gpt-oss-20b.tar"
GPTOSS_HOME="$work/airgapped" GPTOSS_OFFLINE=1 HF_ENDPOINT=http://127.0.0.1:9 "$BIN/gptoss" verify 20b

# Last: ask the model a question. The demo model's weights are random, so
# its answer is nonsense, but every stage runs: tokenizer, Harmony prompt,
# the engine the doctor plan picks, sampling, streaming.
"$BIN/gptoss" run 20b -p "What is the capital of France?" --max-tokens 24 --seed 1
