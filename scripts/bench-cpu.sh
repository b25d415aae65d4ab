#!/usr/bin/env bash
# make bench-cpu: the CPU engine on a synthetic model with gpt-oss-20b's layer
# shapes (hidden 2880, 32 experts top-4, 64/8 heads of 64) but 2 layers and a
# vocabulary of 8192, so it runs anywhere in a minute or two. Prints prefill
# and decode tokens/s (wall and CPU time), and peak RSS against the layout
# file's size (the engine reads weights in place from the mapping).
#
# The layout is written once to .bench/synth and reused.
# Environment: BENCH_PROMPT=256 (prefill tokens), BENCH_DECODE=32 (tokens
# per decode run), BENCH_CONTEXT=0,1024 (decode after this many tokens),
# BENCH_THREADS=0 (all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
mkdir -p .bench/synth
exec "$BIN/gptoss" bench-engine --synthetic 20b --layers 2 --vocab 8192 --engine cpu \
	--prompt "${BENCH_PROMPT:-256}" --decode "${BENCH_DECODE:-32}" --context "${BENCH_CONTEXT:-0,1024}" \
	--threads "${BENCH_THREADS:-0}" --dir .bench/synth
