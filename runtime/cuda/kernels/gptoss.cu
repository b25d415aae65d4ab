// gpt-oss kernels for the gptoss CUDA engine (runtime/cuda). Built by
// `make cuda` into runtime/cuda/fatbin/kernels.fatbin and embedded in the
// binary; the Go side launches them through the driver API (no cgo).
//
// Conventions: activations are float32 row-major [T, width]; weights are the
// layout's bytes as is (BF16 as raw uint16, MXFP4 blocks [E, out, in/32, 16]
// with the even element in the low nibble + E8M0 scales [E, out, in/32]); the
// KV cache is FP16 [maxLen, kvHeads*headDim] per layer (as llama.cpp's
// default: BF16's 8-bit mantissa moved the tiny golden model's logits by
// 0.054, FP16's 11 bits by 0.011, at the same bytes). Kernels that depend on
// the position read it from device memory (pos0), so a captured CUDA graph
// replays with new positions.
//
// A build with -DGPTOSS_EMU (kernels/emu, `make cuda-emu`) compiles this file
// as host C++ for the CPU emulator of the driver and kernels; the few
// inline-PTX helpers below have an emulated branch there.
#include <stdint.h>
#ifndef GPTOSS_EMU
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <mma.h>
#endif

#define DEV __device__ __forceinline__

// dynamic shared memory (the emulator's is one arena a block)
#ifdef GPTOSS_EMU
#define EXTERN_SHARED(T, name) static T* const name = (T*)emu_dyn_shared
#else
#define EXTERN_SHARED(T, name) extern __shared__ __align__(16) T name[]
#endif

DEV float bf2f(uint16_t h) { return __uint_as_float(((uint32_t)h) << 16); }

DEV uint16_t f2bf(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);                      // round to nearest even
  return (uint16_t)(u >> 16);
}

DEV void h8(uint4 v, float* f) {
  float2 a = __half22float2(*(const __half2*)&v.x), b = __half22float2(*(const __half2*)&v.y);
  float2 c = __half22float2(*(const __half2*)&v.z), d = __half22float2(*(const __half2*)&v.w);
  f[0] = a.x; f[1] = a.y; f[2] = b.x; f[3] = b.y; f[4] = c.x; f[5] = c.y; f[6] = d.x; f[7] = d.y;
}

DEV float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

DEV float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// The sum (MAX: the max) of v over the block, in every thread; red: a
// float a warp of shared memory, reusable right after (the barrier before
// its writes).
template <bool MAX>
DEV float block_reduce(float v, float* red) {
  v = MAX ? warp_max(v) : warp_sum(v);
  int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0) red[w] = v;
  __syncthreads();
  float s = MAX ? -INFINITY : 0.f;
  for (int i = 0; i < (int)(blockDim.x >> 5); i++) s = MAX ? fmaxf(s, red[i]) : s + red[i];
  return s;
}
DEV float block_sum(float v, float* red) { return block_reduce<false>(v, red); }
DEV float block_max(float v, float* red) { return block_reduce<true>(v, red); }

// Programmatic dependent launch (sm_90 and newer; no-ops on older GPUs and
// when the launch did not ask for it, GPTOSS_CUDA_PDL): a kernel launched
// with it may start while the previous kernel in the stream still runs.
// pdl_wait blocks until that kernel has finished and its writes are
// visible: every such kernel calls it before it reads an activation or
// writes anything, and may only prefetch (read-only weights) before it.
// pdl_launch lets the next kernel's blocks start their own prologue; the
// persistent kernels call it once all their blocks are resident (right
// after their wait).
DEV void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#elif defined(GPTOSS_EMU)
  emu_pdl_wait();
#endif
}

DEV void pdl_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#elif defined(GPTOSS_EMU)
  emu_pdl_launch();
#endif
}

// Step tracing (a build with -DGPTOSS_TRACE only; `make cuda-trace`, the
// trace test): lane 0 of every warp of the decode step's kernels appends a
// record when it ends — kernel id, the global timer at
// the kernel's start, after its PDL wait and at its end, and the SM clocks
// from the wait to the end — to g_trace (set by the host through
// cuModuleGetGlobal; null: nothing recorded). The ordinary build compiles
// the macros to nothing.
#ifdef GPTOSS_TRACE
#define TRACE_CAP (1u << 20)
__device__ unsigned long long* g_trace;
__device__ unsigned int g_trace_n;
DEV unsigned long long gtimer() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
DEV void trace_end(int kid, unsigned long long t0, unsigned long long t1, long long c1) {
  unsigned long long* tr = *(unsigned long long* volatile*)&g_trace;
  if ((threadIdx.x & 31) != 0 || tr == 0) return;
  unsigned long long t2 = gtimer();
  long long c2 = clock64();
  unsigned i = atomicAdd(&g_trace_n, 1u);
  if (i >= TRACE_CAP) return;
  unsigned long long* r = tr + 5 * (size_t)i;
  r[0] = (unsigned long long)kid;
  r[1] = t0;
  r[2] = t1;
  r[3] = t2;
  r[4] = (unsigned long long)(c2 - c1);
}
#define TR_BEGIN                                          \
  unsigned long long tr_t0 = gtimer(), tr_t1 = tr_t0; \
  long long tr_c1 = clock64();
#define TR_WAITED            \
  do {                       \
    tr_t1 = gtimer();        \
    tr_c1 = clock64();       \
  } while (0)
#define TR_END(kid) trace_end((kid), tr_t0, tr_t1, tr_c1)
#else
#define TR_BEGIN
#define TR_WAITED \
  do {            \
  } while (0)
#define TR_END(kid) \
  do {              \
  } while (0)
#endif

// The 128-byte lines of [p, p + bytes) into L2, spread over n threads
// (this one is i of them). A hint: nothing depends on it being right.
DEV void prefetch_l2(const void* p, size_t bytes, int i, int n) {
#ifndef GPTOSS_EMU
  for (size_t o = (size_t)i * 128; o < bytes; o += (size_t)n * 128)
    asm volatile("prefetch.global.L2 [%0];" ::"l"((const char*)p + o));
#endif
}

// E2M1 code → value.
DEV float fp4(uint32_t n) {
  uint32_t e = (n >> 1) & 3u, m = n & 1u;
  uint32_t bits = e ? ((e + 126u) << 23) | (m << 22) : (m ? (126u << 23) : 0u);
  return __uint_as_float(bits | ((n & 8u) << 28));
}

// Streaming 16-byte load that does not pollute L1 (weights are read once).
DEV uint4 ld_stream(const uint4* p) {
#ifdef GPTOSS_EMU
  return *p;
#else
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
#endif
}

// ---------------------------------------------------------------------------
// embedding gather: x[t] = table[tokens[t]] (bf16 → f32)
extern "C" __global__ void embed(const uint16_t* __restrict__ table, const int* __restrict__ tokens,
                                 float* __restrict__ x, int T, int H) {
  int t = blockIdx.x;
  if (t >= T) return;
  const uint16_t* row = table + (size_t)tokens[t] * H;
  for (int i = threadIdx.x; i < H; i += blockDim.x) x[(size_t)t * H + i] = bf2f(row[i]);
}

// ---------------------------------------------------------------------------
// RMSNorm: out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * scale. One block per token.
extern "C" __global__ void rmsnorm(const float* __restrict__ x, const uint16_t* __restrict__ scale,
                                   float* __restrict__ out, int T, int H, float eps) {
  int t = blockIdx.x;
  if (t >= T) return;
  const float* xr = x + (size_t)t * H;
  float ss = 0.f;
  for (int i = threadIdx.x; i < H; i += blockDim.x) ss += xr[i] * xr[i];
  __shared__ float red[32];
  ss = warp_sum(ss);
  int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) red[w] = ss;
  __syncthreads();
  if (w == 0) {
    ss = lane < (int)(blockDim.x >> 5) ? red[lane] : 0.f;
    ss = warp_sum(ss);
    if (lane == 0) red[0] = ss;
  }
  __syncthreads();
  float r = rsqrtf(red[0] / (float)H + eps);
  for (int i = threadIdx.x; i < H; i += blockDim.x) out[(size_t)t * H + i] = xr[i] * r * bf2f(scale[i]);
}

// ---------------------------------------------------------------------------
// BF16 matrix × activations: y[t, r] = W[r, :] · x[t, :] + b[r] (+ y[t, r] when
// accumulate). One warp per row, 16-byte coalesced weight loads, TB tokens per
// weight read (grid.y walks the token tiles). K must be a multiple of 8.
template <int TB>
DEV void matvec_body(const uint16_t* __restrict__ W, const uint16_t* __restrict__ bias,
                     const float* __restrict__ x, float* __restrict__ y, int N, int K, int T, int accumulate) {
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int row = blockIdx.x * (blockDim.x >> 5) + warp;
  if (row >= N) return;
  int t0 = blockIdx.y * TB;
  int nt = min(TB, T - t0);
  const uint4* w = (const uint4*)(W + (size_t)row * K);
  float acc[TB];
#pragma unroll
  for (int i = 0; i < TB; i++) acc[i] = 0.f;
  int nc = K >> 3;
#pragma unroll 4
  for (int c = lane; c < nc; c += 32) {
    uint4 v = ld_stream(w + c);
    float wf[8];
    wf[0] = __uint_as_float(v.x << 16); wf[1] = __uint_as_float(v.x & 0xffff0000u);
    wf[2] = __uint_as_float(v.y << 16); wf[3] = __uint_as_float(v.y & 0xffff0000u);
    wf[4] = __uint_as_float(v.z << 16); wf[5] = __uint_as_float(v.z & 0xffff0000u);
    wf[6] = __uint_as_float(v.w << 16); wf[7] = __uint_as_float(v.w & 0xffff0000u);
#pragma unroll
    for (int i = 0; i < TB; i++) {
      if (i < nt) {
        const float4* xp = (const float4*)(x + (size_t)(t0 + i) * K + c * 8);
        float4 a = xp[0], b = xp[1];
        acc[i] += wf[0] * a.x + wf[1] * a.y + wf[2] * a.z + wf[3] * a.w +
                  wf[4] * b.x + wf[5] * b.y + wf[6] * b.z + wf[7] * b.w;
      }
    }
  }
  float bv = bias ? bf2f(bias[row]) : 0.f;
#pragma unroll
  for (int i = 0; i < TB; i++) {
    float s = warp_sum(acc[i]);
    if (lane == 0 && i < nt) {
      float* o = y + (size_t)(t0 + i) * N + row;
      *o = accumulate ? *o + s + bv : s + bv;
    }
  }
}

extern "C" __global__ void matvec_bf16_t1(const uint16_t* W, const uint16_t* bias, const float* x, float* y,
                                          int N, int K, int T, int accumulate) {
  matvec_body<1>(W, bias, x, y, N, K, T, accumulate);
}
extern "C" __global__ void matvec_bf16_t8(const uint16_t* W, const uint16_t* bias, const float* x, float* y,
                                          int N, int K, int T, int accumulate) {
  matvec_body<8>(W, bias, x, y, N, K, T, accumulate);
}

// ---------------------------------------------------------------------------
// YaRN RoPE on q and k (half-split pairs i, i+D/2) at positions pos0+t, then
// k and v into the FP16 KV cache rows pos0+t. qkv is [T, (Hq+2Hkv)*D].
// cos/sin are scaled by the YaRN concentration.
extern "C" __global__ void rope_kv(float* __restrict__ qkv, const float* __restrict__ inv_freq,
                                   const int* __restrict__ pos0, __half* __restrict__ kc,
                                   __half* __restrict__ vc, int T, int Hq, int Hkv, int D, float conc) {
  int t = blockIdx.x;
  if (t >= T) return;
  int p = *pos0 + t;
  int half = D >> 1;
  int width = (Hq + 2 * Hkv) * D;
  float* row = qkv + (size_t)t * width;
  int kvw = Hkv * D;
  int npairs = (Hq + Hkv) * half;
  for (int idx = threadIdx.x; idx < npairs; idx += blockDim.x) {
    int h = idx / half, i = idx - h * half;
    float s, c;
    sincosf((float)p * inv_freq[i], &s, &c);
    c *= conc;
    s *= conc;
    float* v = row + h * D;
    float x1 = v[i], x2 = v[i + half];
    float o1 = x1 * c - x2 * s, o2 = x2 * c + x1 * s;
    v[i] = o1;
    v[i + half] = o2;
    if (h >= Hq) {
      __half* k = kc + (size_t)p * kvw + (h - Hq) * D;
      k[i] = __float2half_rn(o1);
      k[i + half] = __float2half_rn(o2);
    }
  }
  const float* vsrc = row + (Hq + Hkv) * D;
  for (int j = threadIdx.x; j < kvw; j += blockDim.x) vc[(size_t)p * kvw + j] = __float2half_rn(vsrc[j]);
}

// ---------------------------------------------------------------------------
// Attention with sinks and an optional sliding window, split over the keys.
// attn_partial: grid (Hq, T, S), 128 threads; each thread walks keys of its
// split, keeping an online softmax (m, l, acc[D]); the block merges them and
// writes part[(t*Hq+h)*S+s] = {m, l, acc[D]}. attn_combine folds the splits
// and the sink (once) and writes out[t, h*D + d].
#define ATT_THREADS 128
#define ATT_MIN_CHUNK 128
template <int D>
DEV void attn_partial_body(const float* __restrict__ qkv, const __half* __restrict__ kc,
                           const __half* __restrict__ vc, const int* __restrict__ pos0, float* __restrict__ part,
                           int T, int Hq, int Hkv, int window, int S, float scale) {
  int h = blockIdx.x, t = blockIdx.y, s = blockIdx.z;
  int g = h / (Hq / Hkv);
  int p = *pos0 + t;
  int lo = window > 0 ? max(0, p - window + 1) : 0;
  int n = p - lo + 1;
  // at least ATT_MIN_CHUNK keys per split: short contexts (and sliding
  // layers) use few splits, the others exit at once
  int chunk = max((n + S - 1) / S, ATT_MIN_CHUNK);
  int begin = lo + s * chunk, end = min(p + 1, begin + chunk);
  float* o = part + ((size_t)(t * Hq + h) * S + s) * (D + 2);
  if (begin >= end) {  // an empty split (short context): nothing to merge
    if (threadIdx.x == 0) { o[0] = -INFINITY; o[1] = 0.f; }
    return;
  }
  __shared__ float qs[D];
  int width = (Hq + 2 * Hkv) * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) qs[d] = qkv[(size_t)t * width + h * D + d] * scale;
  __syncthreads();
  int kvw = Hkv * D;
  float m = -INFINITY, l = 0.f, acc[D];
#pragma unroll
  for (int d = 0; d < D; d++) acc[d] = 0.f;
  for (int j = begin + threadIdx.x; j < end; j += ATT_THREADS) {
    const uint4* kr = (const uint4*)(kc + (size_t)j * kvw + g * D);
    float dot = 0.f;
#pragma unroll
    for (int c = 0; c < D / 8; c++) {
      float f[8];
      h8(kr[c], f);
#pragma unroll
      for (int u = 0; u < 8; u++) dot += f[u] * qs[8 * c + u];
    }
    float mn = fmaxf(m, dot);
    float corr = __expf(m - mn);  // m = -inf the first time: 0
    float pj = __expf(dot - mn);
    l = l * corr + pj;
    const uint4* vr = (const uint4*)(vc + (size_t)j * kvw + g * D);
#pragma unroll
    for (int c = 0; c < D / 8; c++) {
      float f[8];
      h8(vr[c], f);
#pragma unroll
      for (int u = 0; u < 8; u++) acc[8 * c + u] = acc[8 * c + u] * corr + pj * f[u];
    }
    m = mn;
  }
  // merge the block's threads
  __shared__ float red[ATT_THREADS / 32];
  __shared__ float bm;
  int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float wm = warp_max(m);
  if (lane == 0) red[w] = wm;
  __syncthreads();
  if (threadIdx.x == 0) {
    float x = red[0];
    for (int i = 1; i < ATT_THREADS / 32; i++) x = fmaxf(x, red[i]);
    bm = x;
  }
  __syncthreads();
  float M = bm;
  float f = (m == -INFINITY) ? 0.f : __expf(m - M);
  __shared__ float accs[ATT_THREADS / 32][D + 1];
  float ls = warp_sum(l * f);
  if (lane == 0) accs[w][D] = ls;
