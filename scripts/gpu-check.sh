#!/usr/bin/env bash
# GPU check for the CUDA engine, on a machine with an NVIDIA GPU but no Go
# toolchain and no network: it runs what `make gpu-bundle` built here and
# carried there (bin/gptoss, bin/cuda.test, both with the kernels embedded).
# Most important first, each step under its own timeout:
#   1. the newest decode kernels against the CPU engine's ops, the golden test
#      (tiny real-format checkpoint: logits vs CPU engine and OpenAI's
#      reference, greedy tokens) with them, and the long-sequence test,
#   2. the benchmark on a synthetic full-size 20b (gptoss bench-engine):
#      load, prefill, decode at context 0 and 8k, peak VRAM, for the
#      default decode step (v16), v17 (v16 with cp.async rings and half2
#      in the MoE), v12, auto (the fastest of them, measured at load) and
#      v3 (GPTOSS_CUDA_DEC), each in
#      its own process, and --decode-weights q8 (v16 and auto); then per-kernel
#      profiles and graph/direct step times (the cuda test binary), the
#      step's trace (BF16 and q8), and
#      gpt-oss-120b's layer shapes with 8 and 18 of its layers (v16, v17,
#      each also with q8),
#   3. the older kernels' tests and the binary on the GPU: golden greedy
#      tokens with --engine cuda (also tuned: GPTOSS_CUDA_DEC=auto), doctor.
# The whole script fits in about 9 minutes (about 6 on an H100 with GPTOSS_CHECK_QUICK=1;
# GPTOSS_CHECK_120B=0 saves about 2 more).
# GPTOSS_CHECK_QUICK=1 skips v3's benchmark and the older kernels' tests;
# GPTOSS_CHECK_120B=0 skips the 120b shapes.
# Output goes to stdout; with $OUT set, also two files there (the device
# tool brings back only a few): summary.txt, the summary that ends stdout,
# and logs.tgz, every step's log.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LOGS=$(mktemp -d)
export GPTOSS_REQUIRE_GPU=1
fail=0
step() { # name timeout_s command...
	local name=$1 to=$2
	shift 2
	echo "=== $name"
	local t0=$SECONDS
	timeout --kill-after=5 "$to" "$@" 2>&1 | tee "$LOGS/$name.log"
	local rc=${PIPESTATUS[0]}
	echo "=== $name: rc=$rc in $((SECONDS - t0))s"
	[ "$rc" = 0 ] || fail=1
	return "$rc"
}

for f in bin/gptoss bin/cuda.test bin/kernels-trace.fatbin; do
	[ -e "$f" ] || { echo "missing $f: run 'make gpu-bundle' first" >&2; exit 2; }
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

