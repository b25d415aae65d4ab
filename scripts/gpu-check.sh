#!/usr/bin/env bash
# GPU check for the CUDA engine, on a machine with an NVIDIA GPU but no Go
# toolchain and no network: it runs what `make gpu-bundle` built here and
# carried there (bin/gptoss, bin/cuda.test, both with the kernels embedded).
# Most important first, each step under its own timeout:
#   1. the kernel tests (each kernel against the CPU engine's op),
#   2. the golden test (tiny real-format checkpoint: logits vs CPU engine and
#      OpenAI's reference, greedy tokens) and the long-sequence test,
#   3. the binary on the GPU: golden greedy tokens with --engine cuda, doctor,
#   4. the benchmark on a synthetic full-size 20b (gptoss bench-engine):
#      load, prefill, decode at context 0 and 8k, peak VRAM, for the new
#      kernels (fused one-token step, tensor-core MoE and GEMM prefill) and
#      the old ones (GPTOSS_CUDA_FUSED=0 GPTOSS_CUDA_MOE=v1 GPTOSS_CUDA_GEMM=v1),
#      each in its own process;
#      then per-kernel profiles of both and graph/direct step times (the
#      cuda test binary, short context only).
# The whole script fits in about 4 minutes.
# Logs go to $OUT (when set) as well as stdout.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export GPTOSS_REQUIRE_GPU=1
fail=0
step() { # name timeout_s command...
	local name=$1 to=$2
	shift 2
	echo "=== $name"
	local t0=$SECONDS
	timeout --kill-after=5 "$to" "$@" 2>&1 | tee "$OUT/$name.log"
	local rc=${PIPESTATUS[0]}
	echo "=== $name: rc=$rc in $((SECONDS - t0))s"
	[ "$rc" = 0 ] || fail=1
	return "$rc"
}

for f in bin/gptoss bin/cuda.test; do
	[ -x "$f" ] || { echo "missing $f: run 'make gpu-bundle' first" >&2; exit 2; }
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

# one process per group: a kernel that faults poisons its process's
# context, so the groups after it would fail too. The new kernels first,
# then the benchmark, then what passed before.
t() { local name=$1 to=$2 re=$3; (cd runtime/cuda && step "$name" "$to" ../../bin/cuda.test -test.v -test.count=1 -test.run "$re"); }
# (step runs in a subshell there: keep its verdict)
tt() { t "$@" || fail=1; }
mkdir -p /tmp/gptoss-bench
bench() { # name timeout env...: bench-engine on the synthetic 20b with that environment
	local name=$1 to=$2
	shift 2
	step "bench-$name" "$to" env "$@" bin/gptoss bench-engine --synthetic 20b --engine cuda --dir /tmp/gptoss-bench \
		--context 0,8192 --decode 64 --json
}
tt kernels-fused 25 'TestKernel(Fused|MoE3)$'
tt golden-fused 25 'TestGolden$/^(hf-fused|original-fused|hf-fused-moe-v2)$'
bench new 70 GPTOSS_CUDA_FUSED=1 GPTOSS_CUDA_MOE=tc GPTOSS_CUDA_GEMM=tc
(cd runtime/cuda && GPTOSS_BENCH=20b GPTOSS_BENCH_LONG=0 GPTOSS_BENCH_LAYOUT=$(ls /tmp/gptoss-bench/*.layout | head -1) \
	step profile 35 ../../bin/cuda.test -test.v -test.count=1 -test.run 'TestBenchSynthetic' -test.timeout 33s) || fail=1
tt kernels-matvec 20 'TestKernelMatVecBF16$'
tt kernels-moe-tc 20 'TestKernelMoE$/^tc$'
tt golden-tc 20 'TestGolden$/^hf-fused-tc$'
bench old 50 GPTOSS_CUDA_FUSED=0 GPTOSS_CUDA_MOE=v1 GPTOSS_CUDA_GEMM=v1
tt kernels-sample 20 'TestKernelSample$'
tt long 25 'TestLongSequence|TestEngine'
tt kernels-base 25 'TestKernel(Embed|RMSNorm|RopeKV|Attention|RouterTopK|Argmax)$'
tt kernels-moe 25 'TestKernelMoE$/^(v1|v2)$'
tt golden-old 25 'TestGolden$/^(hf|original|hf-moe-v2)$'
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
}
export -f cli_check
step cli 20 bash -c cli_check
step doctor 10 bin/gptoss doctor 20b
echo "=== summary"
for f in "$OUT"/*.log; do
	n=${f##*/}
	case $n in
	bench-*) echo "$n: $(grep -o -E '"(prefill_tok_s|context|tok_s|peak_device_bytes)":[0-9.e+]+' "$f" | tr '\n' ' ')" ;;
	profile.log) ;;
	*) echo "$n: $(grep -c -E '^\s*--- PASS' "$f") pass, $(grep -c -E '^\s*--- FAIL' "$f") fail; $(grep -h -E '^\s*--- FAIL|golden .*max|panic:|^cli:' "$f" | head -8 | tr '\n' ';')" ;;
	esac
done
grep -h -E '^(STEP|PROFILE)' "$OUT"/profile.log | head -100
exit $fail