#pragma unroll
  for (int d = 0; d < D; d++) {
    float v = warp_sum(acc[d] * f);
    if (lane == 0) accs[w][d] = v;
  }
  __syncthreads();
  for (int d = threadIdx.x; d <= D; d += blockDim.x) {
    float v = 0.f;
    for (int i = 0; i < ATT_THREADS / 32; i++) v += accs[i][d];
    if (d < D) o[2 + d] = v; else o[1] = v;
  }
  if (threadIdx.x == 0) o[0] = M;
}

#define ATT_INST(D)                                                                                       \
  extern "C" __global__ void __launch_bounds__(ATT_THREADS) attn_partial_d##D(                            \
      const float* qkv, const __half* kc, const __half* vc, const int* pos0, float* part, int T, int Hq,   \
      int Hkv, int window, int S, float scale) {                                                           \
    attn_partial_body<D>(qkv, kc, vc, pos0, part, T, Hq, Hkv, window, S, scale);                          \
  }
ATT_INST(16)
ATT_INST(32)
ATT_INST(64)
ATT_INST(128)

// grid (Hq, T), D threads.
extern "C" __global__ void attn_combine(const float* __restrict__ part, const uint16_t* __restrict__ sinks,
                                        float* __restrict__ out, int T, int Hq, int D, int S) {
  int h = blockIdx.x, t = blockIdx.y, d = threadIdx.x;
  const float* pp = part + (size_t)(t * Hq + h) * S * (D + 2);
  float sink = bf2f(sinks[h]);
  float M = sink;
  for (int s = 0; s < S; s++) M = fmaxf(M, pp[s * (D + 2)]);
  float L = __expf(sink - M), a = 0.f;
  for (int s = 0; s < S; s++) {
    const float* q = pp + s * (D + 2);
    if (q[0] == -INFINITY) continue;
    float f = __expf(q[0] - M);
    L += q[1] * f;
    if (d < D) a += q[2 + d] * f;
  }
  if (d < D) out[(size_t)t * Hq * D + h * D + d] = a / L;
}

// ---------------------------------------------------------------------------
// Router: top-k of E logits per token (ties to the lower index), softmax over
// the k. One warp per token, E ≤ 256.
DEV void topk_warp(const float* logits, int E, int k, int* __restrict__ ids, float* __restrict__ wts) {
  int lane = threadIdx.x & 31;
  float v[8];
#pragma unroll
  for (int i = 0; i < 8; i++) {
    int e = lane + 32 * i;
    v[i] = e < E ? logits[e] : -INFINITY;
  }
  float sel[8];
  int seli[8];
  for (int r = 0; r < k && r < 8; r++) {
    float bv = -INFINITY;
    int bi = 0x7fffffff;
#pragma unroll
    for (int i = 0; i < 8; i++) {
      int e = lane + 32 * i;
      if (e < E && (v[i] > bv || (v[i] == bv && e < bi))) { bv = v[i]; bi = e; }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
    }
    sel[r] = bv;
    seli[r] = bi;
#pragma unroll
    for (int i = 0; i < 8; i++)
      if (lane + 32 * i == bi) v[i] = -INFINITY;
  }
  if (lane == 0) {
    float mx = sel[0], sum = 0.f, ex[8];
    for (int r = 0; r < k; r++) { ex[r] = expf(sel[r] - mx); sum += ex[r]; }
    for (int r = 0; r < k; r++) {
      ids[r] = seli[r];
      wts[r] = ex[r] / sum;
    }
  }
}

extern "C" __global__ void router_topk(const float* __restrict__ logits, int* __restrict__ ids,
                                       float* __restrict__ wts, int T, int E, int k) {
  int t = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (t >= T) return;
  topk_warp(logits + (size_t)t * E, E, k, ids + t * k, wts + t * k);
}

// ---------------------------------------------------------------------------
// MoE plan: group the n = T*k (token, expert) assignments by expert into
// tiles of at most tile assignments: order[] lists assignment ids grouped by
// expert, tiles[i] = {expert, start in order, count}, *ntiles their number.
// One block; E ≤ 1024.
extern "C" __global__ void moe_plan(const int* __restrict__ ids, int n, int E, int tile, int* __restrict__ order,
                                    int4* __restrict__ tiles, int* __restrict__ ntiles) {
  __shared__ int cnt[1024], off[1024], cur[1024];
  for (int e = threadIdx.x; e < E; e += blockDim.x) { cnt[e] = 0; cur[e] = 0; }
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) atomicAdd(&cnt[ids[i]], 1);
  __syncthreads();
  if (threadIdx.x == 0) {
    int o = 0, nt = 0;
    for (int e = 0; e < E; e++) {
      off[e] = o;
      for (int s = 0; s < cnt[e]; s += tile) tiles[nt++] = make_int4(e, o + s, min(tile, cnt[e] - s), 0);
      o += cnt[e];
    }
    *ntiles = nt;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    int e = ids[i];
    order[off[e] + atomicAdd(&cur[e], 1)] = i;
  }
}

// MXFP4 rows dotted with activations. Each lane takes 32-element blocks
// (16 bytes + 1 scale) along the row; a byte becomes its two E2M1 values
// through a 256-entry float2 table in shared memory (one load instead of
// ~14 integer ops), and meets 8 activations loaded as two float4.
DEV void fill_lut(float2* lut) {
  for (int i = threadIdx.x; i < 256; i += blockDim.x) lut[i] = make_float2(fp4(i & 15u), fp4(i >> 4));
  __syncthreads();
}

// dot of one 16-byte block (32 elements) with xs[0..31]
DEV float block_dot(const float2* lut, uint4 q, const float* xs) {
  uint32_t w[4] = {q.x, q.y, q.z, q.w};
  float d = 0.f;
#pragma unroll
  for (int c = 0; c < 4; c++) {
    float2 a0 = lut[w[c] & 0xffu], a1 = lut[(w[c] >> 8) & 0xffu], a2 = lut[(w[c] >> 16) & 0xffu], a3 = lut[w[c] >> 24];
    float4 xa = *(const float4*)(xs + 8 * c), xb = *(const float4*)(xs + 8 * c + 4);
    d += a0.x * xa.x + a0.y * xa.y + a1.x * xa.z + a1.y * xa.w + a2.x * xb.x + a2.y * xb.y + a3.x * xb.z + a3.y * xb.w;
  }
  return d;
}

DEV float e8m0(uint8_t s) { return __uint_as_float(((uint32_t)s) << 23); }

DEV float swiglu(float g, float l, float limit) {
  g = fminf(g, limit);
  l = fminf(fmaxf(l, -limit), limit);
  return g / (1.f + expf(-1.702f * g)) * (l + 1.f);
}

// 8 E2M1 values of one 32-bit word (4 bytes, even element low nibble).
DEV void dec8(const float2* lut, uint32_t w, float* f) {
  float2 a0 = lut[w & 0xffu], a1 = lut[(w >> 8) & 0xffu], a2 = lut[(w >> 16) & 0xffu], a3 = lut[w >> 24];
  f[0] = a0.x; f[1] = a0.y; f[2] = a1.x; f[3] = a1.y; f[4] = a2.x; f[5] = a2.y; f[6] = a3.x; f[7] = a3.y;
}

DEV float dot8(const float* f, const float* xs) {
  float4 xa = *(const float4*)xs, xb = *(const float4*)(xs + 4);
  return f[0] * xa.x + f[1] * xa.y + f[2] * xa.z + f[3] * xa.w + f[4] * xb.x + f[5] * xb.y + f[6] * xb.z + f[7] * xb.w;
}

// mlp1 with fused clamped SwiGLU: a warp owns output pair j (rows 2j = gate,
// 2j+1 = linear) of expert e for cnt ≤ TB assignments a[i] (token a/topk)
// and writes act[a, j]. The weights are decoded once per word and meet
// every assignment's activations.
template <int TB>
DEV void moe_mlp1_rows(const float2* lut, const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales,
                       const uint16_t* __restrict__ bias, const float* __restrict__ x, const int* a, int cnt, int e,
                       float* __restrict__ act, int I, int K, int topk, float limit) {
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int j = blockIdx.x * (blockDim.x >> 5) + warp;
  if (j >= I) return;
  int nb = K >> 5;
  const float* xr[TB];
#pragma unroll
  for (int i = 0; i < TB; i++) xr[i] = x + (size_t)(a[i] / topk) * K;
  size_t r0 = (size_t)e * 2 * I + 2 * j;
  const uint4* b0 = (const uint4*)(blocks + r0 * nb * 16);
  const uint4* b1 = b0 + nb;
  const uint8_t* s0 = scales + r0 * nb;
  const uint8_t* s1 = s0 + nb;
  float acc0[TB], acc1[TB];
#pragma unroll
  for (int i = 0; i < TB; i++) acc0[i] = acc1[i] = 0.f;
  for (int gb = lane; gb < nb; gb += 32) {
    uint4 q0 = ld_stream(b0 + gb), q1 = ld_stream(b1 + gb);
    float f0 = e8m0(s0[gb]), f1 = e8m0(s1[gb]);
    uint32_t u0[4] = {q0.x, q0.y, q0.z, q0.w}, u1[4] = {q1.x, q1.y, q1.z, q1.w};
    float d0[TB], d1[TB];
#pragma unroll
    for (int i = 0; i < TB; i++) d0[i] = d1[i] = 0.f;
#pragma unroll
    for (int c = 0; c < 4; c++) {
      float w0[8], w1[8];
      dec8(lut, u0[c], w0);
      dec8(lut, u1[c], w1);
#pragma unroll
      for (int i = 0; i < TB; i++) {
        if (i < cnt) {
          const float* xs = xr[i] + gb * 32 + 8 * c;
          d0[i] += dot8(w0, xs);
          d1[i] += dot8(w1, xs);
        }
      }
    }
#pragma unroll
    for (int i = 0; i < TB; i++) { acc0[i] += d0[i] * f0; acc1[i] += d1[i] * f1; }
  }
  const uint16_t* br = bias + (size_t)e * 2 * I + 2 * j;
  float bg = bf2f(br[0]), bl = bf2f(br[1]);
#pragma unroll
  for (int i = 0; i < TB; i++) {
    float g = warp_sum(acc0[i]) + bg;
    float l = warp_sum(acc1[i]) + bl;
    if (lane == 0 && i < cnt) act[(size_t)a[i] * I + j] = swiglu(g, l, limit);
  }
}

// mlp2: a warp owns output row r of expert e: y[a, r] = W2_e[r] · act[a] + b2_e[r].
template <int TB>
DEV void moe_mlp2_rows(const float2* lut, const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales,
                       const uint16_t* __restrict__ bias, const float* __restrict__ act, const int* a, int cnt, int e,
                       float* __restrict__ y, int H, int I) {
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int r = blockIdx.x * (blockDim.x >> 5) + warp;
  if (r >= H) return;
  int nb = I >> 5;
  size_t row = (size_t)e * H + r;
  const uint4* b0 = (const uint4*)(blocks + row * nb * 16);
  const uint8_t* s0 = scales + row * nb;
  float acc[TB];
#pragma unroll
  for (int i = 0; i < TB; i++) acc[i] = 0.f;
  for (int gb = lane; gb < nb; gb += 32) {
    uint4 q0 = ld_stream(b0 + gb);
    float f0 = e8m0(s0[gb]);
    uint32_t u0[4] = {q0.x, q0.y, q0.z, q0.w};
    float d0[TB];
#pragma unroll
    for (int i = 0; i < TB; i++) d0[i] = 0.f;
#pragma unroll
    for (int c = 0; c < 4; c++) {
      float w0[8];
      dec8(lut, u0[c], w0);
#pragma unroll
      for (int i = 0; i < TB; i++)
        if (i < cnt) d0[i] += dot8(w0, act + (size_t)a[i] * I + gb * 32 + 8 * c);
    }
#pragma unroll
    for (int i = 0; i < TB; i++) acc[i] += d0[i] * f0;
  }
  float bv = bf2f(bias[row]);
#pragma unroll
  for (int i = 0; i < TB; i++) {
    float s = warp_sum(acc[i]) + bv;
    if (lane == 0 && i < cnt) y[(size_t)a[i] * H + r] = s;
  }
}

// Grouped (prefill) kernels: grid (ceil(rows / 8), maxTiles), tile = blockIdx.y.
#define MOE_TILE_PROLOGUE(TB)                                 \
  __shared__ float2 lut[256];                                 \
  fill_lut(lut);                                              \
  if ((int)blockIdx.y >= *ntiles) return;                     \
  int4 tl = tiles[blockIdx.y];                                \
  int a[TB];                                                  \
  _Pragma("unroll") for (int i = 0; i < TB; i++) a[i] = i < tl.z ? order[tl.y + i] : order[tl.y];

#define MOE_INST(TB, MINB)                                                                                        \
  extern "C" __global__ void __launch_bounds__(256, MINB) moe_mlp1_t##TB(                                         \
      const uint8_t* blocks, const uint8_t* scales, const uint16_t* bias, const float* x, const int* order,       \
      const int4* tiles, const int* ntiles, float* act, int I, int K, int topk, float limit) {                   \
    MOE_TILE_PROLOGUE(TB)                                                                                         \
    moe_mlp1_rows<TB>(lut, blocks, scales, bias, x, a, tl.z, tl.x, act, I, K, topk, limit);                      \
  }                                                                                                               \
  extern "C" __global__ void __launch_bounds__(256, MINB) moe_mlp2_t##TB(                                         \
      const uint8_t* blocks, const uint8_t* scales, const uint16_t* bias, const float* act, const int* order,     \
      const int4* tiles, const int* ntiles, float* y, int H, int I) {                                             \
    MOE_TILE_PROLOGUE(TB)                                                                                         \
    moe_mlp2_rows<TB>(lut, blocks, scales, bias, act, a, tl.z, tl.x, y, H, I);                                   \
  }
MOE_INST(1, 1)
MOE_INST(8, 2)

// Decode (one token, k ≤ 4 experts), no plan: mlp1 takes its expert from
// ids[blockIdx.y]; mlp2 walks the k experts of each output row and adds
// Σ_k w_k·(W2_k·act_k + b2_k) straight into the residual x.
extern "C" __global__ void __launch_bounds__(256) moe_mlp1_dec(const uint8_t* blocks, const uint8_t* scales,
                                                               const uint16_t* bias, const float* x, const int* ids,
                                                               float* act, int I, int K, int topk, float limit) {
  __shared__ float2 lut[256];
  fill_lut(lut);
  int a[1] = {(int)blockIdx.y};
  moe_mlp1_rows<1>(lut, blocks, scales, bias, x, a, 1, ids[blockIdx.y], act, I, K, topk, limit);
}

extern "C" __global__ void __launch_bounds__(256) moe_mlp2_dec(const uint8_t* __restrict__ blocks,
                                                               const uint8_t* __restrict__ scales,
                                                               const uint16_t* __restrict__ bias,
                                                               const float* __restrict__ act, const int* __restrict__ ids,
                                                               const float* __restrict__ wts, float* __restrict__ x,
                                                               int H, int I, int topk) {
  __shared__ float2 lut[256];
  fill_lut(lut);
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int r = blockIdx.x * (blockDim.x >> 5) + warp;
  if (r >= H) return;
  int nb = I >> 5;
  const uint4* b[4];
  const uint8_t* sc[4];
  int e[4];
#pragma unroll
  for (int k = 0; k < 4; k++) {
    e[k] = ids[k < topk ? k : 0];
    size_t row = (size_t)e[k] * H + r;
    b[k] = (const uint4*)(blocks + row * nb * 16);
    sc[k] = scales + row * nb;
  }
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  for (int gb = lane; gb < nb; gb += 32) {
    uint4 q[4];
#pragma unroll
    for (int k = 0; k < 4; k++)
      if (k < topk) q[k] = ld_stream(b[k] + gb);
#pragma unroll
    for (int k = 0; k < 4; k++)
      if (k < topk) acc[k] += block_dot(lut, q[k], act + (size_t)k * I + gb * 32) * e8m0(sc[k][gb]);
  }
  float yv = 0.f;
#pragma unroll
  for (int k = 0; k < 4; k++) {
    float s = warp_sum(acc[k]);
    if (k < topk) yv += wts[k] * (s + bf2f(bias[(size_t)e[k] * H + r]));
  }
  if (lane == 0) x[r] += yv;
}