# one process per group: a kernel that faults poisons its process's
# context, so the groups after it would fail too. The new kernels first,
# then the benchmark, then what passed before.
t() { local name=$1 to=$2 re=$3; (cd runtime/cuda && step "$name" "$to" ../../bin/cuda.test -test.v -test.count=1 -test.run "$re"); }
# (step runs in a subshell there: keep its verdict)
tt() { t "$@" || fail=1; }
mkdir -p /tmp/gptoss-bench
bench() { # name timeout env... [-- flags...]: bench-engine on the synthetic 20b with that environment
	local name=$1 to=$2 envs=() flags=()
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	flags=("$@")
	step "bench-$name" "$to" env ${envs[@]+"${envs[@]}"} bin/gptoss bench-engine --synthetic 20b --engine cuda --dir /tmp/gptoss-bench \
		--context 0,8192 --decode 64 --json ${flags[@]+"${flags[@]}"}
}
# the newest decode step first (v16: the router's sums in the
# out-projection, finished in the MoE kernels; programmatic dependent launch)
tt kernels-new 90 'TestKernel(Fused|MoE3|Attention|V16)$'
tt golden-new 60 'TestGoldenQ8$|TestGolden$/^(hf-v17|original-v17|hf-v16|original-v16|hf-v16-nopdl|hf-v12|original-v12|hf-v12-nopdl|hf-v7|original-v7|hf-v7-nopdl|hf-v6|hf-v3-pdl)$'
tt long 30 'TestLongSequence|TestEngine'
# GPTOSS_CUDA_DEC=auto: every version measured on the golden model, kept,
# read back; a load that ended inside v17 makes the next one reject it
tt tune 40 'TestTune$'
# each decode version in its own process, the same binary and synthetic
# model: the default (v16), v17, v12, v3
bench new 80
bench v17 45 GPTOSS_CUDA_DEC=v17
bench v12 45 GPTOSS_CUDA_DEC=v12
# auto: tuning at load on the 20b's weights (its kernels line has each
# version's step time), then the same load reading the kept result
rm -rf /tmp/gptoss-tune-home
bench auto 60 GPTOSS_CUDA_DEC=auto GPTOSS_HOME=/tmp/gptoss-tune-home
[ "${GPTOSS_CHECK_QUICK:-0}" = 1 ] || bench auto-cached 45 GPTOSS_CUDA_DEC=auto GPTOSS_HOME=/tmp/gptoss-tune-home
# --decode-weights q8 (attention and unembedding in 8 bits for decode):
# v16, and auto, whose kernels line has v16/v17/v12's step times with q8
bench q8 60 -- --decode-weights q8
bench auto-q8 60 GPTOSS_CUDA_DEC=auto GPTOSS_HOME=/tmp/gptoss-tune-home -- --decode-weights q8
[ "${GPTOSS_CHECK_QUICK:-0}" = 1 ] || bench v3 45 GPTOSS_CUDA_DEC=v3 GPTOSS_CUDA_PDL=0
layout20b=$(ls /tmp/gptoss-bench/*20b*.layout 2>/dev/null | head -1) # bench-engine's synthetic 20b
(cd runtime/cuda && GPTOSS_BENCH=20b GPTOSS_BENCH_LONG=0 GPTOSS_BENCH_LAYOUT=$layout20b \
	step profile 70 ../../bin/cuda.test -test.v -test.count=1 -test.run 'TestBenchSynthetic' -test.timeout 65s) || fail=1
# one decode step recorded warp by warp (the trace build of the kernels):
# per kernel, the wait after the previous one, the streaming time, the tail
(cd runtime/cuda && GPTOSS_TRACE_LAYOUT=$layout20b GPTOSS_CUDA_KERNELS=$ROOT/bin/kernels-trace.fatbin \
	step trace 60 ../../bin/cuda.test -test.v -test.count=1 -test.run 'TestDecodeTrace' -test.timeout 55s) || fail=1
(cd runtime/cuda && GPTOSS_TRACE_LAYOUT=$layout20b GPTOSS_CUDA_KERNELS=$ROOT/bin/kernels-trace.fatbin GPTOSS_DECODE_Q8=1 \
	step trace-q8 60 ../../bin/cuda.test -test.v -test.count=1 -test.run 'TestDecodeTrace' -test.timeout 55s) || fail=1
# what one kernel of a layer's size streams from HBM (and from L2)
(cd runtime/cuda && GPTOSS_BENCH=20b step probe 40 ../../bin/cuda.test -test.v -test.count=1 -test.run 'TestBandwidthProbe') || fail=1
# gpt-oss-120b's layer shapes (128 experts) with 8 and 18 of its 36 layers
# (the full 65 GB layout does not fit this disk): decode at context 0; the
# two give the per-layer time, so the full model's step is extrapolated
b120() { # layers dec...: decode at context 0 on the 120b shapes, each decode version in its own process
	local L=$1
	shift
	for v in "$@"; do # v16, or v16-q8: --decode-weights q8
		local w=bf16
		case $v in *-q8) w=q8 ;; esac
		step "bench-120b-L$L-$v" 100 env GPTOSS_CUDA_DEC="${v%-q8}" bin/gptoss bench-engine --synthetic 120b --layers "$L" \
			--engine cuda --dir /tmp/gptoss-bench --context 0 --decode 64 --json --decode-weights "$w"
	done
	rm -f /tmp/gptoss-bench/*120b-L"$L"-*
}
if [ "${GPTOSS_CHECK_120B:-1}" = 1 ]; then
	b120 8 v16 v17 v16-q8 v17-q8
	b120 18 v16 v17 v16-q8 v17-q8
fi
if [ "${GPTOSS_CHECK_QUICK:-0}" != 1 ]; then # the older kernels
tt kernels-attn 20 'TestKernelAttention$'
tt golden-fused 30 'TestGolden$/^(hf-fused|original-fused|hf-fused-tc)$'
tt kernels-matvec 20 'TestKernelMatVecBF16$'
tt kernels-moe-tc 20 'TestKernelMoE$/^tc$'
tt kernels-sample 20 'TestKernelSample$'
tt kernels-base 25 'TestKernel(Embed|RMSNorm|RopeKV|RouterTopK|Argmax)$'
tt kernels-moe 25 'TestKernelMoE$/^v1$'
tt golden-old 25 'TestGolden$/^(hf|original)$'
fi
# the binary on the GPU: the golden checkpoint pulled from its folder, greedy
# tokens with --engine cuda must be the reference's (testdata golden.json)
cli_check() {
	export GPTOSS_HOME=/tmp/gptoss-cli-home
	local prompt want out
	prompt=$(python3 -c 'import json;g=json.load(open("testdata/golden/tiny/golden.json"))["greedy_f32"];print(",".join(map(str,g["prompt"])))') || return 2
	want=$(python3 -c 'import json;g=json.load(open("testdata/golden/tiny/golden.json"))["greedy_f32"];print(",".join(map(str,g["generated"])))') || return 2
	bin/gptoss pull ./testdata/golden/tiny --quiet || return 1
	out=$(bin/gptoss run local/tiny --tokens "$prompt" --max-tokens 8 --temperature 0 --json --engine cuda) || return 1
	echo "$out"
	case "$out" in
	*'"engine":"cuda"'*"\"generated\":[$want]"*) echo "cli: cuda greedy tokens = reference [$want]" ;;
	*) echo "cli: FAIL: want engine cuda and generated [$want]"; return 1 ;;
	esac
	# GPTOSS_CUDA_DEC=auto through the binary: tuned at the first load (kept
	# under $GPTOSS_HOME/tune), read back at the second; the same tokens
	local i
	rm -rf "$GPTOSS_HOME/tune" # (a rerun on the same machine measures again)
	for i in 1 2; do
		out=$(GPTOSS_CUDA_DEC=auto bin/gptoss run local/tiny --tokens "$prompt" --max-tokens 8 --temperature 0 --json --engine cuda) || return 1
		echo "$out"
		case "$i:$out" in
		1:*"\"generated\":[$want]"*'"kernels":"decode v'*' (tuned:'* | 2:*"\"generated\":[$want]"*'"kernels":"decode v'*' (tuned, cached:'*)
			echo "cli: auto load $i: tuned$([ $i = 2 ] && echo ', cached'), greedy tokens = reference" ;;
		*) echo "cli: FAIL: auto load $i: want the tuned kernels line and generated [$want]"; return 1 ;;
		esac
	done
	ls "$GPTOSS_HOME"/tune/cuda-*.json >/dev/null || { echo "cli: FAIL: no tuning file under $GPTOSS_HOME/tune"; return 1; }
	# --decode-weights q8: the Q8 decode kernels, the reference's tokens
	out=$(bin/gptoss run local/tiny --tokens "$prompt" --max-tokens 8 --temperature 0 --json --engine cuda --decode-weights q8) || return 1
	echo "$out"
	case "$out" in
	*"\"generated\":[$want]"*'"kernels":"decode v'*' q8"'*) echo "cli: q8 decode weights: greedy tokens = reference" ;;
	*) echo "cli: FAIL: q8: want the q8 kernels line and generated [$want]"; return 1 ;;
	esac
	# sampling on the device (temperature, top-p, seed) against the CPU
	# engine's host sampling with the same seed: the same tokens unless a
	# draw lands within rounding of a boundary between two tokens
	local gc gg
	gc=$(bin/gptoss run local/tiny --tokens "$prompt" --max-tokens 16 --temperature 0.9 --top-p 0.95 --seed 7 --json --engine cpu) || return 1
	gg=$(bin/gptoss run local/tiny --tokens "$prompt" --max-tokens 16 --temperature 0.9 --top-p 0.95 --seed 7 --json --engine cuda) || return 1
	echo "cpu  $gc"
	echo "cuda $gg"
	if [ "${gc#*generated}" = "${gg#*generated}" ]; then echo "cli: sampled tokens: cuda (device sampling) = cpu"; else echo "cli: sampled tokens differ (cuda device sampling vs cpu)"; fi
}
export -f cli_check
step cli 30 bash -c cli_check
step doctor 10 bin/gptoss doctor 20b
echo "profilers here: $(command -v ncu nsys 2>/dev/null | tr '\n' ' ') $(ls -d /usr/local/cuda*/bin 2>/dev/null | tr '\n' ' ')"
summary() {
	echo "=== summary"
	for f in "$LOGS"/*.log; do
		n=${f##*/}
		case $n in
		bench-*) echo "$n: $(grep -o -E '"(load_seconds|prefill_tok_s|context|tok_s|peak_device_bytes)":[0-9.e+]+|"kernels":"[^"]*"' "$f" | tr '\n' ' ')" ;;
		profile.log | probe.log | trace.log) ;;
		*) echo "$n: $(grep -c -E '^\s*--- PASS' "$f") pass, $(grep -c -E '^\s*--- FAIL' "$f") fail; $(grep -h -E '^\s*--- FAIL|golden .*max|panic:|^cli:' "$f" | head -8 | tr '\n' ';')" ;;
		esac
	done
	grep -h -E '^(STEP|PROFILE|PROBE)' "$LOGS"/profile.log "$LOGS"/probe.log 2>/dev/null | head -320
	grep -h -E '^TRACE' "$LOGS"/trace.log 2>/dev/null | head -120
}
if [ -n "${OUT:-}" ]; then
	mkdir -p "$OUT"
	summary | tee "$OUT/summary.txt"
	tar -C "$LOGS" -czf "$OUT/logs.tgz" .
else
	summary
	echo "logs: $LOGS"
fi
exit $fail
