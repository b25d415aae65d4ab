// gpt-oss kernels for the gptoss CUDA engine (runtime/cuda). Built by
// `make cuda` into runtime/cuda/fatbin/kernels.fatbin and embedded in the
// binary; the Go side launches them through the driver API (no cgo).
//
// Conventions: activations are float32 row-major [T, width]; weights are the
// layout's bytes as is (BF16 as raw uint16, MXFP4 blocks [E, out, in/32, 16]
// with the even element in the low nibble + E8M0 scales [E, out, in/32]); the
// KV cache is BF16 [maxLen, kvHeads*headDim] per layer. Kernels that depend on
// the position read it from device memory (pos0), so a captured CUDA graph
// replays with new positions.
#include <stdint.h>

#define DEV __device__ __forceinline__

DEV float bf2f(uint16_t h) { return __uint_as_float(((uint32_t)h) << 16); }

DEV uint16_t f2bf(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);                      // round to nearest even
  return (uint16_t)(u >> 16);
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

// E2M1 code → value.
DEV float fp4(uint32_t n) {
  uint32_t e = (n >> 1) & 3u, m = n & 1u;
  uint32_t bits = e ? ((e + 126u) << 23) | (m << 22) : (m ? (126u << 23) : 0u);
  return __uint_as_float(bits | ((n & 8u) << 28));
}

// Streaming 16-byte load that does not pollute L1 (weights are read once).
DEV uint4 ld_stream(const uint4* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
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
// k and v into the BF16 KV cache rows pos0+t. qkv is [T, (Hq+2Hkv)*D].
// cos/sin are scaled by the YaRN concentration.
extern "C" __global__ void rope_kv(float* __restrict__ qkv, const float* __restrict__ inv_freq,
                                   const int* __restrict__ pos0, uint16_t* __restrict__ kc,
                                   uint16_t* __restrict__ vc, int T, int Hq, int Hkv, int D, float conc) {
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
      uint16_t* k = kc + (size_t)p * kvw + (h - Hq) * D;
      k[i] = f2bf(o1);
      k[i + half] = f2bf(o2);
    }
  }
  const float* vsrc = row + (Hq + Hkv) * D;
  for (int j = threadIdx.x; j < kvw; j += blockDim.x) vc[(size_t)p * kvw + j] = f2bf(vsrc[j]);
}

// ---------------------------------------------------------------------------
// Attention with sinks and an optional sliding window, split over the keys.
// attn_partial: grid (Hq, T, S), 128 threads; each thread walks keys of its
// split, keeping an online softmax (m, l, acc[D]); the block merges them and
// writes part[(t*Hq+h)*S+s] = {m, l, acc[D]}. attn_combine folds the splits
// and the sink (once) and writes out[t, h*D + d].
#define ATT_THREADS 128
template <int D>
DEV void attn_partial_body(const float* __restrict__ qkv, const uint16_t* __restrict__ kc,
                           const uint16_t* __restrict__ vc, const int* __restrict__ pos0, float* __restrict__ part,
                           int T, int Hq, int Hkv, int window, int S, float scale) {
  int h = blockIdx.x, t = blockIdx.y, s = blockIdx.z;
  int g = h / (Hq / Hkv);
  int p = *pos0 + t;
  int lo = window > 0 ? max(0, p - window + 1) : 0;
  int n = p - lo + 1;
  int chunk = (n + S - 1) / S;
  int begin = lo + s * chunk, end = min(p + 1, begin + chunk);
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
      uint4 v = kr[c];
      dot += __uint_as_float(v.x << 16) * qs[8 * c + 0] + __uint_as_float(v.x & 0xffff0000u) * qs[8 * c + 1] +
             __uint_as_float(v.y << 16) * qs[8 * c + 2] + __uint_as_float(v.y & 0xffff0000u) * qs[8 * c + 3] +
             __uint_as_float(v.z << 16) * qs[8 * c + 4] + __uint_as_float(v.z & 0xffff0000u) * qs[8 * c + 5] +
             __uint_as_float(v.w << 16) * qs[8 * c + 6] + __uint_as_float(v.w & 0xffff0000u) * qs[8 * c + 7];
    }
    float mn = fmaxf(m, dot);
    float corr = __expf(m - mn);  // m = -inf the first time: 0
    float pj = __expf(dot - mn);
    l = l * corr + pj;
    const uint4* vr = (const uint4*)(vc + (size_t)j * kvw + g * D);