// x[t] += Σ_k w[t,k] · y[t*k + k']. grid T.
extern "C" __global__ void moe_combine(const float* __restrict__ y, const float* __restrict__ wts,
                                       float* __restrict__ x, int T, int H, int k) {
  int t = blockIdx.x;
  if (t >= T) return;
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    float s = 0.f;
    for (int r = 0; r < k; r++) s += wts[t * k + r] * y[(size_t)(t * k + r) * H + i];
    x[(size_t)t * H + i] += s;
  }
}

// ---------------------------------------------------------------------------
// Greedy sampling: out[0] = argmax (lowest index on ties). One block of 1024.
extern "C" __global__ void argmax(const float* __restrict__ v, int n, int* __restrict__ out) {
  float bv = -INFINITY;
  int bi = 0x7fffffff;
  for (int i = threadIdx.x; i < n; i += blockDim.x)
    if (v[i] > bv) { bv = v[i]; bi = i; }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
  }
  __shared__ float sv[32];
  __shared__ int si[32];
  int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) { sv[w] = bv; si[w] = bi; }
  __syncthreads();
  if (w == 0) {
    int nw = blockDim.x >> 5;
    bv = lane < nw ? sv[lane] : -INFINITY;
    bi = lane < nw ? si[lane] : 0x7fffffff;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
    }
    if (lane == 0) out[0] = bi == 0x7fffffff ? 0 : bi;
  }
}

// ---------------------------------------------------------------------------
// Fused one-token (decode) kernels, the "v3" decode step (GPTOSS_CUDA_FUSED).
// A v1 decode step on an H100 spent 52% in the MoE GEMVs at 0.45 TB/s
// (uncoalesced activation loads) and ~20% in single-block launches (two
// RMSNorms, router GEMV, top-k). Here:
//   - every block stages its input vector (≤ FMAX floats) in shared memory,
//     RMS-normalized on the way when it is the residual: the norm is folded
//     into its consumers (QKV GEMV, router, unembedding) instead of running
//     as a launch of its own;
//   - the staged vector is padded by 4 floats every 32 (padi): a lane that
//     reads 8 or 32 consecutive values as float4 (BF16 or MXFP4 rows, one
//     16-byte weight load per lane) lands on distinct banks within each
//     quarter-warp, so activation reads are conflict-free while the weight
//     loads stay 16 bytes wide and coalesced;
//   - the grids are persistent (a few blocks per SM, warps striding over the
//     rows), so the staging is paid once per block, not once per 8 rows;
//   - RMSNorm + router GEMV + top-k are one block (norm_router); the MoE is
//     two launches for all k experts; mlp2 adds w·(W2·a + b2) into the
//     residual with atomicAdd (the k experts' order of addition varies from
//     run to run: rounding-level nondeterminism).
#define FMAX 4096
#define FPAD (FMAX + FMAX / 8)
DEV int padi(int k) { return k + ((k >> 5) << 2); }

// xs[padi(i)] = x[i] (scale != 0: x[i] / rms(x) · scale[i]); out, when set,
// gets the unpadded values. Ends with a barrier. Every load of a thread
// (≤ FMAX / 256 values of x and of scale) is issued before the first use:
// a loop that loads, then uses, one value a trip (what nvcc made of the
// plain loop) pays an L2 round trip per trip, 12 a 2880-wide vector in
// 256-thread blocks, twice with the norm (session 5's trace).
#define STAGE_NPT (FMAX / 256)
// stage_vec's loads: thread t's values t, t + blockDim.x, … (blockDim.x ≥ 256)
DEV void stage_load(const float* __restrict__ x, const uint16_t* __restrict__ scale, int K, float (&v)[STAGE_NPT],
                    float (&sc)[STAGE_NPT]) {
#pragma unroll
  for (int u = 0; u < STAGE_NPT; u++) {
    int i = threadIdx.x + u * blockDim.x;
    v[u] = i < K ? x[i] : 0.f;
    sc[u] = scale && i < K ? bf2f(scale[i]) : 1.f;
  }
}
// and its stores: xs[padi(i)] = v·r·sc (out[i] too when set), then a barrier
DEV void stage_store(const float (&v)[STAGE_NPT], const float (&sc)[STAGE_NPT], float r, bool scaled, float* xs,
                     float* __restrict__ out, int K) {
#pragma unroll
  for (int u = 0; u < STAGE_NPT; u++) {
    int i = threadIdx.x + u * blockDim.x;
    if (i < K) {
      float val = scaled ? v[u] * r * sc[u] : v[u];
      xs[padi(i)] = val;
      if (out) out[i] = val;
    }
  }
  __syncthreads();
}
DEV void stage_vec(const float* __restrict__ x, const uint16_t* __restrict__ scale, float* xs, float* __restrict__ out,
                   int K, float eps) {
  __shared__ float red[33];
  float v[STAGE_NPT], sc[STAGE_NPT];
  stage_load(x, scale, K, v, sc);
  float r = 1.f;
  if (scale) {
    float ss = 0.f;
#pragma unroll
    for (int u = 0; u < STAGE_NPT; u++) ss += v[u] * v[u];
    ss = warp_sum(ss);
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) red[w] = ss;
    __syncthreads();
    if (w == 0) {
      ss = lane < (int)(blockDim.x >> 5) ? red[lane] : 0.f;
      ss = warp_sum(ss);
      if (lane == 0) red[32] = ss;
    }
    __syncthreads();
    r = rsqrtf(red[32] / (float)K + eps);
  }
  stage_store(v, sc, r, scale != 0, xs, out, K);
}

// 8 BF16 values (16 bytes, the even one in the low half) · a, b
DEV float bf16x8_dot(uint4 v, float4 a, float4 b) {
  return __uint_as_float(v.x << 16) * a.x + __uint_as_float(v.x & 0xffff0000u) * a.y +
         __uint_as_float(v.y << 16) * a.z + __uint_as_float(v.y & 0xffff0000u) * a.w +
         __uint_as_float(v.z << 16) * b.x + __uint_as_float(v.z & 0xffff0000u) * b.y +
         __uint_as_float(v.w << 16) * b.z + __uint_as_float(v.w & 0xffff0000u) * b.w;
}

// Q8 decode weights (runtime/q8.go, Options.DecodeQ8): a row is K int8
// values and K/32 BF16 scales, one a block of 32. A lane takes 16-byte
// chunks (16 values, half a block) as the BF16 rows' lanes do, so the
// staged vector is read conflict-free the same way (16 floats at
// padi(16c), all within one padded group of 32). A value is a PRMT that
// puts its byte (sign bit flipped: q + 128) under the exponent of 2^23, an
// FADD of −(2^23 + 128) that leaves q exactly, and the FFMA.
DEV float q8_val(uint32_t w, int k) {  // w: 4 values, sign bits flipped
  return __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7650u | k)) - 8388736.f;
}
// 16 int8 values · 16 staged floats
DEV float q8x16_dot(uint4 v, const float* xp) {
  uint32_t w[4] = {v.x ^ 0x80808080u, v.y ^ 0x80808080u, v.z ^ 0x80808080u, v.w ^ 0x80808080u};
  float d = 0.f;
#pragma unroll
  for (int j = 0; j < 4; j++) {
    float4 a = *(const float4*)(xp + 4 * j);  // one FFMA chain: no FMUL/FADD per 4 values
    d = fmaf(q8_val(w[j], 0), a.x, d);
    d = fmaf(q8_val(w[j], 1), a.y, d);
    d = fmaf(q8_val(w[j], 2), a.z, d);
    d = fmaf(q8_val(w[j], 3), a.w, d);
  }
  return d;
}
DEV float ld_scale(const uint16_t* p) { return __uint_as_float((uint32_t)__ldg(p) << 16); }

// One weight row as a lane reads it, in 16-byte chunks: load(c) requests
// chunk c, dot(chunk, xs, c) multiplies it with its values of the staged
// vector. BF16: 8 values a chunk. Q8: 16 values and the BF16 scale of
// their block of 32.
struct RowBF16 {
  const uint4* w;
  struct Chunk {
    uint4 v;
  };
  DEV Chunk load(int c) const { return {ld_stream(w + c)}; }
  DEV float dot(Chunk k, const float* xs, int c) const {
    const float* xp = xs + padi(8 * c);
    float4 a = *(const float4*)xp, b = *(const float4*)(xp + 4);
    return bf16x8_dot(k.v, a, b);
  }
};
struct RowQ8 {
  const uint4* w;
  const uint16_t* d;
  struct Chunk {
    uint4 v;
    float s;
  };
  DEV Chunk load(int c) const { return {ld_stream(w + c), ld_scale(d + (c >> 1))}; }
  DEV float dot(Chunk k, const float* xs, int c) const { return q8x16_dot(k.v, xs + padi(16 * c)) * k.s; }
};

// one row (nc chunks) · staged x; U chunks a lane in flight.
template <int U, class R>
DEV float row_dot(R row, const float* xs, int nc, int lane) {
  float acc = 0.f;
  for (int base = 0; base < nc; base += 32 * U) {
    typename R::Chunk v[U];
#pragma unroll
    for (int u = 0; u < U; u++) {
      int c = base + lane + 32 * u;
      if (c < nc) v[u] = row.load(c);
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      int c = base + lane + 32 * u;
      if (c < nc) acc += row.dot(v[u], xs, c);
    }
  }
  return warp_sum(acc);
}

// two rows · staged x (both rows' loads in flight together).
template <class R>
DEV float2 rows2_dot(R r1, R r2, const float* xs, int nc, int lane) {
  float a1 = 0.f, a2 = 0.f;
  for (int base = 0; base < nc; base += 32 * 4) {
    typename R::Chunk v1[4], v2[4];
#pragma unroll
    for (int u = 0; u < 4; u++) {
      int c = base + lane + 32 * u;
      if (c < nc) {
        v1[u] = r1.load(c);
        v2[u] = r2.load(c);
      }
    }
#pragma unroll
    for (int u = 0; u < 4; u++) {
      int c = base + lane + 32 * u;
      if (c < nc) {
        a1 += r1.dot(v1[u], xs, c);
        a2 += r2.dot(v2[u], xs, c);
      }
    }
  }
  return make_float2(warp_sum(a1), warp_sum(a2));
}

// The weights of a decode GEMV: BF16 rows, or Q8 rows and their scales.
// at(r, K) is row r, chunks(K) its chunk count; bytes(K) is a row's size
// for prefetching.
struct WBF16 {
  const uint16_t* W;
  DEV RowBF16 at(int r, int K) const { return {(const uint4*)(W + (size_t)r * K)}; }
  DEV static int chunks(int K) { return K >> 3; }
  DEV const void* ptr(int r, int K) const { return W + (size_t)r * K; }
  DEV static size_t bytes(int K) { return (size_t)K * 2; }
};
struct WQ8 {
  const int8_t* W;
  const uint16_t* D;
  DEV RowQ8 at(int r, int K) const { return {(const uint4*)(W + (size_t)r * K), D + (size_t)r * (K >> 5)}; }
  DEV static int chunks(int K) { return K >> 4; }
  DEV const void* ptr(int r, int K) const { return W + (size_t)r * K; }
  DEV static size_t bytes(int K) { return (size_t)K; }
};

// y[r] = W[r] · rmsnorm(x) + b[r] for one token (scale = 0: no norm).
// Persistent grid, 256 threads, K ≤ FMAX, K % 32 == 0.
template <class Wt>
DEV void matvec_norm_body(Wt W, const uint16_t* __restrict__ bias, const float* __restrict__ x,
                          const uint16_t* __restrict__ scale, float* __restrict__ y, int N, int K, float eps,
                          int accumulate, int pf) {
  TR_BEGIN
  __shared__ __align__(16) float xs[FPAD];
  int lane = threadIdx.x & 31;
  int nw = gridDim.x * (blockDim.x >> 5);
  int row0 = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  for (int i = 0, row = row0; i < pf && row < N; i++, row += nw)  // the warp's first pf rows into L2
    prefetch_l2(W.ptr(row, K), Wt::bytes(K), lane, 32);
  pdl_wait();
  TR_WAITED;
  pdl_launch();
  stage_vec(x, scale, xs, 0, K, eps);
  for (int row = row0; row < N; row += nw) {
    float s = row_dot<8>(W.at(row, K), xs, Wt::chunks(K), lane);
    if (lane == 0) {
      s += bias ? bf2f(bias[row]) : 0.f;
      y[row] = accumulate ? y[row] + s : s;
    }
  }
  TR_END(N > 100000 ? 8 : 3);
}
#define MATVEC_NORM_ARGS                                                                                  \
  const uint16_t *__restrict__ bias, const float *__restrict__ x, const uint16_t *__restrict__ scale,     \
      float *__restrict__ y, int N, int K, float eps, int accumulate, int pf
#define MATVEC_NORM_PASS bias, x, scale, y, N, K, eps, accumulate, pf
extern "C" __global__ void __launch_bounds__(256) matvec_norm_t1(const uint16_t* __restrict__ W, MATVEC_NORM_ARGS) {
  matvec_norm_body(WBF16{W}, MATVEC_NORM_PASS);
}
extern "C" __global__ void __launch_bounds__(256) matvec_norm_q8(const int8_t* __restrict__ W,
                                                                 const uint16_t* __restrict__ D, MATVEC_NORM_ARGS) {
  matvec_norm_body(WQ8{W, D}, MATVEC_NORM_PASS);
}

// QKV for one token with RMSNorm before and YaRN RoPE + the KV-cache write
// after (rope_kv fused into the epilogue): a warp computes the rows i and
// i + D/2 of one head (a RoPE pair), rotates q and k heads at position
// *pos0, writes qkv and the FP16 k/v cache rows. Persistent grid.
template <class Wt>
DEV void qkv_rope_body(Wt W, const uint16_t* __restrict__ bias, const float* __restrict__ x,
                       const uint16_t* __restrict__ scale, float* __restrict__ qkv,
                       const float* __restrict__ inv_freq, const int* __restrict__ pos0, __half* __restrict__ kc,
                       __half* __restrict__ vc, int K, int Hq, int Hkv, int D, float conc, float eps, int pf) {
  TR_BEGIN
  __shared__ __align__(16) float xs[FPAD];
  int lane = threadIdx.x & 31;
  int half = D >> 1, kvw = Hkv * D;
  int P = (Hq + 2 * Hkv) * half, nw = gridDim.x * (blockDim.x >> 5);
  int it0 = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  for (int i = 0, it = it0; i < pf && it < P; i++, it += nw) {  // the warp's first pf row pairs into L2
    int h = it / half, r1 = h * D + (it - h * half);
    prefetch_l2(W.ptr(r1, K), Wt::bytes(K), lane, 32);
    prefetch_l2(W.ptr(r1 + half, K), Wt::bytes(K), lane, 32);
  }
  pdl_wait();
  TR_WAITED;
  pdl_launch();
  stage_vec(x, scale, xs, 0, K, eps);
  int p = *pos0;
  for (int it = it0; it < P; it += nw) {
    int h = it / half, i = it - h * half;
    int r1 = h * D + i, r2 = r1 + half;
    float2 s = rows2_dot(W.at(r1, K), W.at(r2, K), xs, Wt::chunks(K), lane);
    if (lane == 0) {
      float x1 = s.x + (bias ? bf2f(bias[r1]) : 0.f), x2 = s.y + (bias ? bf2f(bias[r2]) : 0.f);
      float o1 = x1, o2 = x2;
      if (h < Hq + Hkv) {
        float sn, c;
        sincosf((float)p * inv_freq[i], &sn, &c);
        c *= conc;
        sn *= conc;
        o1 = x1 * c - x2 * sn;
        o2 = x2 * c + x1 * sn;
      }
      qkv[r1] = o1;
      qkv[r2] = o2;
      if (h >= Hq + Hkv) {
        __half* v = vc + (size_t)p * kvw + (h - Hq - Hkv) * D;
        v[i] = __float2half_rn(o1);
        v[i + half] = __float2half_rn(o2);
      } else if (h >= Hq) {
        __half* k = kc + (size_t)p * kvw + (h - Hq) * D;
        k[i] = __float2half_rn(o1);
        k[i + half] = __float2half_rn(o2);
      }
    }
  }
  TR_END(1);
}
// the entry points' arguments after the weights
#define QKV_ROPE_ARGS                                                                                          \
  const uint16_t *__restrict__ bias, const float *__restrict__ x, const uint16_t *__restrict__ scale,          \
      float *__restrict__ qkv, const float *__restrict__ inv_freq, const int *__restrict__ pos0,              \
      __half *__restrict__ kc, __half *__restrict__ vc, int K, int Hq, int Hkv, int D, float conc, float eps, \
      int pf
