#!/usr/bin/env bash
# run/logits/serve on a GPU machine (no Go, no network): what `make
# gpu-bundle` built (bin/gptoss with the kernels, bin/gptoss-testhub).
# The golden checkpoint and a fixture model are pulled from a local test
# hub, then logits/run go through --engine cpu, cuda and auto (the doctor
# plan), and serve answers on auto. Outputs land in $OUT.
set -u
cd "$(dirname "$0")/../../.."
B=$PWD/bin OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
W=$(mktemp -d)
export GPTOSS_HOME=$W/cache GPTOSS_FORCE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$B/gptoss-testhub" gen --tiny --out "$W/fx" >/dev/null
"$B/gptoss-testhub" --repo "openai/gpt-oss-20b=$PWD/testdata/golden/tiny" --repo "test/tiny=$W/fx" --ready-file "$W/ready" >"$W/hub.log" 2>&1 &
HUB=$!
for _ in $(seq 100); do [ -s "$W/ready" ] && break; sleep 0.1; done
export $(cat "$W/ready")
"$B/gptoss" pull 20b -q >/dev/null && "$B/gptoss" pull hf://test/tiny -q >/dev/null || { cat "$W/hub.log"; exit 1; }
T=615,698,563,49,281,129,337,171,468,905,787,858,409,376,449,121
for eng in cpu cuda auto; do
  timeout 60 "$B/gptoss" logits 20b --tokens $T --all --json --engine $eng >"$OUT/logits-$eng.json" 2>"$OUT/logits-$eng.err"
  echo "logits $eng rc=$? $(head -c 60 "$OUT/logits-$eng.err")"
  timeout 60 "$B/gptoss" run 20b --tokens $T --max-tokens 8 --temperature 0 --json --engine $eng 2>&1 | tee "$OUT/greedy-$eng.json"
done
timeout 60 "$B/gptoss" run hf://test/tiny -p "Hello" --max-tokens 20 --seed 1 --json 2>&1 | tee "$OUT/chat-auto.json"
"$B/gptoss" serve hf://test/tiny --addr 127.0.0.1:0 --json >"$W/s.out" 2>"$OUT/serve.err" &
S=$!
for _ in $(seq 300); do [ -s "$W/s.out" ] && break; sleep 0.1; done
cat "$W/s.out"
URL=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$W/s.out")
curl -s "$URL/v1/chat/completions" -d '{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":16,"seed":2}'; echo
curl -sN "$URL/v1/chat/completions" -d '{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"stream":true}' | tail -3
kill -TERM $S; wait $S; echo "serve exit rc=$?"
cat "$OUT/serve.err"
kill $HUB