#pragma unroll
    for (int c = 0; c < D / 8; c++) {
      uint4 v = vr[c];
      acc[8 * c + 0] = acc[8 * c + 0] * corr + pj * __uint_as_float(v.x << 16);
      acc[8 * c + 1] = acc[8 * c + 1] * corr + pj * __uint_as_float(v.x & 0xffff0000u);
      acc[8 * c + 2] = acc[8 * c + 2] * corr + pj * __uint_as_float(v.y << 16);
      acc[8 * c + 3] = acc[8 * c + 3] * corr + pj * __uint_as_float(v.y & 0xffff0000u);
      acc[8 * c + 4] = acc[8 * c + 4] * corr + pj * __uint_as_float(v.z << 16);
      acc[8 * c + 5] = acc[8 * c + 5] * corr + pj * __uint_as_float(v.z & 0xffff0000u);
      acc[8 * c + 6] = acc[8 * c + 6] * corr + pj * __uint_as_float(v.w << 16);
      acc[8 * c + 7] = acc[8 * c + 7] * corr + pj * __uint_as_float(v.w & 0xffff0000u);
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
  float* o = part + ((size_t)(t * Hq + h) * S + s) * (D + 2);
  for (int d = threadIdx.x; d <= D; d += blockDim.x) {
    float v = 0.f;
    for (int i = 0; i < ATT_THREADS / 32; i++) v += accs[i][d];
    if (d < D) o[2 + d] = v; else o[1] = v;
  }
  if (threadIdx.x == 0) o[0] = M;
}

#define ATT_INST(D)                                                                                       \
  extern "C" __global__ void __launch_bounds__(ATT_THREADS) attn_partial_d##D(                            \
      const float* qkv, const uint16_t* kc, const uint16_t* vc, const int* pos0, float* part, int T, int Hq, \
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
extern "C" __global__ void router_topk(const float* __restrict__ logits, int* __restrict__ ids,
                                       float* __restrict__ wts, int T, int E, int k) {
  int t = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  if (t >= T) return;
  float v[8];
#pragma unroll
  for (int i = 0; i < 8; i++) {
    int e = lane + 32 * i;
    v[i] = e < E ? logits[(size_t)t * E + e] : -INFINITY;
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
      ids[t * k + r] = seli[r];
      wts[t * k + r] = ex[r] / sum;
    }
  }
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