#define QKV_ROPE_PASS bias, x, scale, qkv, inv_freq, pos0, kc, vc, K, Hq, Hkv, D, conc, eps, pf
extern "C" __global__ void __launch_bounds__(256) qkv_rope_t1(const uint16_t* __restrict__ W, QKV_ROPE_ARGS) {
  qkv_rope_body(WBF16{W}, QKV_ROPE_PASS);
}
extern "C" __global__ void __launch_bounds__(256) qkv_rope_q8(const int8_t* __restrict__ W,
                                                              const uint16_t* __restrict__ Dq, QKV_ROPE_ARGS) {
  qkv_rope_body(WQ8{W, Dq}, QKV_ROPE_PASS);
}

// RMSNorm + router GEMV + top-k for one token, one block of 1024 threads:
// xn = rmsnorm(x)·scale, logits = G·xn + b, ids/wts = top-k softmax. E ≤ 256.
extern "C" __global__ void __launch_bounds__(1024) norm_router(const float* __restrict__ x,
                                                               const uint16_t* __restrict__ scale,
                                                               float* __restrict__ xn,
                                                               const uint16_t* __restrict__ G,
                                                               const uint16_t* __restrict__ gb, int* __restrict__ ids,
                                                               float* __restrict__ wts, int H, int E, int k, float eps) {
  __shared__ __align__(16) float xs[FPAD];
  __shared__ float logits[256];
  TR_BEGIN
  prefetch_l2(G, (size_t)E * H * 2, threadIdx.x, blockDim.x);  // the whole gate matrix (≤ 2 MB)
  pdl_wait();
  TR_WAITED;
  pdl_launch();
  stage_vec(x, scale, xs, xn, H, eps);
  int lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  for (int e = threadIdx.x >> 5; e < E; e += nw) {
    float s = row_dot<8>(RowBF16{(const uint4*)(G + (size_t)e * H)}, xs, H >> 3, lane);
    if (lane == 0) logits[e] = s + bf2f(gb[e]);
  }
  __syncthreads();
  if (threadIdx.x < 32) topk_warp(logits, E, k, ids, wts);
  TR_END(4);
}

// ---------------------------------------------------------------------------
// Decode v16: the MLP's RMSNorm and router folded into the out-projection
// and the MoE kernels (norm_router's launch is gone). Rows as
// matvec_norm_t1 with accumulate: x[r] += W[r]·attn + b[r]. The router's
// logits are linear in x but for the norm's scalar: G·(x·r·scale) + gb =
// r·(G·(x⊙scale)) + gb, r = rsqrt(mean x² + eps). So each warp adds, for its
// rows, G[e][r]·scale[r]·x[r] (lane e, e + 32, …) and x[r]² into per-block
// sums, and each block adds those into its copy (blockIdx % OR_COPIES, so
// that no one L2 slice serializes every block's atomics) of part's E ≤ 256
// sums and the squares' (at OR_EMAX). The MoE kernels after it finish the
// router from part (router_final: the copies summed, r, the logits, top-k
// in every block): no block waits for the others here (an earlier version
// had the last block to finish do it behind a fence and a counter: 6–8 µs
// of tail a layer, session 5's trace). part is zero before the launch; the
// layer after next's mlp2 zeroes it again (two part buffers, by layer
// parity). The order of the float additions varies from run to run (as
// mlp2's atomics): rounding-level noise.
#define OR_EMAX 256
#define OR_COPIES 16
#define OR_STRIDE (OR_EMAX + 1)
template <int NE, class Wt>  // ⌈E/32⌉ ≤ NE experts a lane
DEV void outproj_sums_body(Wt W, const uint16_t* __restrict__ bias,
                           const float* __restrict__ attn, float* __restrict__ x, const uint16_t* __restrict__ G,
                           const uint16_t* __restrict__ scale, float* __restrict__ part, int N, int K, int E) {
  TR_BEGIN
  __shared__ __align__(16) float xs[FPAD];
  __shared__ float red[8][OR_STRIDE];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int nw = gridDim.x * (blockDim.x >> 5);
  int row0 = blockIdx.x * (blockDim.x >> 5) + warp;
  int ne = min(NE, (E + 31) >> 5);
  // the warp's first row's router column and norm scale (weights: before the wait)
  float gcol[NE], sc0 = 0.f;
#pragma unroll
  for (int i = 0; i < NE; i++) {
    int e = lane + 32 * i;
    gcol[i] = row0 < N && i < ne && e < E ? bf2f(G[(size_t)e * N + row0]) : 0.f;
  }
  if (row0 < N) {
    sc0 = bf2f(scale[row0]);
    prefetch_l2(W.ptr(row0, K), Wt::bytes(K), lane, 32);
  }
  pdl_wait();
  TR_WAITED;
  pdl_launch();
  stage_vec(attn, 0, xs, 0, K, 0.f);
  float pl[NE], ss = 0.f;
#pragma unroll
  for (int i = 0; i < NE; i++) pl[i] = 0.f;
  for (int row = row0; row < N; row += nw) {
    float s = row_dot<8>(W.at(row, K), xs, Wt::chunks(K), lane);
    float sc = sc0;
    if (row != row0) {
#pragma unroll
      for (int i = 0; i < NE; i++) {
        int e = lane + 32 * i;
        gcol[i] = i < ne && e < E ? bf2f(G[(size_t)e * N + row]) : 0.f;
      }
      sc = bf2f(scale[row]);
    }
    float xv = 0.f;
    if (lane == 0) {
      xv = x[row] + s + (bias ? bf2f(bias[row]) : 0.f);
      x[row] = xv;
    }
    xv = __shfl_sync(0xffffffffu, xv, 0);
    ss += xv * xv;
    float v = xv * sc;
#pragma unroll
    for (int i = 0; i < NE; i++) pl[i] += gcol[i] * v;
  }
#pragma unroll
  for (int i = 0; i < NE; i++)
    if (i < ne) red[warp][lane + 32 * i] = pl[i];
  if (lane == 0) red[warp][OR_EMAX] = ss;
  __syncthreads();
  int nwb = blockDim.x >> 5;
  float* mine = part + (blockIdx.x % OR_COPIES) * OR_STRIDE;
  for (int e = threadIdx.x; e <= E; e += blockDim.x) {
    int c = e == E ? OR_EMAX : e;
    float t = 0.f;
    for (int w = 0; w < nwb; w++) t += red[w][c];
    atomicAdd(mine + c, t);
  }
  TR_END(10);
}

#define OS_INST(NE)                                                                                             \
  extern "C" __global__ void __launch_bounds__(256) outproj_sums_##NE(                                          \
      const uint16_t* __restrict__ W, const uint16_t* __restrict__ bias, const float* __restrict__ attn,        \
      float* __restrict__ x, const uint16_t* __restrict__ G, const uint16_t* __restrict__ scale,                \
      float* __restrict__ part, int N, int K, int E) {                                                          \
    outproj_sums_body<NE>(WBF16{W}, bias, attn, x, G, scale, part, N, K, E);                                    \
  }                                                                                                             \
  extern "C" __global__ void __launch_bounds__(256) outproj_sums_q8_##NE(                                       \
      const int8_t* __restrict__ W, const uint16_t* __restrict__ Dq, const uint16_t* __restrict__ bias,         \
      const float* __restrict__ attn, float* __restrict__ x, const uint16_t* __restrict__ G,                    \
      const uint16_t* __restrict__ scale, float* __restrict__ part, int N, int K, int E) {                      \
    outproj_sums_body<NE>(WQ8{W, Dq}, bias, attn, x, G, scale, part, N, K, E);                                  \
  }
OS_INST(1)
OS_INST(4)
OS_INST(8)

// The router's last step (decode v16), in every block of the MoE kernels:
// part's copies summed (thread e takes value e; every load issued at once),
// r = rsqrt(mean x² + eps), the logits r·sum + gb into lg, top-k by warp 0
// into sid/swt (shared memory). E ≤ blockDim.x. Returns r; ends with a
// barrier. part was written by the out-projection, a finished kernel.
DEV float router_final(const float* __restrict__ part, const uint16_t* __restrict__ gb, int E, int k, int H,
                       float eps, float* lg, int* sid, float* swt) {
  int t = threadIdx.x;
  float sum = 0.f, b = 0.f;
  if (t <= E) {
    int c = t == E ? OR_EMAX : t;
    float v[OR_COPIES];
#pragma unroll
    for (int cp = 0; cp < OR_COPIES; cp++) v[cp] = __ldcg(part + cp * OR_STRIDE + c);
#pragma unroll
    for (int cp = 0; cp < OR_COPIES; cp++) sum += v[cp];
    if (t < E) b = bf2f(gb[t]);
  }
  if (t == E) lg[OR_EMAX] = sum;
  __syncthreads();
  float r = rsqrtf(lg[OR_EMAX] / (float)H + eps);
  if (t < E) lg[t] = sum * r + b;
  __syncthreads();
  if (t < 32) topk_warp(lg, E, k, sid, swt);
  __syncthreads();
  return r;
}

// one MXFP4 block (16 bytes, 32 values, even element in the low nibble) ·
// 32 staged values; lut is the lane's column of the 16-entry table.
DEV float dot_blk(const float* lut, uint4 q, const float* xb) {
  uint32_t w[4] = {q.x, q.y, q.z, q.w};
  float d = 0.f;
#pragma unroll
  for (int c = 0; c < 4; c++) {
    float4 a = *(const float4*)(xb + 8 * c), b = *(const float4*)(xb + 8 * c + 4);
    uint32_t v = w[c];
    d += lut[(v & 15u) * 32] * a.x + lut[((v >> 4) & 15u) * 32] * a.y + lut[((v >> 8) & 15u) * 32] * a.z +
         lut[((v >> 12) & 15u) * 32] * a.w + lut[((v >> 16) & 15u) * 32] * b.x +
         lut[((v >> 20) & 15u) * 32] * b.y + lut[((v >> 24) & 15u) * 32] * b.z + lut[(v >> 28) * 32] * b.w;
  }
  return d;
}

// mlp1 for the k experts of one token: act[k', j] = SwiGLU(W1_{ids[k']}
// rows 2j (gate) and 2j+1 (linear) · xn + b1). A warp takes one (k', j)
// pair at a time; lane l reads blocks l, l+32, … of both rows (16 bytes
// each, all in flight before the first use).
extern "C" __global__ void __launch_bounds__(256) moe3_mlp1_dec(const uint8_t* __restrict__ blocks,
                                                                const uint8_t* __restrict__ scales,
                                                                const uint16_t* __restrict__ bias,
                                                                const float* __restrict__ xn, const int* __restrict__ ids,
                                                                float* __restrict__ act, int I, int K, int topk,
                                                                float limit) {
  __shared__ __align__(16) float xs[FPAD];
  __shared__ float lut_[16 * 32];
  for (int i = threadIdx.x; i < 16 * 32; i += blockDim.x) lut_[i] = fp4(i >> 5);
  pdl_wait();
  pdl_launch();
  stage_vec(xn, 0, xs, 0, K, 0.f);
  int lane = threadIdx.x & 31;
  const float* lut = lut_ + lane;
  int nb = K >> 5;
  int P = topk * I, nw = gridDim.x * (blockDim.x >> 5);
  for (int p = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); p < P; p += nw) {
    int kk = p / I, j = p - kk * I;
    int e = ids[kk];
    size_t r0 = (size_t)e * 2 * I + 2 * j;
    const uint4* b0 = (const uint4*)(blocks + r0 * nb * 16);
    const uint4* b1 = b0 + nb;
    const uint8_t* s0 = scales + r0 * nb;
    const uint8_t* s1 = s0 + nb;
    float a0 = 0.f, a1 = 0.f;
    for (int base = 0; base < nb; base += 32 * 4) {
      uint4 q0[4], q1[4];
      uint32_t e0[4], e1[4];
#pragma unroll
      for (int u = 0; u < 4; u++) {
        int g = base + lane + 32 * u;
        if (g < nb) {
          q0[u] = ld_stream(b0 + g);
          q1[u] = ld_stream(b1 + g);
          e0[u] = s0[g];
          e1[u] = s1[g];
        }
      }
#pragma unroll
      for (int u = 0; u < 4; u++) {
        int g = base + lane + 32 * u;
        if (g < nb) {
          const float* xb = xs + 36 * g;
          a0 += dot_blk(lut, q0[u], xb) * __uint_as_float(e0[u] << 23);
          a1 += dot_blk(lut, q1[u], xb) * __uint_as_float(e1[u] << 23);
        }
      }
    }
    float g = warp_sum(a0), l = warp_sum(a1);
    if (lane == 0) {
      const uint16_t* br = bias + r0;
      act[(size_t)kk * I + j] = swiglu(g + bf2f(br[0]), l + bf2f(br[1]), limit);
    }
  }
}

// mlp2 for the k experts of one token, added into the residual:
// x[r] += wts[k']·(W2_{ids[k']}[r] · act[k'] + b2[r]). Block b works for
// expert slot b % topk (gridDim.x is a multiple of topk) and stages that
// slot's act; its warps stride over the rows.
extern "C" __global__ void __launch_bounds__(256) moe3_mlp2_dec(const uint8_t* __restrict__ blocks,
                                                                const uint8_t* __restrict__ scales,
                                                                const uint16_t* __restrict__ bias,
                                                                const float* __restrict__ act, const int* __restrict__ ids,
                                                                const float* __restrict__ wts, float* __restrict__ x,
                                                                int H, int I, int topk) {
  __shared__ __align__(16) float xs[FPAD];
  __shared__ float lut_[16 * 32];
  for (int i = threadIdx.x; i < 16 * 32; i += blockDim.x) lut_[i] = fp4(i >> 5);
  pdl_wait();
  pdl_launch();
  int kk = blockIdx.x % topk, bi = blockIdx.x / topk, nbs = gridDim.x / topk;
  stage_vec(act + (size_t)kk * I, 0, xs, 0, I, 0.f);
  int lane = threadIdx.x & 31;
  const float* lut = lut_ + lane;
  int nb = I >> 5;
  int e = ids[kk];
  float wk = wts[kk];
  int nw = nbs * (blockDim.x >> 5);
  for (int r = bi * (blockDim.x >> 5) + (threadIdx.x >> 5); r < H; r += nw) {
    size_t row = (size_t)e * H + r;
    const uint4* b0 = (const uint4*)(blocks + row * nb * 16);
    const uint8_t* s0 = scales + row * nb;
    float a0 = 0.f;
    for (int base = 0; base < nb; base += 32 * 4) {
      uint4 q0[4];
      uint32_t e0[4];
#pragma unroll
      for (int u = 0; u < 4; u++) {
        int g = base + lane + 32 * u;
        if (g < nb) {
          q0[u] = ld_stream(b0 + g);
          e0[u] = s0[g];
        }
      }
#pragma unroll
      for (int u = 0; u < 4; u++) {
        int g = base + lane + 32 * u;
        if (g < nb) a0 += dot_blk(lut, q0[u], xs + 36 * g) * __uint_as_float(e0[u] << 23);
      }
    }
    float s = warp_sum(a0);
    if (lane == 0) atomicAdd(x + r, wk * (s + bf2f(bias[row])));
  }
}

