// Package cuda is the CUDA engine ("cuda"): gpt-oss on one NVIDIA GPU with
// our own kernels (kernels/gptoss.cu), launched from Go through the CUDA
// driver API without cgo.
//
// Design decisions:
//
//   - Driver binding: libcuda.so.1 (or GPTOSS_CUDA_LIB) is dlopened at run
//     time with purego and every function is bound by its versioned symbol
//     (cuMemAlloc_v2, cuStreamBeginCapture_v2, …). The binary still builds
//     with CGO_ENABLED=0 and runs the CPU engine where there is no driver,
//     no GPU or no kernels: Available returns the reason, runtime.Pick
//     falls back. Compute capability ≥ 8.0 is required.
//   - Kernel-launch parameters live in C memory (a pinned block per stream),
//     so no Go pointer is handed to the driver. The primary context is made
//     current on the calling OS thread by every helper (goroutines move).
//   - Kernels: `make cuda` compiles kernels/*.cu with nvcc into one fatbin
//     (SASS for sm_80/86/89/90 and compute_90 PTX), embedded with go:embed
//     from fatbin/ (a README keeps the folder for builds without nvcc; the
//     fatbin itself is not committed).
//   - Testing without a GPU: kernels/emu is a CPU emulator of the driver
//     API subset above and of the kernels (gptoss.cu built as host C++ with
//     -DGPTOSS_EMU, one fiber per CUDA thread switched at warp and block
//     operations, cp.async deferred to its wait), bin/libcuda-emu.so by
//     `make cuda-emu`; with GPTOSS_CUDA_LIB pointing at it the cuda-tagged
//     tests and the binary run unchanged (`make test-emu`, in `make test`
//     and CI). It checks results and barriers, and, with GPTOSS_EMU_PDL=1
//     (set by test-emu), programmatic dependent launch: what the kernel
//     before a PDL launch wrote reads as NaN until the launch's pdl_wait,
//     so an activation read before the wait fails the golden tests; and
//     it is built with UBSan: every load and store checked for its type's
//     alignment (the vector types aligned as CUDA's; a GPU faults where
//     x86 does not), signed int overflow, shifts and array bounds. Not speed or other real-hardware races; scripts/gpu-check.sh on
//     a GPU remains the measure.
//   - Numerics follow the CPU engine (runtime/cpu, the reference): float32
//     activations and residual, BF16 weights widened in registers, MXFP4
//     experts decoded in the kernel (E2M1 values from a 16-entry table
//     replicated per lane in shared memory — one bank per lane — × 2^(s−127);
//     exactly to BF16 for the tensor cores), never expanded in memory.
//   - KV cache: FP16 (not BF16) [maxLen, kvHeads·headDim] per layer, full
//     length for every layer. Measured on the tiny golden model with the
//     CPU engine rounding its cache: BF16 moves the logits by 0.054 (over
//     the 2e-2 bound), FP16 by 0.011, at the same bytes (llama.cpp's
//     default cache type is F16 too).
//   - Decode (one token), the fused step (default; GPTOSS_CUDA_FUSED=0 is
//     the older 10-launch step): 6 launches a layer. RMSNorm is folded into
//     its consumers — each block of the QKV GEMV, the unembedding and the
//     router recomputes the norm from the residual while it stages the
//     vector in shared memory — because the single-block norm launches cost
//     10% of a step. Staged vectors are padded by 4 floats every 32, so a
//     lane reading 8 or 32 consecutive values as float4 next to its 16-byte
//     weight load hits distinct banks (the old MoE kernels read activations
//     32 cache lines per warp load and ran at 0.45 TB/s). The GEMVs use
//     persistent grids (resident blocks from the occupancy API, warps
//     striding over rows) so the staging is paid once per block. QKV
//     computes the two rows of a RoPE pair per warp and rotates, writes
//     the FP16 cache rows in its epilogue (rope_kv gone); RMSNorm + router
//     GEMV + top-k is one block; the MoE is two launches for all k experts,
//     mlp2 adding w·(W2·a + b2) into the residual with atomicAdd
//     (rounding-level run-to-run differences). Every kernel issues all of
//     its staging loads (≤ 16 values a thread) before the first use: the
//     plain strided loop paid an L2 round trip per value a thread, 12–24
//     a kernel (−8% of the step once fixed). The decode kernels come in
//     versions (GPTOSS_CUDA_DEC): v16, the default, has no router launch:
//     the out-projection (outproj_sums) adds, for the rows it writes, the
//     router's logit sums G[e]·(x⊙scale) and Σx² into one of 16 copies of a
//     sums buffer (the logits are linear in x but for the norm's scalar),
//     and both MoE kernels finish the router from those sums in every
//     block (router_final: the norm's scalar, logits, top-k) — mlp1 after
//     its wait, staging rmsnorm(x) itself, mlp2 before its wait beside its
//     first rows; two sums buffers alternate by layer, each cleared by the
//     next layer's mlp2 (an even layer count; else v12). GPTOSS_CUDA_DEC=auto
//     measures v16, v17 and v12 at load on the GPU at hand and keeps the
//     fastest that agrees with v16 (tune.go; kept in Options.TuneDir). v17 (opt-in,
//     compiled and reviewed, not yet run on a GPU) is v16 with other MoE
//     kernels: each warp keeps its next item (2 rows) in flight through
//     its own 2-stage cp.async ring in shared memory while it multiplies
//     the current one (v16's warps load, then multiply, all in step, so
//     HBM idles while they multiply), and decodes E2M1 through a 32 KB
//     byte → half2 table with the activations as half2 in registers
//     (scaled by a power of two below 256) and HFMA2 — half of v16's
//     shared-memory traffic a value. v9's ring, slower, was one per
//     block behind block barriers. v17's attention splits take at least
//     128 keys (GPTOSS_CUDA_ATTN_MIN; v16: 32), and a KV head whose keys
//     make one split (every sliding layer's 128) writes its output
//     without the merge's partials, fence and counter. v12 is v7 with
//     mlp2's first row pair requested before its PDL wait (the expert ids
//     come from the router two kernels earlier, final by then); v7 decodes E2M1
//     through a 256-entry table per lane (a byte → two values, 64 KB of
//     dynamic shared memory), 4 (mlp2: 2) rows a warp sharing each
//     activation load; v6 the same with a 16-entry table at an aligned
//     address (the fallback where the device refuses the 64 KB); v3 the
//     previous step. v6 and later run attention as one launch a layer
//     (attn_dec: a block per KV head and key split, one warp per query head
//     of the group, each 32-key step's K and V rows requested together, the
//     splits merged by the last block to finish through per-sequence
//     counters, its lanes loading the splits' partials in parallel); v3
//     splits it over the keys (32 splits) and combines in a second launch.
//     Variants that streamed the weights through a shared-memory ring
//     (cp.async), loaded each row in one round, multiplied int16
//     activations with dp2a, prefetched the next kernel's (or, in the MoE,
//     a warp's next) weights into L2, loaded a warp's next MoE rows before
//     multiplying its current ones, or merged attention splits in
//     thread-block clusters were measured slower on an H100 and removed
//     (PERF.md). A build with -DGPTOSS_TRACE (make cuda-trace) records
//     every warp's start, PDL release and end (TestDecodeTrace). The whole
//     step is captured once per sequence as a CUDA graph; the token and
//     position travel through pinned host memory that the graph's first
//     copies read, so the frozen kernel parameters stay valid.
//   - Programmatic dependent launch (GPTOSS_CUDA_PDL=0 turns it off; sm_90
//     and a driver with cuLaunchKernelEx): the fused step's kernels are
//     launched with programmatic stream serialization, so each may start
//     while its predecessor finishes. Each calls pdl_wait before it reads an
//     activation or writes anything (before it: only L2 prefetch of its own
//     weights) and, being persistent, lets its successor start right after.
//     A driver that cannot capture such launches into a graph gets the
//     graph without them (Sequence.PDLErr says why).
//   - Sampling on the device: Greedy (argmax) and DeviceSampler
//     (temperature, top-k, top-p with the caller's uniform draw, the rule
//     of runtime/sample): candidates are the tokens with p ≥ 2^-b for the
//     smallest b that holds enough of them (binary search, one pass over
//     the vocabulary each), sorted in shared memory; more than 4096
//     candidates, or penalties, leave it to the host (ok = false).
//     It is runtime.DeviceSampler: runtime/chat draws on the device when
//     a sequence offers it (GPTOSS_DEVICE_SAMPLING=0: on the host).
//   - Prefill: chunks of up to 256 tokens on tensor cores (default;
//     GPTOSS_CUDA_GEMM=v1 and GPTOSS_CUDA_MOE=v1 select the FP32
//     kernels): BF16 GEMM and a grouped MoE (moe_plan groups the (token,
//     expert) pairs by expert on the device into tiles of 16) with WMMA
//     m16n16k16, 64 weight rows × 16 tokens a block. MXFP4 rows decode
//     exactly into BF16 (E2M1 × 2^k has two significant bits); activations
//     are split into hi + lo BF16 halves (two MMAs, ~16-bit activations),
//     so the golden logits stay as close as the FP32 path's (0.0083).
//     Attention runs one block per (head, token).
//   - Weights go to one device arena through 4 pinned 32 MiB staging
//     buffers on 2 streams: goroutines copy the mapped layout into a free
//     buffer while the previous ones are in flight.
//   - Q8 decode weights (runtime.Options.DecodeQ8, `--decode-weights q8`;
//     format and rationale in runtime/q8.go): after the layout's tensors,
//     each QKV, output and unembedding matrix is quantized on the host
//     (runtime.QuantizeQ8 over every core, one matrix at a time into one
//     reused buffer, so host memory is one matrix's Q8 size) and uploaded
//     into the same arena; prefill keeps the BF16 copies. The fused step's
//     GEMV kernels are templates over the weight type (WBF16, WQ8: the
//     BF16 kernels' sm_90 code is unchanged), so matvec_norm_q8,
//     qkv_rope_q8 and outproj_sums_q8_* are the same kernels with a row
//     read as 16-byte chunks of 16 int8 values (half a block of 32, its
//     BF16 scale beside it) against the same padded staged vector: a value
//     is a PRMT that sets its byte (sign flipped) under 2^23's exponent, an
//     FADD of −(2^23+128) that leaves the integer exactly, and an FFMA
//     (one chain a chunk, ~3.3 instructions a value against BF16's 2, for
//     half the bytes). Every version (v12, v16, v17) and the tuning use
//     them; the unfused step (GPTOSS_CUDA_FUSED=0) refuses DecodeQ8.
//
// Measured (scripts/gpu-check.sh on one NVIDIA H100 80GB HBM3, driver
// 580.159.04; synthetic full-size gpt-oss-20b from runtime/synth, `gptoss
// bench-engine`; v7 in the same run, PERF.md): every kernel, golden,
// long-sequence and CLI test passes (golden max |logit − CPU| = 0.0083);
// decode 404 tok/s at context 0 (v7: 404, before this session's attention
// 381) and 346 at 8k (v7: 341, before 281; the issue asks 600); a decode
// step 2.49 ms with the graph (v7: 2.52); prefill 3,146 tok/s over 512
// tokens; load 0.74 s (13.8 GB, warm page cache); peak device memory 14.2
// GB. gpt-oss-120b's layer shapes: 0.095 ms a layer, ~261 tok/s
// extrapolated to its 36 layers (the issue asks 420). Nsight Compute: the
// GEMVs wait on their global loads with the DRAM a third busy; more bytes
// in flight (a shared-memory ring), fewer round trips, fewer instructions
// and L2 prefetch did not change that (PERF.md).
//
// Tests: *_cuda_test.go (build tag cuda) compare every kernel with the CPU
// engine's op on random inputs of gpt-oss-20b shapes (and the tiny model's
// for the fused kernels), run the golden model on every kernel choice
// (max |logit − CPU| ≤ 2e-2, same greedy tokens) and a long sequence;
// TestBenchSynthetic and TestBandwidthProbe (GPTOSS_BENCH=20b) time the
// decode step per kernel version and what a streaming kernel reaches; they
// skip without a GPU unless GPTOSS_REQUIRE_GPU=1. scripts/gpu-check.sh runs
// them and the benchmark on a GPU machine from `make gpu-bundle`.
package cuda