// MXFP4 rows of one expert dotted with up to TB activation rows: each lane
// takes 32-element blocks (16 bytes + 1 scale) along the row.
// mlp1 with fused clamped SwiGLU: a warp owns output pair j (rows 2j = gate,
// 2j+1 = linear) and writes act[a, j] for each assignment a of its tile.
// grid (ceil(I / warps), maxTiles), x is [T, K], act is [n, I].
template <int TB>
DEV void moe_mlp1_body(const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales,
                       const uint16_t* __restrict__ bias, const float* __restrict__ x, const int* __restrict__ order,
                       const int4* __restrict__ tiles, const int* __restrict__ ntiles, float* __restrict__ act, int I,
                       int K, int topk, float limit) {
  if ((int)blockIdx.y >= *ntiles) return;
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int j = blockIdx.x * (blockDim.x >> 5) + warp;
  if (j >= I) return;
  int4 tl = tiles[blockIdx.y];
  int e = tl.x, cnt = tl.z;
  int nb = K >> 5;
  int a[TB];
  const float* xr[TB];
#pragma unroll
  for (int i = 0; i < TB; i++) {
    a[i] = i < cnt ? order[tl.y + i] : 0;
    xr[i] = x + (size_t)(a[i] / topk) * K;
  }
  size_t r0 = (size_t)e * 2 * I + 2 * j;
  const uint4* b0 = (const uint4*)(blocks + r0 * nb * 16);
  const uint4* b1 = (const uint4*)(blocks + (r0 + 1) * nb * 16);
  const uint8_t* s0 = scales + r0 * nb;
  const uint8_t* s1 = s0 + nb;
  float acc0[TB], acc1[TB];
#pragma unroll
  for (int i = 0; i < TB; i++) acc0[i] = acc1[i] = 0.f;
  for (int gb = lane; gb < nb; gb += 32) {
    uint4 q0 = ld_stream(b0 + gb), q1 = ld_stream(b1 + gb);
    float f0 = __uint_as_float(((uint32_t)s0[gb]) << 23), f1 = __uint_as_float(((uint32_t)s1[gb]) << 23);
    uint32_t w0[4] = {q0.x, q0.y, q0.z, q0.w}, w1[4] = {q1.x, q1.y, q1.z, q1.w};
    float d0[TB], d1[TB];
#pragma unroll
    for (int i = 0; i < TB; i++) d0[i] = d1[i] = 0.f;
#pragma unroll
    for (int c = 0; c < 4; c++) {
#pragma unroll
      for (int bsh = 0; bsh < 32; bsh += 8) {
        uint32_t by0 = (w0[c] >> bsh) & 0xffu, by1 = (w1[c] >> bsh) & 0xffu;
        float l0 = fp4(by0 & 15u), h0 = fp4(by0 >> 4), l1 = fp4(by1 & 15u), h1 = fp4(by1 >> 4);
        int col = gb * 32 + c * 8 + (bsh >> 2);
#pragma unroll
        for (int i = 0; i < TB; i++) {
          if (i < cnt) {
            float2 xv = *(const float2*)(xr[i] + col);
            d0[i] += l0 * xv.x + h0 * xv.y;
            d1[i] += l1 * xv.x + h1 * xv.y;
          }
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
    if (lane == 0 && i < cnt) {
      g = fminf(g, limit);
      l = fminf(fmaxf(l, -limit), limit);
      float y = g / (1.f + expf(-1.702f * g)) * (l + 1.f);
      act[(size_t)a[i] * I + j] = y;
    }
  }
}

// mlp2: a warp owns output row r, y[a, r] = W2_e[r] · act[a] + b2_e[r].
template <int TB>
DEV void moe_mlp2_body(const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales,
                       const uint16_t* __restrict__ bias, const float* __restrict__ act, const int* __restrict__ order,
                       const int4* __restrict__ tiles, const int* __restrict__ ntiles, float* __restrict__ y, int H,
                       int I) {
  if ((int)blockIdx.y >= *ntiles) return;
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int r = blockIdx.x * (blockDim.x >> 5) + warp;
  if (r >= H) return;
  int4 tl = tiles[blockIdx.y];
  int e = tl.x, cnt = tl.z;
  int nb = I >> 5;
  int a[TB];
  const float* xr[TB];
#pragma unroll
  for (int i = 0; i < TB; i++) {
    a[i] = i < cnt ? order[tl.y + i] : 0;
    xr[i] = act + (size_t)a[i] * I;
  }
  size_t row = (size_t)e * H + r;
  const uint4* b0 = (const uint4*)(blocks + row * nb * 16);
  const uint8_t* s0 = scales + row * nb;
  float acc[TB];
#pragma unroll
  for (int i = 0; i < TB; i++) acc[i] = 0.f;
  for (int gb = lane; gb < nb; gb += 32) {
    uint4 q0 = ld_stream(b0 + gb);
    float f0 = __uint_as_float(((uint32_t)s0[gb]) << 23);
    uint32_t w0[4] = {q0.x, q0.y, q0.z, q0.w};
    float d0[TB];
#pragma unroll
    for (int i = 0; i < TB; i++) d0[i] = 0.f;
#pragma unroll
    for (int c = 0; c < 4; c++) {
#pragma unroll
      for (int bsh = 0; bsh < 32; bsh += 8) {
        uint32_t by0 = (w0[c] >> bsh) & 0xffu;
        float l0 = fp4(by0 & 15u), h0 = fp4(by0 >> 4);
        int col = gb * 32 + c * 8 + (bsh >> 2);
#pragma unroll
        for (int i = 0; i < TB; i++) {
          if (i < cnt) {
            float2 xv = *(const float2*)(xr[i] + col);
            d0[i] += l0 * xv.x + h0 * xv.y;
          }
        }
      }
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

#define MOE_INST(TB)                                                                                          \
  extern "C" __global__ void moe_mlp1_t##TB(const uint8_t* blocks, const uint8_t* scales, const uint16_t* bias, \
                                            const float* x, const int* order, const int4* tiles,                \
                                            const int* ntiles, float* act, int I, int K, int topk, float limit) { \
    moe_mlp1_body<TB>(blocks, scales, bias, x, order, tiles, ntiles, act, I, K, topk, limit);                  \
  }                                                                                                             \
  extern "C" __global__ void moe_mlp2_t##TB(const uint8_t* blocks, const uint8_t* scales, const uint16_t* bias, \
                                            const float* act, const int* order, const int4* tiles,              \
                                            const int* ntiles, float* y, int H, int I) {                        \
    moe_mlp2_body<TB>(blocks, scales, bias, act, order, tiles, ntiles, y, H, I);                               \
  }
MOE_INST(1)
MOE_INST(8)

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