// ---------------------------------------------------------------------------
// Decode attention, v6 and v7 decode steps (GPTOSS_CUDA_DEC; v7 the
// default, v3 the kernels above). Measured on an H100 (PERF.md): a kernel
// that only streams 18–35 MB (a layer's GEMV) takes 9–16 µs back to back,
// ~2.3 TB/s, against 3.1 TB/s for 1 GB; the v3 MoE GEMVs took twice that.
// Variants that cut their shared-memory traffic (4 rows a warp), software-
// pipelined them, or cut their instructions a value (v6, v7 below) gained
// 5–10% each, not 2x: what is left is the per-kernel floor and a limit
// this design has not found (no profiler on the machine; see PERF.md).
//
// Decode attention (one query at position *pos0) with sinks and an optional
// sliding window. grid (Hkv, S), 32·G threads (G = Hq/Hkv ≤ 8 query heads
// share a KV head: warp w is head g·G + w). Split s takes a chunk of at
// least minc keys; a warp walks its chunk 32 keys at a time: lane l
// dots key l with q, the warp's online softmax rescales, then each lane
// accumulates its E = D/32 dimensions over the 32 keys (V rows read
// coalesced, all 32 loads in flight at once). The K/V rows are read by the G warps of one block: once from
// HBM, then from L1. Splits write {m, l, acc[D]} to part[(h·S + s)(D + 2)];
// the last active split of a KV head to finish (cnt[g], reset to 0 after)
// merges them with the sink and writes out[h·D + d]. minc is the fewest
// keys a split takes (32 up to v16; v17 passes more: fewer splits to
// merge at short contexts, and none in a sliding layer, whose 128 keys then
// make one split). With direct set, a KV head whose keys make one split
// writes out itself: the same arithmetic as the merge over one split, with
// no partials, fence or counter.
// the V-cache element a lane reads for its E = D/32 dimensions of a key
template <int E> struct VElem;
template <> struct VElem<1> { using T = unsigned short; };
template <> struct VElem<2> { using T = uint32_t; };
template <> struct VElem<4> { using T = uint2; };
DEV void vacc(float* acc, unsigned short v, float p) { acc[0] += p * __half2float(__ushort_as_half(v)); }
DEV void vacc(float* acc, uint32_t v, float p) {
  float2 f = __half22float2(*(const __half2*)&v);
  acc[0] += p * f.x;
  acc[1] += p * f.y;
}
DEV void vacc(float* acc, uint2 v, float p) {
  float2 f = __half22float2(*(const __half2*)&v.x), h = __half22float2(*(const __half2*)&v.y);
  acc[0] += p * f.x;
  acc[1] += p * f.y;
  acc[2] += p * h.x;
  acc[3] += p * h.y;
}

// One warp's online softmax over keys [begin, end) of KV head g for the
// query in qs (D values, scaled): m, l and its lane's E = D/32 dimensions
// of the weighted V sum (one split of attn_dec).
template <int D>
DEV void attn_chunk(const float* qs, const __half* __restrict__ kc, const __half* __restrict__ vc, int g, int kvw,
                    int begin, int end, int lane, float& m_out, float& l_out, float* acc_out) {
  constexpr int E = D >= 32 ? D / 32 : 1;
  using VT = typename VElem<E>::T;
  int d0 = lane * E;
  bool own = d0 < D;
  float m = -INFINITY, l = 0.f, acc[E];
#pragma unroll
  for (int i = 0; i < E; i++) acc[i] = 0.f;
  for (int j0 = begin; j0 < end; j0 += 32) {
    int j = j0 + lane;
    // the 32 keys' K rows (lane j's) and V rows (the lane's dimensions of
    // each) all requested before the first use: one round trip a step
    // (keys past the end and lanes without dimensions load nothing: zeros,
    // and their p is 0)
    int nk = min(32, end - j0);
    const __half* vr = vc + (size_t)j0 * kvw + g * D + d0;
    VT vv[32];
#pragma unroll
    for (int u = 0; u < 32; u++) vv[u] = u < nk && own ? *(const VT*)(vr + (size_t)u * kvw) : VT{};
    uint4 kv[D / 8];
    const uint4* kr = (const uint4*)(kc + (size_t)min(j, end - 1) * kvw + g * D);
#pragma unroll
    for (int c = 0; c < D / 8; c++) kv[c] = kr[c];
    float sc = -INFINITY;
    if (j < end) {
      float dot = 0.f;
#pragma unroll
      for (int c = 0; c < D / 8; c++) {
        float f[8];
        h8(kv[c], f);
        float4 qa = *(const float4*)&qs[8 * c], qb = *(const float4*)&qs[8 * c + 4];
        dot += f[0] * qa.x + f[1] * qa.y + f[2] * qa.z + f[3] * qa.w + f[4] * qb.x + f[5] * qb.y + f[6] * qb.z +
               f[7] * qb.w;
      }
      sc = dot;
    }
    float mn = fmaxf(m, warp_max(sc));  // finite: key j0 < end
    float corr = __expf(m - mn);        // m = -inf the first time: 0
    float pj = j < end ? __expf(sc - mn) : 0.f;
    l = l * corr + warp_sum(pj);
#pragma unroll
    for (int i = 0; i < E; i++) acc[i] *= corr;
#pragma unroll
    for (int u = 0; u < 32; u++) vacc(acc, vv[u], __shfl_sync(0xffffffffu, pj, u));
    m = mn;
  }
  m_out = m;
  l_out = l;
#pragma unroll
  for (int i = 0; i < E; i++) acc_out[i] = acc[i];
}

template <int D>
DEV void attn_dec_body(const float* __restrict__ qkv, const __half* __restrict__ kc, const __half* __restrict__ vc,
                       const int* __restrict__ pos0, const uint16_t* __restrict__ sinks, float* __restrict__ part,
                       int* __restrict__ cnt, float* __restrict__ out, int Hq, int Hkv, int window, int S,
                       float scale, int minc, int direct) {
  constexpr int E = D >= 32 ? D / 32 : 1;  // dimensions per lane (lanes ≥ D idle when D < 32)
  __shared__ __align__(16) float qs[8][D];
  __shared__ int last;
  TR_BEGIN
  pdl_wait();
  TR_WAITED;
  int g = blockIdx.x, s = blockIdx.y;
  int G = Hq / Hkv;
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int h = g * G + warp;
  // the query (independent of the position: loaded beside it)
  for (int d = lane; d < D; d += 32) qs[warp][d] = qkv[(size_t)h * D + d] * scale;
  int p = *pos0;
  int lo = window > 0 ? max(0, p - window + 1) : 0;
  int n = p - lo + 1;
  int chunk = max((n + S - 1) / S, max(minc, 1));
  int active = (n + chunk - 1) / chunk;  // splits with keys (≤ S)
  if (s >= active) {
    TR_END(2);
    return;
  }
  int begin = lo + s * chunk, end = min(p + 1, begin + chunk);
  __syncwarp();
  int kvw = Hkv * D;
  int d0 = lane * E;
  bool own = d0 < D;
  float m, l, acc[E];
  attn_chunk<D>(qs[warp], kc, vc, g, kvw, begin, end, lane, m, l, acc);
  if (direct && active == 1) {
    // the merge below over this one split: M = max(sink, m), L = l·e^(m−M)
    // + e^(sink−M), out = acc·e^(m−M) / L
    float sink = bf2f(sinks[h]);
    float M = fmaxf(sink, m);
    float f = __expf(m - M);
    float L = l * f + __expf(sink - M);
    if (own) {
#pragma unroll
      for (int i = 0; i < E; i++) out[(size_t)h * D + d0 + i] = acc[i] * f / L;
    }
    TR_END(2);
    return;
  }
  float* o = part + ((size_t)h * S + s) * (D + 2);
  if (lane == 0) { o[0] = m; o[1] = l; }
  if (own) {
#pragma unroll
    for (int i = 0; i < E; i++) o[2 + d0 + i] = acc[i];
  }
  // the last active split of this KV head merges them all
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(cnt + g, 1) == active - 1;
  __syncthreads();
  if (!last) {
    TR_END(2);
    return;
  }
  __threadfence();
  // lane t holds split t, t + 32, …: the max and the sum over the splits
  // with every split's {m, l} loaded at once (a serial walk over 64 splits
  // was ~40 µs a layer at context 8k), then the weighted sum of their
  // accumulators 8 splits a round
  float sink = bf2f(sinks[h]);
  const float* ph = part + (size_t)h * S * (D + 2);
  float M = sink;
  for (int t = lane; t < active; t += 32) M = fmaxf(M, __ldcg(ph + (size_t)t * (D + 2)));
  M = warp_max(M);
  float L = 0.f, r[E];
#pragma unroll
  for (int i = 0; i < E; i++) r[i] = 0.f;
  for (int t0 = 0; t0 < active; t0 += 32) {
    int t = t0 + lane;
    float f = 0.f;
    if (t < active) {
      const float* q = ph + (size_t)t * (D + 2);
      f = __expf(__ldcg(q) - M);
      L += __ldcg(q + 1) * f;
    }
    int nt = min(32, active - t0);
    for (int u0 = 0; u0 < nt; u0 += 8) {
      float v[8][E];
#pragma unroll
      for (int u = 0; u < 8; u++) {
        const float* q = ph + (size_t)(t0 + u0 + u) * (D + 2) + 2 + d0;
#pragma unroll
        for (int i = 0; i < E; i++) v[u][i] = u0 + u < nt && own ? __ldcg(q + i) : 0.f;
      }
#pragma unroll
      for (int u = 0; u < 8; u++) {
        float fu = __shfl_sync(0xffffffffu, f, (u0 + u) & 31);
#pragma unroll
        for (int i = 0; i < E; i++) r[i] += v[u][i] * fu;
      }
    }
  }
  L = warp_sum(L) + __expf(sink - M);
  if (own) {
#pragma unroll
    for (int i = 0; i < E; i++) out[(size_t)h * D + d0 + i] = r[i] / L;
  }
  if (threadIdx.x == 0) cnt[g] = 0;
  TR_END(9);
}

#define ATT4_INST(D)                                                                                             \
  extern "C" __global__ void __launch_bounds__(256) attn_dec_d##D(                                              \
      const float* qkv, const __half* kc, const __half* vc, const int* pos0, const uint16_t* sinks, float* part, \
      int* cnt, float* out, int Hq, int Hkv, int window, int S, float scale, int minc, int direct) {             \
    attn_dec_body<D>(qkv, kc, vc, pos0, sinks, part, cnt, out, Hq, Hkv, window, S, scale, minc, direct);        \
  }
ATT4_INST(16)
ATT4_INST(32)
ATT4_INST(64)
ATT4_INST(128)

// ---------------------------------------------------------------------------
// Decode MoE v6 (GPTOSS_CUDA_DEC=v6). The v3 kernels spend ~7 instructions
// a value (shift, mask, multiply-add for the table address, the table
// load, the FMA, plus the activations). Here a warp takes 4 rows (mlp1:
// two gate/linear pairs) or 2 rows (mlp2) and loads each activation float4
// once for all of them, and the per-lane table sits at a 2048-byte aligned
// shared address, so an entry's address is ((word >> 4i) << 7 & 0x780) |
// (table + 4·lane): one shift and one LOP3, then the load (ld.shared on the
// 32-bit address) and the FMA, ~5 a value. Measured: 8–10% faster than v3.

// the v6 table: 16 values × 32 lanes at a 2048-aligned spot of raw (1024
// floats); base is this lane's entry 0 in the shared window. The fill ends
// with no barrier (stage_vec's follows).
struct Lut6 {
  uint32_t base;
  DEV void fill(float* raw) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(raw);
    uint32_t al = (a + 2047u) & ~2047u;
    float* t = raw + (al - a) / 4;
    for (int i = threadIdx.x; i < 16 * 32; i += blockDim.x) t[i] = fp4(i >> 5);
    base = al + 4u * (threadIdx.x & 31);
  }
  // E2M1 value of nibble I of w
  template <int I>
  DEV float at(uint32_t w) const {
    uint32_t t;
    if constexpr (4 * I <= 7) t = w << (7 - 4 * I); else t = w >> (4 * I - 7);
#ifdef GPTOSS_EMU
    return *(const float*)emu_shared_ptr((t & 0x780u) | base);
#else
    float v;
    asm("ld.shared.f32 %0, [%1];" : "=f"(v) : "r"((t & 0x780u) | base));
    return v;
#endif
  }
  // the 8 values of w · xa, xc
  DEV float word(uint32_t w, float4 xa, float4 xc) const {
    return at<0>(w) * xa.x + at<1>(w) * xa.y + at<2>(w) * xa.z + at<3>(w) * xa.w + at<4>(w) * xc.x +
           at<5>(w) * xc.y + at<6>(w) * xc.z + at<7>(w) * xc.w;
  }
};

// ---------------------------------------------------------------------------
// Decode MoE v7 (GPTOSS_CUDA_DEC=v7, the default): v6 with a 256-entry
// table per lane (a byte → its two E2M1 values as a float2; 64 KB of
// dynamic shared memory, entry b of lane l at b·256 + 8l: conflict-free),
// so one shift, one LOP3 and one 8-byte load serve two values: ~3.4
// instructions a value. Measured: as fast as v6 alone, the fastest decode
// step with PDL (PERF.md).
#define LUT7_BYTES 65536
EXTERN_SHARED(float2, lut7);  // [256][32]

struct Lut7 {
  uint32_t l8;  // 8·lane
  DEV void fill() {
    for (int i = threadIdx.x; i < 256 * 32; i += blockDim.x) {
      uint32_t b = (uint32_t)i >> 5;
      lut7[i] = make_float2(fp4(b & 15u), fp4(b >> 4));
    }
    l8 = 8u * (threadIdx.x & 31);
  }
  // the two E2M1 values of byte K of w
  template <int K>
  DEV float2 at(uint32_t w) const {
    uint32_t t;
    if constexpr (K == 0) t = w << 8; else if constexpr (K == 1) t = w; else t = w >> (8 * K - 8);
    return *(const float2*)((const char*)lut7 + ((t & 0xff00u) | l8));
  }
  DEV float word(uint32_t w, float4 xa, float4 xc) const {
    float2 a = at<0>(w), b = at<1>(w), c = at<2>(w), d = at<3>(w);
    return a.x * xa.x + a.y * xa.y + b.x * xa.z + b.y * xa.w + c.x * xc.x + c.y * xc.y + d.x * xc.z + d.y * xc.w;
  }
};

// One round of mx_rows' loads: the U blocks a lane takes from g0 on of R
// rows of MXFP4 (row i at b + i*nb blocks, scales sc + i*nb), zeros past
// the row's end and for rows ≥ nr.
template <int R, int U>
DEV void mx_load(const uint4* __restrict__ b, const uint8_t* __restrict__ sc, int nb, int nr, int g0, int lane,
                 uint4 (&q)[U][R], uint32_t (&s8)[U][R]) {
#pragma unroll
  for (int u = 0; u < U; u++) {
    int g = g0 + lane + 32 * u;
#pragma unroll
    for (int r = 0; r < R; r++) {
      if (g < nb && r < nr) {
        q[u][r] = ld_stream(b + (size_t)r * nb + g);
        s8[u][r] = sc[(size_t)r * nb + g];
      } else {
        q[u][r] = make_uint4(0, 0, 0, 0);
        s8[u][r] = 0;
      }
    }
  }
}

// a[r] += that round's blocks · the staged vector xs (padded, block g at
// xs + 36g) with table T (per lane, not yet warp-reduced)
template <int R, int U, class T>
DEV void mx_dot(const uint4 (&q)[U][R], const uint32_t (&s8)[U][R], int nb, int g0, int lane, const float* xs,
                const T& tab, float* a) {
#pragma unroll
  for (int u = 0; u < U; u++) {
    int g = g0 + lane + 32 * u;
    if (g < nb) {
      const float* xb = xs + 36 * g;
      float d[R];
#pragma unroll
      for (int r = 0; r < R; r++) d[r] = 0.f;
#pragma unroll
      for (int c = 0; c < 4; c++) {
        float4 xa = *(const float4*)(xb + 8 * c), xc = *(const float4*)(xb + 8 * c + 4);
#pragma unroll
        for (int r = 0; r < R; r++) {
          uint32_t v = c == 0 ? q[u][r].x : c == 1 ? q[u][r].y : c == 2 ? q[u][r].z : q[u][r].w;
          d[r] += tab.word(v, xa, xc);
        }
      }
#pragma unroll
      for (int r = 0; r < R; r++) a[r] += d[r] * __uint_as_float(s8[u][r] << 23);
    }
  }
}

// R rows of MXFP4 · the staged vector with table T, U blocks per lane in
// flight (mx_load, mx_dot a round); rows ≥ nr are skipped. Returns the
// warp-reduced dots in a[0..R).
template <int R, int U, class T>
DEV void mx_rows(const uint4* __restrict__ b, const uint8_t* __restrict__ sc, int nb, int nr, const float* xs,
                 const T& tab, int lane, float* a) {
#pragma unroll
  for (int r = 0; r < R; r++) a[r] = 0.f;
  for (int g0 = 0; g0 < nb; g0 += 32 * U) {
    uint4 q[U][R];
    uint32_t s8[U][R];
    mx_load<R, U>(b, sc, nb, nr, g0, lane, q, s8);
    mx_dot<R, U>(q, s8, nb, g0, lane, xs, tab, a);
  }
#pragma unroll
  for (int r = 0; r < R; r++) a[r] = warp_sum(a[r]);
}

// mlp1's item (expert slot kk, outputs j and j + 1: rows 2j … 2j + 3 of
// expert e) · the staged xn, SwiGLU into act (v6, v7, v16).
template <class T>
DEV void mlp1_item(const T& tab, const float* xs, const uint8_t* __restrict__ blocks,
                   const uint8_t* __restrict__ scales, const uint16_t* __restrict__ bias, float* __restrict__ act,
                   int I, int nb, int kk, int j, int e, float limit, int lane) {
  int nr = j + 1 < I ? 4 : 2;
  size_t r0 = (size_t)e * 2 * I + 2 * j;
  float a[4];
  mx_rows<4, 3>((const uint4*)(blocks + r0 * nb * 16), scales + r0 * nb, nb, nr, xs, tab, lane, a);
  if (lane == 0) {
    const uint16_t* br = bias + r0;
    float* o = act + (size_t)kk * I + j;
    o[0] = swiglu(a[0] + bf2f(br[0]), a[1] + bf2f(br[1]), limit);
    if (nr == 4) o[1] = swiglu(a[2] + bf2f(br[2]), a[3] + bf2f(br[3]), limit);
  }
}

// mlp1 for the k experts of one token after the table is filled:
// act[k', j] = SwiGLU(W1_{ids[k']} rows 2j, 2j+1 · xn + b1), a warp taking
// two outputs (4 contiguous rows) at a time. Persistent grid.
template <class T>
DEV void moe_mlp1_dec_body(const T& tab, float* xs, const uint8_t* __restrict__ blocks,
                           const uint8_t* __restrict__ scales, const uint16_t* __restrict__ bias,
                           const float* __restrict__ xn, const int* __restrict__ ids, float* __restrict__ act, int I,
                           int K, int topk, float limit) {
  TR_BEGIN
  pdl_wait();
  TR_WAITED;
  pdl_launch();
  int lane = threadIdx.x & 31;
  int nb = K >> 5, I2 = (I + 1) >> 1;
  int P = topk * I2, nw = gridDim.x * (blockDim.x >> 5);
  int p0 = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  int e0 = p0 < P ? ids[p0 / I2] : 0;  // the first item's expert, loaded beside the staging
  stage_vec(xn, 0, xs, 0, K, 0.f);
  for (int p = p0; p < P; p += nw) {
    int kk = p / I2, j = 2 * (p - kk * I2);
    mlp1_item(tab, xs, blocks, scales, bias, act, I, nb, kk, j, p == p0 ? e0 : ids[kk], limit, lane);
  }
  TR_END(5);
}

// mlp2 for the k experts of one token, added into the residual:
// x[r] += wts[k']·(W2_{ids[k']}[r] · act[k'] + b2[r]). Block b serves expert
// slot b % topk (gridDim.x is a multiple of topk); a warp takes 2 rows.
template <class T>
DEV void moe_mlp2_dec_body(const T& tab, float* xs, const uint8_t* __restrict__ blocks,
                           const uint8_t* __restrict__ scales, const uint16_t* __restrict__ bias,
                           const float* __restrict__ act, const int* __restrict__ ids, const float* __restrict__ wts,
                           float* __restrict__ x, int H, int I, int topk) {
  TR_BEGIN
  pdl_wait();
  TR_WAITED;
  pdl_launch();
  int kk = blockIdx.x % topk, bi = blockIdx.x / topk, nbs = gridDim.x / topk;
  stage_vec(act + (size_t)kk * I, 0, xs, 0, I, 0.f);
  int lane = threadIdx.x & 31;
  int nb = I >> 5, H2 = (H + 1) >> 1;
  int e = ids[kk];
  float wk = wts[kk];
  int nw = nbs * (blockDim.x >> 5);
  for (int p = bi * (blockDim.x >> 5) + (threadIdx.x >> 5); p < H2; p += nw) {
    int r = 2 * p, nr = min(2, H - r);
    size_t row = (size_t)e * H + r;
    float a[2];
    mx_rows<2, 3>((const uint4*)(blocks + row * nb * 16), scales + row * nb, nb, nr, xs, tab, lane, a);
    if (lane == 0) {
      atomicAdd(x + r, wk * (a[0] + bf2f(bias[row])));
      if (nr == 2) atomicAdd(x + r + 1, wk * (a[1] + bf2f(bias[row + 1])));
    }
  }
  TR_END(7);
}

#define MOE_DEC_ARGS1                                                                                       \
  const uint8_t *__restrict__ blocks, const uint8_t *__restrict__ scales, const uint16_t *__restrict__ bias, \
      const float *__restrict__ xn, const int *__restrict__ ids, float *__restrict__ act, int I, int K, int topk, \
      float limit
#define MOE_DEC_ARGS2                                                                                         \
  const uint8_t *__restrict__ blocks, const uint8_t *__restrict__ scales, const uint16_t *__restrict__ bias,   \
      const float *__restrict__ act, const int *__restrict__ ids, const float *__restrict__ wts,               \
      float *__restrict__ x, int H, int I, int topk

// the mlp1 and mlp2 kernels of decode version V: DECL declares the table t,
// FILL fills it
#define MOE_DEC_INST(V, DECL, FILL)                                                       \
  extern "C" __global__ void __launch_bounds__(256, 2) moe##V##_mlp1_dec(MOE_DEC_ARGS1) { \
    __shared__ __align__(16) float xs[FPAD];                                              \
    DECL;                                                                                 \
    FILL;                                                                                 \
    moe_mlp1_dec_body(t, xs, blocks, scales, bias, xn, ids, act, I, K, topk, limit);      \
  }                                                                                       \
  extern "C" __global__ void __launch_bounds__(256, 2) moe##V##_mlp2_dec(MOE_DEC_ARGS2) { \
    __shared__ __align__(16) float xs[FPAD];                                              \
    DECL;                                                                                 \
    FILL;                                                                                 \
    moe_mlp2_dec_body(t, xs, blocks, scales, bias, act, ids, wts, x, H, I, topk);         \
  }
MOE_DEC_INST(6, __shared__ float raw[1024]; Lut6 t, t.fill(raw))
MOE_DEC_INST(7, Lut7 t, t.fill())

// ---------------------------------------------------------------------------
// Decode v12 mlp2 (GPTOSS_CUDA_DEC=v12, the default; v7's other kernels):
// v7's mlp2 with the warp's first row pair requested before the PDL wait
// (measured −1.5 µs a layer, PERF.md). Its weights depend on the router's
// expert ids, written two kernels earlier: this kernel starts only once
// every block of mlp1 has passed its own wait (pdl_launch follows pdl_wait
// in every kernel of the step), so the ids are final; they are read
// through L2 (ld.global.cg), never a stale L1 line.
DEV int ld_cg(const int* p) {
#ifdef GPTOSS_EMU
  return *p;
#else
  int v;
  asm volatile("ld.global.cg.s32 %0, [%1];" : "=r"(v) : "l"(p));
  return v;
#endif
}

// mlp2's row pair p of expert e (rows 2p, 2p + 1) into q/s8: one round of
// loads (nb ≤ 96 blocks a row).
DEV void mlp2_load(const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales, int H, int nb, int e,
                   int p, int lane, uint4 (&q)[3][2], uint32_t (&s8)[3][2]) {
  int r = 2 * p;
  size_t row = (size_t)e * H + r;
  mx_load<2, 3>((const uint4*)(blocks + row * nb * 16), scales + row * nb, nb, min(2, H - r), 0, lane, q, s8);
}

// A warp's first row pair p0 into q/s8 (before the PDL wait) when a pair is
// one round of loads (nb ≤ 96 blocks a row, I ≤ 3072); else mlp2_pairs
// multiplies through mx_rows as v7 does.
DEV void mlp2_first(const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales, int H, int nb, int e,
                    int p0, int lane, uint4 (&q)[3][2], uint32_t (&s8)[3][2]) {
  if (p0 < ((H + 1) >> 1) && nb <= 96) mlp2_load(blocks, scales, H, nb, e, p0, lane, q, s8);
}

// mlp2's row pairs p0, p0 + nw, … of expert e · the staged act, wk·(· + b2)
// added into x (v12, v16); with rows of one round (nb ≤ 96) the first
// pair is already in q/s8 (mlp2_first).
template <class T>
DEV void mlp2_pairs(const T& tab, const float* xs, const uint8_t* __restrict__ blocks,
                    const uint8_t* __restrict__ scales, const uint16_t* __restrict__ bias, float* __restrict__ x, int H,
                    int nb, int e, float wk, int p0, int nw, int lane, uint4 (&q)[3][2], uint32_t (&s8)[3][2]) {
  int H2 = (H + 1) >> 1;
  bool one = nb <= 96;
  for (int p = p0; p < H2; p += nw) {
    int r = 2 * p, nr = min(2, H - r);
    size_t row = (size_t)e * H + r;
    float a[2];
    if (one) {
      if (p != p0) mlp2_load(blocks, scales, H, nb, e, p, lane, q, s8);
      a[0] = a[1] = 0.f;
      mx_dot<2, 3>(q, s8, nb, 0, lane, xs, tab, a);
      a[0] = warp_sum(a[0]);
      a[1] = warp_sum(a[1]);
    } else {
      mx_rows<2, 3>((const uint4*)(blocks + row * nb * 16), scales + row * nb, nb, nr, xs, tab, lane, a);
    }
    if (lane == 0) {
      atomicAdd(x + r, wk * (a[0] + bf2f(bias[row])));
      if (nr == 2) atomicAdd(x + r + 1, wk * (a[1] + bf2f(bias[row + 1])));
    }
  }
}

extern "C" __global__ void __launch_bounds__(256, 2) moe12_mlp2_dec(MOE_DEC_ARGS2) {
  TR_BEGIN
  __shared__ __align__(16) float xs[FPAD];
  Lut7 tab;
  tab.fill();
  int kk = blockIdx.x % topk, bi = blockIdx.x / topk, nbs = gridDim.x / topk;
  int lane = threadIdx.x & 31;
  int nb = I >> 5;
  int e = ld_cg(ids + kk);
  int nw = nbs * (blockDim.x >> 5);
  int p0 = bi * (blockDim.x >> 5) + (threadIdx.x >> 5);
  uint4 q[3][2];
  uint32_t s8[3][2];
  mlp2_first(blocks, scales, H, nb, e, p0, lane, q, s8);  // weights only: before the wait
  pdl_wait();
  TR_WAITED;
  pdl_launch();
  stage_vec(act + (size_t)kk * I, 0, xs, 0, I, 0.f);
  float wk = wts[kk];
  mlp2_pairs(tab, xs, blocks, scales, bias, x, H, nb, e, wk, p0, nw, lane, q, s8);
  TR_END(6);
}

// ---------------------------------------------------------------------------
// Decode v16 MoE: v7's mlp1 and v12's mlp2 with the router finished in
// every block (router_final, from outproj_sums' part): mlp1 after its PDL
// wait, with x's loads for the staging (x·r·scale, the norm folded in) in
// flight beside part's; mlp2 before its wait, as its first rows (part was
// written two kernels earlier: see moe12_mlp2_dec), and it zeroes the other
// part buffer (the layer before's, which the layer after adds into).
extern "C" __global__ void __launch_bounds__(256, 2) moe16_mlp1_dec(
    const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales, const uint16_t* __restrict__ bias,
    const float* __restrict__ x, const uint16_t* __restrict__ nscale, const float* __restrict__ part,
    const uint16_t* __restrict__ gb, float* __restrict__ act, int I, int K, int E, int topk, float limit, float eps) {
  TR_BEGIN
  __shared__ __align__(16) float xs[FPAD];
  __shared__ float lg[OR_STRIDE], swt[8];
  __shared__ int sid[8];
  Lut7 tab;
  tab.fill();
  pdl_wait();
  TR_WAITED;
  pdl_launch();
  float v[STAGE_NPT], sc[STAGE_NPT];
  stage_load(x, nscale, K, v, sc);
  float r = router_final(part, gb, E, topk, K, eps, lg, sid, swt);
  stage_store(v, sc, r, true, xs, 0, K);
  int lane = threadIdx.x & 31;
  int nb = K >> 5, I2 = (I + 1) >> 1;
  int P = topk * I2, nw = gridDim.x * (blockDim.x >> 5);
  for (int p = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); p < P; p += nw) {
    int kk = p / I2, j = 2 * (p - kk * I2);
    mlp1_item(tab, xs, blocks, scales, bias, act, I, nb, kk, j, sid[kk], limit, lane);
  }
  TR_END(5);
}

extern "C" __global__ void __launch_bounds__(256, 2) moe16_mlp2_dec(
    const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales, const uint16_t* __restrict__ bias,
    const float* __restrict__ act, const float* __restrict__ part, const uint16_t* __restrict__ gb,
    float* __restrict__ zero, float* __restrict__ x, int H, int I, int E, int topk, float eps) {
  TR_BEGIN
  __shared__ __align__(16) float xs[FPAD];
  __shared__ float lg[OR_STRIDE], swt[8];
  __shared__ int sid[8];
  Lut7 tab;
  tab.fill();
  int kk = blockIdx.x % topk, bi = blockIdx.x / topk, nbs = gridDim.x / topk;
  int lane = threadIdx.x & 31;
  int nb = I >> 5;
  router_final(part, gb, E, topk, H, eps, lg, sid, swt);
  int e = sid[kk];
  float wk = swt[kk];
  int nw = nbs * (blockDim.x >> 5);
  int p0 = bi * (blockDim.x >> 5) + (threadIdx.x >> 5);
  uint4 q[3][2];
  uint32_t s8[3][2];
  mlp2_first(blocks, scales, H, nb, e, p0, lane, q, s8);  // weights only: before the wait
  pdl_wait();
  TR_WAITED;
  pdl_launch();
  if (blockIdx.x == 0)
    for (int i = threadIdx.x; i < OR_COPIES * OR_STRIDE; i += blockDim.x) zero[i] = 0.f;
  stage_vec(act + (size_t)kk * I, 0, xs, 0, I, 0.f);
  mlp2_pairs(tab, xs, blocks, scales, bias, x, H, nb, e, wk, p0, nw, lane, q, s8);
  TR_END(6);
}

// ---------------------------------------------------------------------------
// Decode v17 MoE (GPTOSS_CUDA_DEC=v17; compiled and reviewed, not yet run on
// a GPU): v16's kernels (the router finished in every block) with the two
// costs session 5's trace left in them attacked.
//   - Phases in lockstep. A v16 warp requests an item's weights, waits for
//     all of them, multiplies, then requests the next: every warp of the
//     grid does the same at the same time (2.7 items a warp for mlp1), so
//     the loads come in ~4.5 µs bursts with the multiplies (~2.8 µs) in
//     between and HBM idle: 3 × 7.3 µs ≈ mlp1's 23.9 µs. Here each warp
//     keeps S - 1 items in flight with cp.async (into its own ring of S
//     stages in shared memory, no registers held) while it multiplies the
//     current one: the loads stream back to back.
//   - Shared-memory traffic. v7's table costs an 8-byte LDS per two values
//     plus a float4 of x per four: 5 bytes of the shared pipe a value, 25.6
//     values a clock per SM, ~11 µs of mlp1. Here the table is a byte → half2
//     of its two E2M1 values (4 bytes, lane-replicated: 32 KB) and x sits in
//     registers as half2 (each lane always takes the same blocks of the
//     vector: lane + 32u, u < 3), so a byte costs a shift, a LOP3, a 4-byte
//     LDS and one HFMA2: ~42 values a clock per SM on the shared pipe.
// Arithmetic: x is staged as half, scaled by a power of two 2^k so that
// max |x·2^k| < 256 (exact; the result is scaled back by 2^-k); a lane's
// 16 pairs of one 32-value block accumulate in a half2 (|sum| ≤ 16·6·256 <
// 65504), then in float with the block's E8M0 scale. Relative error ~1e-3
// of a row's dot product (half's 11 bits), below the bf16 activations of
// OpenAI's reference. Rows ≤ 96 blocks (K, I ≤ 3072: v17OK).
#define LUTH_BYTES 32768
#define V17_U 3                  // blocks a lane takes of a row (nb ≤ 96)
#define V17_R 2                  // rows an item
#define V17_S 2                  // stages of a warp's ring
#define V17_SC 208               // bytes for an item's scales (R·96 + 2 words of slack, 16-aligned)
#define V17_STAGE (V17_U * V17_R * 512 + V17_SC)
#define V17_XH 40                // halves a staged block takes (32 + 8: conflict-free 16-byte loads)
#define V17_WARPS 8              // warps a block (the launch's 256 threads; the rings are sized for them)
EXTERN_SHARED(uint32_t, dyn17);  // [LUTH_BYTES table][8 warps][S stages]
// v17Shared in device.go is this sum
static_assert(LUTH_BYTES + V17_WARPS * V17_S * V17_STAGE == 85248, "device.go's v17Shared");

#ifdef GPTOSS_EMU
DEV void cp_async16(uint32_t dst, const void* src) { emu_cp_async(dst, src, 16); }
DEV void cp_async4(uint32_t dst, const void* src) { emu_cp_async(dst, src, 4); }
DEV void cp_commit() { emu_cp_commit(); }
template <int N>
DEV void cp_wait() {
  emu_cp_wait(N);
}
#else
DEV void cp_async16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src) : "memory");
}
DEV void cp_async4(uint32_t dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(dst), "l"(src) : "memory");
}
DEV void cp_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
DEV void cp_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}
#endif

// byte b → half2(E2M1 of its low nibble, of its high nibble), entry b of
// lane l at dyn17[32b + l]
struct LutH {
  uint32_t l4;  // 4·lane
  DEV void fill() {
    for (int i = threadIdx.x; i < 256 * 32; i += blockDim.x) {
      uint32_t b = (uint32_t)i >> 5;
      __half2 h = __halves2half2(__float2half_rn(fp4(b & 15u)), __float2half_rn(fp4(b >> 4)));
      dyn17[i] = *(const uint32_t*)&h;
    }
    l4 = 4u * (threadIdx.x & 31);
  }
  // the two values of byte K of w
  template <int K>
  DEV __half2 at(uint32_t w) const {
    uint32_t t;
    if constexpr (K == 0) t = w << 7; else t = w >> (8 * K - 7);
    uint32_t v = *(const uint32_t*)((const char*)dyn17 + ((t & 0x7f80u) | l4));
    return *(const __half2*)&v;
  }
};

// stage_load's values ·r·sc (scaled) as half into xh (block g at xh +
// V17_XH·g), times 2^k with max |·2^k| < 256 in float (≤ 256 once rounded
// to half), then the lane's blocks lane + 32u of it into xr (zeros past
// the end); returns 2^-k. red: a float a warp of shared memory.
DEV float stage_half(const float (&v)[STAGE_NPT], const float (&sc)[STAGE_NPT], float r, bool scaled, __half* xh,
                     int K, float* red, uint4 (&xr)[V17_U][4]) {
  float y[STAGE_NPT], m = 0.f;
#pragma unroll
  for (int u = 0; u < STAGE_NPT; u++) {
    int i = threadIdx.x + u * blockDim.x;
    y[u] = i < K ? (scaled ? v[u] * r * sc[u] : v[u]) : 0.f;
    m = fmaxf(m, fabsf(y[u]));
  }
  m = block_max(m, red);
  // m < 2^(e-126) for its biased exponent e: 2^(134-e) takes it below 2^8
  int f = min(max(261 - (int)((__float_as_uint(m) >> 23) & 0xffu), 27), 227);
  float s = __uint_as_float((uint32_t)f << 23);
#pragma unroll
  for (int u = 0; u < STAGE_NPT; u++) {
    int i = threadIdx.x + u * blockDim.x;
    if (i < K) xh[V17_XH * (i >> 5) + (i & 31)] = __float2half_rn(y[u] * s);
  }
  __syncthreads();
  int lane = threadIdx.x & 31, nb = K >> 5;
#pragma unroll
  for (int u = 0; u < V17_U; u++) {
    int g = lane + 32 * u;
#pragma unroll
    for (int c = 0; c < 4; c++) xr[u][c] = g < nb ? *(const uint4*)(xh + V17_XH * g + 8 * c) : make_uint4(0, 0, 0, 0);
  }
  return __uint_as_float((uint32_t)(254 - f) << 23);
}

// A warp's ring of V17_S stages (dynamic shared memory after the table)
// over one MXFP4 matrix (blocks, scales; rows of nb blocks): stage s holds
// an item's weights, [u][r][lane] 16 bytes each (what lane takes: block
// lane + 32u of row r), and the 4-byte words covering its scales. Each lane
// copies its own blocks and reads only those; the scale words are shared by
// the warp (a __syncwarp after the wait).
struct Ring17 {
  uint32_t base;    // shared address of the warp's stage 0
  const char* gen;  // the same, generic
  const uint8_t* blocks;
  const uint8_t* scales;
  int nb, lane;
  DEV void init(const uint8_t* b, const uint8_t* s, int n) {
    int warp = threadIdx.x >> 5;
    gen = (const char*)dyn17 + LUTH_BYTES + warp * (V17_S * V17_STAGE);
    base = (uint32_t)__cvta_generic_to_shared(gen);
    blocks = b;
    scales = s;
    nb = n;
    lane = threadIdx.x & 31;
  }
  // rows row … row + nr - 1 (nr ≤ R) into stage s: the lane's blocks, and
  // the scale words lane, lane + 32
  DEV void issue(int s, size_t row, int nr) const {
    uint32_t st = base + s * V17_STAGE;
    const uint4* w = (const uint4*)(blocks + row * nb * 16);
#pragma unroll
    for (int u = 0; u < V17_U; u++) {
      int g = lane + 32 * u;
#pragma unroll
      for (int r = 0; r < V17_R; r++)
        if (g < nb && r < nr) cp_async16(st + ((u * V17_R + r) * 32 + lane) * 16, w + (size_t)r * nb + g);
    }
    uintptr_t a = (uintptr_t)(scales + row * nb);
    const uint32_t* a0 = (const uint32_t*)(a & ~(uintptr_t)3);
    int words = ((int)(a & 3) + nr * nb + 3) >> 2;
#pragma unroll
    for (int k = 0; k < 2; k++) {  // words ≤ 49 (V17_SC)
      int i = lane + 32 * k;
      if (i < words) cp_async4(st + V17_U * V17_R * 512 + 4 * i, a0 + i);
    }
  }
  // stage s's rows (from row, nr of them) · x (the lane's blocks as half2,
  // xr[u][c]: values 8c … 8c + 7 of block lane + 32u) into a[r], not yet
  // warp-reduced
  DEV void dot(const LutH& tab, int s, size_t row, int nr, const uint4 (&xr)[V17_U][4], float* a) const {
    const char* st = gen + s * V17_STAGE;
    const uint8_t* scs = (const uint8_t*)st + V17_U * V17_R * 512 + ((uintptr_t)(scales + row * nb) & 3);
#pragma unroll
    for (int r = 0; r < V17_R; r++) a[r] = 0.f;
#pragma unroll
    for (int u = 0; u < V17_U; u++) {
      int g = lane + 32 * u;
#pragma unroll
      for (int r = 0; r < V17_R; r++) {
        uint4 q = *(const uint4*)(st + ((u * V17_R + r) * 32 + lane) * 16);
        // past the row's end and rows ≥ nr: any weights (the table holds
        // only finite values), scale 0 (and x = 0 past the end)
        uint32_t s8 = g < nb && r < nr ? scs[r * nb + g] : 0u;
        __half2 h = __float2half2_rn(0.f);
#pragma unroll
        for (int c = 0; c < 4; c++) {
          uint32_t w = c == 0 ? q.x : c == 1 ? q.y : c == 2 ? q.z : q.w;
          uint4 xq = xr[u][c];
          h = __hfma2(tab.at<0>(w), *(const __half2*)&xq.x, h);
          h = __hfma2(tab.at<1>(w), *(const __half2*)&xq.y, h);
          h = __hfma2(tab.at<2>(w), *(const __half2*)&xq.z, h);
          h = __hfma2(tab.at<3>(w), *(const __half2*)&xq.w, h);
        }
        float2 f = __half22float2(h);
        a[r] += (f.x + f.y) * __uint_as_float(s8 << 23);
      }
    }
  }
};

// A warp's items p0, p0 + nw, … < P through its ring: item(p, nr) returns
// item p's first row and sets its row count. first() requests the first
// S - 1 items (mlp2 calls it before its PDL wait), run() the rest one item
// ahead of the multiply; the rows of the items in flight ride along in
// registers (oldest first).
template <class Item>
struct Pipe17 {
  Ring17 ring;
  Item item;
  int p0, P, nw;
  size_t qrow[V17_S - 1];
  int qnr[V17_S - 1];
  // item p into stage s, as slot i of the queue
  DEV void request(int s, int p, int i) {
    qrow[i] = 0;
    qnr[i] = 0;
    if (p < P) {
      qrow[i] = item(p, qnr[i]);
      ring.issue(s, qrow[i], qnr[i]);
    }
    cp_commit();
  }
  DEV void first() {
#pragma unroll
    for (int i = 0; i < V17_S - 1; i++) request(i, p0 + i * nw, i);
  }
  // out(p, row, nr, a0, a1) takes item p's warp-reduced dots (times xinv)
  template <class Out>
  DEV void run(const LutH& tab, const uint4 (&xr)[V17_U][4], float xinv, const Out& out) {
    int s = 0;
    for (int p = p0; p < P; p += nw) {
      size_t row = qrow[0];
      int nr = qnr[0];
#pragma unroll
      for (int i = 0; i + 1 < V17_S - 1; i++) {
        qrow[i] = qrow[i + 1];
        qnr[i] = qnr[i + 1];
      }
      int sn = s + V17_S - 1;
      if (sn >= V17_S) sn -= V17_S;
      __syncwarp();  // the warp is done with stage sn (the item before p)
      request(sn, p + (V17_S - 1) * nw, V17_S - 2);
      cp_wait<V17_S - 1>();  // item p's copies, this lane's
      __syncwarp();          // and the other lanes' scale words
      float a[V17_R];
      ring.dot(tab, s, row, nr, xr, a);
#pragma unroll
      for (int r = 0; r < V17_R; r++) a[r] = warp_sum(a[r]) * xinv;
      out(p, row, nr, a[0], a[1]);
      if (++s == V17_S) s = 0;
    }
  }
};

// the shared memory both v17 kernels declare besides the dynamic table and
// rings: the staged half vector and router_final's
struct __align__(16) V17Smem {
  __half xh[V17_XH * 32 * V17_U];
  float lg[OR_STRIDE], swt[8], red[V17_WARPS];
  int sid[8];
};

// a v17 kernel's start, before its PDL wait: the table, and the warp's ring
// over the matrix (blocks, scales; rows of nb blocks)
DEV void v17_begin(LutH& tab, Ring17& ring, const uint8_t* blocks, const uint8_t* scales, int nb) {
  if (blockDim.x != 32 * V17_WARPS) __trap();  // the rings hold 8 warps
  tab.fill();
  ring.init(blocks, scales, nb);
}

extern "C" __global__ void __launch_bounds__(256, 2) moe17_mlp1_dec(
    const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales, const uint16_t* __restrict__ bias,
    const float* __restrict__ x, const uint16_t* __restrict__ nscale, const float* __restrict__ part,
    const uint16_t* __restrict__ gb, float* __restrict__ act, int I, int K, int E, int topk, float limit, float eps) {
  TR_BEGIN
  __shared__ V17Smem sm;
  LutH tab;
  Ring17 ring;
  v17_begin(tab, ring, blocks, scales, K >> 5);
  pdl_wait();
  TR_WAITED;
  pdl_launch();
  float v[STAGE_NPT], sc[STAGE_NPT];
  stage_load(x, nscale, K, v, sc);
  float r = router_final(part, gb, E, topk, K, eps, sm.lg, sm.sid, sm.swt);
  // item p = kk·I + j: output j of expert slot kk, rows 2j (gate) and 2j + 1
  // (linear) of expert sid[kk]; p / I as a multiply-high, exact while p·I <
  // 2^32 (p < 8·I, I ≤ 3072: v17OK)
  const int* ids = sm.sid;
  uint32_t mI = 0xffffffffu / (uint32_t)I + 1u;
  auto item = [=](int p, int& nr) -> size_t {
    int kk = (int)__umulhi((uint32_t)p, mI), j = p - kk * I;
    nr = 2;
    return (size_t)ids[kk] * 2 * I + 2 * j;
  };
  Pipe17<decltype(item)> pipe{ring, item, (int)blockIdx.x * V17_WARPS + (int)(threadIdx.x >> 5), topk * I,
                              (int)gridDim.x * V17_WARPS};
  pipe.first();  // in flight while x is staged
  uint4 xr[V17_U][4];
  float xinv = stage_half(v, sc, r, true, sm.xh, K, sm.red, xr);
  int lane = threadIdx.x & 31;
  pipe.run(tab, xr, xinv, [=](int p, size_t row, int, float a0, float a1) {
    if (lane == 0) act[p] = swiglu(a0 + bf2f(bias[row]), a1 + bf2f(bias[row + 1]), limit);
  });
  TR_END(5);
}

extern "C" __global__ void __launch_bounds__(256, 2) moe17_mlp2_dec(
    const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales, const uint16_t* __restrict__ bias,
    const float* __restrict__ act, const float* __restrict__ part, const uint16_t* __restrict__ gb,
    float* __restrict__ zero, float* __restrict__ x, int H, int I, int E, int topk, float eps) {
  TR_BEGIN
  __shared__ V17Smem sm;
  LutH tab;
  Ring17 ring;
  v17_begin(tab, ring, blocks, scales, I >> 5);
  int kk = blockIdx.x % topk, bi = blockIdx.x / topk, nbs = gridDim.x / topk;
  router_final(part, gb, E, topk, H, eps, sm.lg, sm.sid, sm.swt);
  int e = sm.sid[kk];
  float wk = sm.swt[kk];
  // item p: rows 2p, 2p + 1 of expert e
  auto item = [=](int p, int& nr) -> size_t {
    nr = min(2, H - 2 * p);
    return (size_t)e * H + 2 * p;
  };
  Pipe17<decltype(item)> pipe{ring, item, bi * V17_WARPS + (int)(threadIdx.x >> 5), (H + 1) >> 1, nbs * V17_WARPS};
  pipe.first();  // weights only: before the wait
  pdl_wait();
  TR_WAITED;
  pdl_launch();
  if (blockIdx.x == 0)
    for (int i = threadIdx.x; i < OR_COPIES * OR_STRIDE; i += blockDim.x) zero[i] = 0.f;
  float v[STAGE_NPT], sc[STAGE_NPT];
  stage_load(act + (size_t)kk * I, 0, I, v, sc);
  uint4 xr[V17_U][4];
  float xinv = stage_half(v, sc, 1.f, false, sm.xh, I, sm.red, xr);
  int lane = threadIdx.x & 31;
  pipe.run(tab, xr, xinv, [=](int p, size_t row, int nr, float a0, float a1) {
    if (lane == 0) {
      atomicAdd(x + 2 * p, wk * (a0 + bf2f(bias[row])));
      if (nr == 2) atomicAdd(x + 2 * p + 1, wk * (a1 + bf2f(bias[row + 1])));
    }
  });
  TR_END(6);
}

// ---------------------------------------------------------------------------
// Sampling on the device: temperature, top-k and top-p (nucleus) with a
// uniform draw u ∈ [0, 1) from the caller's seeded generator, the same rules
// as runtime/sample: probabilities p = exp((l − max)/T); with top-k or
// top-p the candidates sorted by p (descending, lower id first on ties),
// the first k kept, then the shortest prefix whose mass reaches top_p of
// the reference (the top k's mass, else the whole distribution's); the
// token is where u·mass falls in that order. With neither, u·Σp falls in
// id order over the whole vocabulary. One block of 1024 threads:
// candidates are the tokens with p ≥ 2^-b for the smallest b that holds
// enough of them (a binary search over b, one pass each), sorted in
// shared memory; more than SAMPLE_CAP candidates → out[1] = 1 and the
// caller samples on the host. probs is V floats of scratch.
#define SAMPLE_CAP 4096
extern "C" __global__ void __launch_bounds__(1024) sample_topkp(const float* __restrict__ logits, int V, float invT,
                                                                int topk, float topp, float u,
                                                                float* __restrict__ probs, int* __restrict__ out) {
  __shared__ float red[32];
  __shared__ float cp[SAMPLE_CAP];
  __shared__ int ci[SAMPLE_CAP];
  __shared__ int ncand;
  int tid = threadIdx.x, nt = blockDim.x;
  float m = -INFINITY;
  for (int i = tid; i < V; i += nt) m = fmaxf(m, logits[i]);
  float M = block_max(m, red);
  float s = 0.f;
  for (int i = tid; i < V; i += nt) {
    float l = logits[i];
    float p = (l != l || M == -INFINITY) ? 0.f : expf((l - M) * invT);
    probs[i] = p;
    s += p;
  }
  float sum = block_sum(s, red);
  if (topk >= V) topk = 0;
  if (topp <= 0.f) topp = 1.f;
  if (topk == 0 && topp >= 1.f) {
    // plain draw in id order: each thread a contiguous chunk
    int chunk = (V + nt - 1) / nt, lo = tid * chunk, hi = min(V, lo + chunk);
    float cs = 0.f;
    for (int i = lo; i < hi; i++) cs += probs[i];
    __shared__ float pre[1024];
    pre[tid] = cs;
    __syncthreads();
    if (tid == 0) {
      float acc = 0.f, target = u * sum;
      int owner = -1;
      for (int i = 0; i < nt; i++) {
        if (pre[i] > 0.f && acc + pre[i] > target) { owner = i; break; }
        acc += pre[i];
      }
      red[0] = acc;
      ncand = owner;
    }
    __syncthreads();
    if (ncand < 0) {  // rounding: the last token with any mass
      if (tid == 0) {
        int last = 0;
        for (int i = V - 1; i >= 0; i--)
          if (probs[i] > 0.f) { last = i; break; }
        out[0] = last;
        out[1] = 0;
      }
      return;
    }
    if (tid == ncand) {
      float r = u * sum - red[0];
      int last = lo;
      for (int i = lo; i < hi; i++) {
        float p = probs[i];
        if (p == 0.f) continue;
        last = i;
        r -= p;
        if (r < 0.f) break;
      }
      out[0] = last;
      out[1] = 0;
    }
    return;
  }
  // smallest b in [0, 127] whose set {p ≥ 2^-b} has ≥ topk tokens (top-k)
  // or ≥ topp of the mass (nucleus); p ≤ 1, the max has p = 1.
  int lo = 0, hi = 127;
  while (lo < hi) {
    int mid = (lo + hi) >> 1;
    float th = exp2f(-(float)mid);
    float c = 0.f, ms = 0.f;
    for (int i = tid; i < V; i += nt) {
      float p = probs[i];
      if (p >= th) { c += 1.f; ms += p; }
    }
    c = block_sum(c, red);
    ms = block_sum(ms, red);
    bool ok = topk > 0 ? c >= (float)topk : ms >= topp * sum;
    if (ok) hi = mid; else lo = mid + 1;
  }
  float th = exp2f(-(float)lo);
  if (tid == 0) ncand = 0;
  __syncthreads();
  for (int i = tid; i < V; i += nt) {
    float p = probs[i];
    if (p >= th && p > 0.f) {
      int j = atomicAdd(&ncand, 1);
      if (j < SAMPLE_CAP) { cp[j] = p; ci[j] = i; }
    }
  }
  __syncthreads();
  int n = ncand;
  if (n > SAMPLE_CAP || n == 0) {  // too many candidates, or no token with any mass
    if (tid == 0) { out[0] = -1; out[1] = n == 0 ? 2 : 1; }
    return;
  }
  int P2 = 1;
  while (P2 < n) P2 <<= 1;
  for (int i = n + tid; i < P2; i += nt) { cp[i] = -1.f; ci[i] = 0x7fffffff; }
  __syncthreads();
  // bitonic sort: p descending, id ascending on ties
  for (int k = 2; k <= P2; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = tid; i < P2; i += nt) {
        int l = i ^ j;
        if (l > i) {
          bool before = cp[i] > cp[l] || (cp[i] == cp[l] && ci[i] < ci[l]);  // i belongs before l
          bool desc = (i & k) == 0;
          if (desc != before) {
            float tp = cp[i]; cp[i] = cp[l]; cp[l] = tp;
            int ti = ci[i]; ci[i] = ci[l]; ci[l] = ti;
          }
        }
      }
      __syncthreads();
    }
  }
  if (tid == 0) {
    int c = n;
    if (topk > 0 && topk < c) c = topk;
    float ref = sum;
    if (topk > 0) {
      ref = 0.f;
      for (int i = 0; i < c; i++) ref += cp[i];
    }
    if (topp < 1.f) {
      float acc = 0.f;
      for (int i = 0; i < c; i++) {
        acc += cp[i];
        if (acc >= topp * ref) { c = i + 1; break; }
      }
    }
    float mass = 0.f;
    for (int i = 0; i < c; i++) mass += cp[i];
    float r = u * mass;
    int tok = ci[c - 1];
    for (int i = 0; i < c; i++) {
      r -= cp[i];
      if (r < 0.f) { tok = ci[i]; break; }
    }
    out[0] = tok;
    out[1] = 0;
  }
}

// ---------------------------------------------------------------------------
// Tensor-core MoE for prefill (GPTOSS_CUDA_MOE=tc): tiles of up to 16
// (token, expert) assignments of one expert (moe_plan with tile 16). A block
// of 4 warps owns 64 weight rows; per 32-element K chunk (one MXFP4 block)
// it decodes the rows into BF16 in shared memory — E2M1 × 2^(s−127) has two
// significant bits, so BF16 holds it exactly — and splits the activations
// into hi + lo BF16 halves (x ≈ hi + lo to ~16 bits), then two
// m16n16k16 BF16 MMAs per 16 K (W·hi + W·lo) accumulate in FP32.
#define TC_ROWS 64
#define TC_LD 40  // 32 + 8 (16-byte row padding)
using namespace nvcuda;

// 4 activations as hi + lo BF16 halves (x ≈ hi + lo to ~16 bits)
DEV void tc_split(float4 v, __nv_bfloat16* hi, __nv_bfloat16* lo) {
  float f[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    __nv_bfloat16 h = __float2bfloat16_rn(f[i]);
    hi[i] = h;
    lo[i] = __float2bfloat16_rn(f[i] - __bfloat162float(h));
  }
}

using TCAcc = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// acc += the warp's 16 weight rows (W, row stride TC_LD) · the 16 tokens'
// activations (Xh + Xl) over one 32-wide K chunk: W·hi + W·lo per 16 K
DEV void tc_mma32(TCAcc& acc, const __nv_bfloat16* W, const __nv_bfloat16* Xh, const __nv_bfloat16* Xl) {
#pragma unroll
  for (int kk = 0; kk < 32; kk += 16) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> bh, bl;
    wmma::load_matrix_sync(a, W + kk, TC_LD);
    wmma::load_matrix_sync(bh, Xh + kk, TC_LD);
    wmma::load_matrix_sync(bl, Xl + kk, TC_LD);
    wmma::mma_sync(acc, a, bh, acc);
    wmma::mma_sync(acc, a, bl, acc);
  }
}

// acc[row][token] over K for rows r0.. of the MXFP4 matrix (row stride nb
// blocks) and the tile's activation rows xrow[i] (nullptr: zero).
DEV void tc_tile(const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales, size_t r0, int nrows, int nb,
                 const float* const* xrow, float* out /* [TC_ROWS][16] */) {
  __shared__ __align__(32) __nv_bfloat16 Ws[TC_ROWS * TC_LD];
  __shared__ __align__(32) __nv_bfloat16 Xh[16 * TC_LD];
  __shared__ __align__(32) __nv_bfloat16 Xl[16 * TC_LD];
  int tid = threadIdx.x, warp = tid >> 5;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 0.f);
  int wr = tid >> 1, half = tid & 1;  // weight row (0..63) and 8-byte half of its block
  int xt = tid >> 3, xq = (tid & 7) * 4;  // activation token (0..15) and 4-float quarter
  for (int c = 0; c < nb; c++) {
    // weights: row wr, elements half*16 .. +15 of block c
    {
      __nv_bfloat16* dst = Ws + wr * TC_LD + half * 16;
      if (wr < nrows) {
        size_t row = r0 + wr;
        uint2 q = *(const uint2*)(blocks + (row * nb + c) * 16 + half * 8);
        float sc = __uint_as_float(((uint32_t)scales[row * nb + c]) << 23);
        uint32_t w[2] = {q.x, q.y};
#pragma unroll
        for (int h = 0; h < 2; h++)
#pragma unroll
          for (int b = 0; b < 8; b++) dst[h * 8 + b] = __float2bfloat16_rn(fp4((w[h] >> (4 * b)) & 15u) * sc);
      } else {
#pragma unroll
        for (int b = 0; b < 16; b++) dst[b] = __float2bfloat16_rn(0.f);
      }
    }
    // activations: token xt, elements xq .. xq+3 of block c (16 tokens ×
    // 8 quarters = the 128 threads)
    {
      float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
      if (xrow[xt]) v = *(const float4*)(xrow[xt] + c * 32 + xq);
      tc_split(v, Xh + xt * TC_LD + xq, Xl + xt * TC_LD + xq);
    }
    __syncthreads();
    tc_mma32(acc, Ws + warp * 16 * TC_LD, Xh, Xl);
    __syncthreads();
  }
  wmma::store_matrix_sync(out + warp * 16 * 16, acc, 16, wmma::mem_row_major);
  __syncthreads();
}

#define TC_PROLOGUE                                              \
  if ((int)blockIdx.y >= *ntiles) return;                        \
  int4 tl = tiles[blockIdx.y];                                   \
  __shared__ const float* xrow[16];                              \
  __shared__ int arow[16];                                       \
  __shared__ __align__(32) float out[TC_ROWS * 16];

extern "C" __global__ void __launch_bounds__(128) moe_tc_mlp1(const uint8_t* __restrict__ blocks,
                                                              const uint8_t* __restrict__ scales,
                                                              const uint16_t* __restrict__ bias,
                                                              const float* __restrict__ x, const int* __restrict__ order,
                                                              const int4* __restrict__ tiles, const int* __restrict__ ntiles,
                                                              float* __restrict__ act, int I, int K, int topk, float limit) {
  TC_PROLOGUE
  if (threadIdx.x < 16) {
    int i = threadIdx.x;
    int a = i < tl.z ? order[tl.y + i] : -1;
    arow[i] = a;
    xrow[i] = a >= 0 ? x + (size_t)(a / topk) * K : nullptr;
  }
  __syncthreads();
  int e = tl.x, nb = K >> 5;
  int rb = blockIdx.x * TC_ROWS;  // first row of 2I
  tc_tile(blocks, scales, (size_t)e * 2 * I + rb, min(TC_ROWS, 2 * I - rb), nb, xrow, out);
  // out[row][token]: rows 2j (gate) and 2j+1 (linear)
  for (int idx = threadIdx.x; idx < (TC_ROWS / 2) * 16; idx += blockDim.x) {
    int jl = idx >> 4, i = idx & 15;
    int j = (rb >> 1) + jl;
    if (i < tl.z && 2 * j < 2 * I) {
      const uint16_t* br = bias + (size_t)e * 2 * I + 2 * j;
      act[(size_t)arow[i] * I + j] = swiglu(out[(2 * jl) * 16 + i] + bf2f(br[0]), out[(2 * jl + 1) * 16 + i] + bf2f(br[1]), limit);
    }
  }
}

extern "C" __global__ void __launch_bounds__(128) moe_tc_mlp2(const uint8_t* __restrict__ blocks,
                                                              const uint8_t* __restrict__ scales,
                                                              const uint16_t* __restrict__ bias,
                                                              const float* __restrict__ act, const int* __restrict__ order,
                                                              const int4* __restrict__ tiles, const int* __restrict__ ntiles,
                                                              float* __restrict__ y, int H, int I) {
  TC_PROLOGUE
  if (threadIdx.x < 16) {
    int i = threadIdx.x;
    int a = i < tl.z ? order[tl.y + i] : -1;
    arow[i] = a;
    xrow[i] = a >= 0 ? act + (size_t)a * I : nullptr;
  }
  __syncthreads();
  int e = tl.x, nb = I >> 5;
  int rb = blockIdx.x * TC_ROWS;
  tc_tile(blocks, scales, (size_t)e * H + rb, min(TC_ROWS, H - rb), nb, xrow, out);
  for (int idx = threadIdx.x; idx < TC_ROWS * 16; idx += blockDim.x) {
    int rl = idx >> 4, i = idx & 15;
    int r = rb + rl;
    if (i < tl.z && r < H) y[(size_t)arow[i] * H + r] = out[rl * 16 + i] + bf2f(bias[(size_t)e * H + r]);
  }
}

// BF16 GEMM for prefill on tensor cores (GPTOSS_CUDA_GEMM=tc): y[t, r] (+)=
// W[r] · x[t] + b[r] for 64 rows × 16 tokens a block (grid.x walks the
// token tiles, so the blocks sharing weight rows run together and the
// rows come from L2 after the first); activations as hi + lo BF16 halves
// as in the MoE. K % 32 == 0.
extern "C" __global__ void __launch_bounds__(128) gemm_tc_bf16(const uint16_t* __restrict__ W,
                                                               const uint16_t* __restrict__ bias,
                                                               const float* __restrict__ x, float* __restrict__ y,
                                                               int N, int K, int T, int accumulate) {
  __shared__ __align__(32) __nv_bfloat16 Ws[TC_ROWS * TC_LD];
  __shared__ __align__(32) __nv_bfloat16 Xh[16 * TC_LD];
  __shared__ __align__(32) __nv_bfloat16 Xl[16 * TC_LD];
  __shared__ __align__(32) float out[TC_ROWS * 16];
  int tid = threadIdx.x, warp = tid >> 5;
  int t0 = blockIdx.x * 16, rb = blockIdx.y * TC_ROWS;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 0.f);
  int wr = tid >> 1, wh = (tid & 1) * 16;   // weight row, first of its 16 elements
  int xt = tid >> 3, xq = (tid & 7) * 4;    // token, first of its 4 elements
  bool wok = rb + wr < N, xok = t0 + xt < T;
  const uint4* wp = (const uint4*)(W + (size_t)(rb + wr) * K + wh);
  const float* xp = x + (size_t)(t0 + xt) * K + xq;
  for (int c = 0; c < K; c += 32) {
    uint4 a0 = make_uint4(0, 0, 0, 0), a1 = a0;
    if (wok) {
      a0 = ld_stream(wp + c / 8);
      a1 = ld_stream(wp + c / 8 + 1);
    }
    *(uint4*)(Ws + wr * TC_LD + wh) = a0;
    *(uint4*)(Ws + wr * TC_LD + wh + 8) = a1;
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (xok) v = *(const float4*)(xp + c);
    tc_split(v, Xh + xt * TC_LD + xq, Xl + xt * TC_LD + xq);
    __syncthreads();
    tc_mma32(acc, Ws + warp * 16 * TC_LD, Xh, Xl);
    __syncthreads();
  }
  wmma::store_matrix_sync(out + warp * 16 * 16, acc, 16, wmma::mem_row_major);
  __syncthreads();
  for (int idx = tid; idx < TC_ROWS * 16; idx += blockDim.x) {
    int i = idx % 16, rl = idx / 16;  // consecutive threads: consecutive tokens of one row
    int r = rb + rl, t = t0 + i;
    if (r < N && t < T) {
      float s = out[rl * 16 + i] + (bias ? bf2f(bias[r]) : 0.f);
      float* o = y + (size_t)t * N + r;
      *o = accumulate ? *o + s : s;
    }
  }
}

// ---------------------------------------------------------------------------
// Bandwidth probe (the benchmark's reference, not the model): a persistent
// grid streams n 16-byte words, each warp 8 KB a round with every load in
// flight, and keeps a checksum so the loads stay.
extern "C" __global__ void __launch_bounds__(256) bw_read(const uint4* __restrict__ p, long long n,
                                                         uint32_t* __restrict__ out) {
  int lane = threadIdx.x & 31;
  long long nw = (long long)gridDim.x * (blockDim.x >> 5);
  long long w = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  uint32_t acc = 0;
  for (long long base = w * 512; base < n; base += nw * 512) {
    uint4 v[16];
#pragma unroll
    for (int u = 0; u < 16; u++) {
      long long i = base + u * 32 + lane;
      v[u] = i < n ? ld_stream(p + i) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < 16; u++) acc ^= v[u].x + v[u].y + v[u].z + v[u].w;
  }
  if (acc == 0x9e3779b9u) out[0] = acc;
}
