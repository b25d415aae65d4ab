// The CUDA built-ins gptoss.cu uses, for host C++ (the CPU emulator of the
// kernels: emu.cpp, `make cuda-emu`). Force-included before gptoss.cu with
// -DGPTOSS_EMU. Every CUDA thread is a fiber; the warp and block operations
// (shuffles, __syncwarp, __syncthreads) switch fibers, so one OS thread runs
// a block's threads with CUDA's semantics at those points. Shared memory is
// static storage (blocks run one at a time); cp.async copies are deferred
// to the wait that covers them, so a read before its wait sees old bytes.
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static __attribute__((section("emu_shared")))

struct alignas(16) uint4 { uint32_t x, y, z, w; };
struct alignas(8) uint2 { uint32_t x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct uint3 { unsigned x, y, z; };
struct dim3 { unsigned x, y, z; };
inline uint4 make_uint4(uint32_t x, uint32_t y, uint32_t z, uint32_t w) { return {x, y, z, w}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

using std::max;
using std::min;

// the running fiber's thread index, and the block's coordinates
struct EmuFiber;
extern EmuFiber* emu_cur;
extern uint3 emu_blockIdx;
extern dim3 emu_blockDim, emu_gridDim;
const uint3& emu_tid();
#define threadIdx (emu_tid())
#define blockIdx (emu_blockIdx)
#define blockDim (emu_blockDim)
#define gridDim (emu_gridDim)

void __syncthreads();
[[noreturn]] void emu_fault(const char* why);
// deposits v for the warp, waits for its other live lanes, returns the
// warp's 32 deposits; site names the call (its source line): lanes that
// meet at different warp operations fault
const uint64_t* emu_warp_exchange(uint64_t v, int site);
inline void emu_syncwarp_at(int site, unsigned mask = 0xffffffffu) {
  if (mask != 0xffffffffu) emu_fault("__syncwarp with a partial mask (not emulated)");
  emu_warp_exchange(0, site);
}
#define __syncwarp(...) emu_syncwarp_at(__LINE__, ##__VA_ARGS__)
template <class T>
T emu_shfl(T v, int src, int site) {
  static_assert(sizeof(T) <= 8, "shuffles of at most 8 bytes");
  uint64_t b = 0;
  memcpy(&b, &v, sizeof(T));
  const uint64_t* all = emu_warp_exchange(b, site);
  T r;
  memcpy(&r, &all[src & 31], sizeof(T));
  return r;
}
// (only full warps: gptoss.cu's kernels use no other mask or width)
[[noreturn]] void emu_fault(const char* why);
inline void emu_full(unsigned mask, int width) {
  if (mask != 0xffffffffu || width != 32) emu_fault("a warp operation with a partial mask or width (not emulated)");
}
template <class T>
T emu_shfl_xor_sync_at(int site, unsigned mask, T v, int m, int width = 32) {
  emu_full(mask, width);
  return emu_shfl(v, (int)(threadIdx.x & 31) ^ m, site);
}
template <class T>
T emu_shfl_sync_at(int site, unsigned mask, T v, int src, int width = 32) {
  emu_full(mask, width);
  return emu_shfl(v, src, site);
}
#define __shfl_xor_sync(...) emu_shfl_xor_sync_at(__LINE__, __VA_ARGS__)
#define __shfl_sync(...) emu_shfl_sync_at(__LINE__, __VA_ARGS__)

// Programmatic dependent launch (gptoss.cu's pdl_wait and pdl_launch;
// checked with GPTOSS_EMU_PDL=1, see emu.cpp): a thread of a kernel
// launched with the attribute is "before its wait" until it calls
// emu_pdl_wait, and everything the kernel before it wrote reads as 0xff
// bytes until then.
void emu_pdl_wait();
void emu_pdl_launch();

[[noreturn]] void emu_trap();
#define __trap() emu_trap()
inline void __threadfence() {}

// atomics: fibers switch only at the operations above, so a plain
// read-modify-write is atomic
template <class T>
T atomicAdd(T* p, T v) {
  T o = *p;
  *p = o + v;
  return o;
}

inline float __uint_as_float(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
inline uint32_t __float_as_uint(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
inline float __expf(float x) { return expf(x); }
inline float rsqrtf(float x) { return 1.f / sqrtf(x); }
inline uint32_t __umulhi(uint32_t a, uint32_t b) { return (uint32_t)(((uint64_t)a * b) >> 32); }
template <class T>
T __ldcg(const T* p) {
  return *p;
}
template <class T>
T __ldg(const T* p) {
  return *p;
}
// PRMT's default mode for selectors whose nibbles have bit 3 clear (the
// only ones the kernels use): byte n of the result is byte s[n] of the
// pair y:x (x bytes 0–3, y bytes 4–7)
inline uint32_t __byte_perm(uint32_t x, uint32_t y, uint32_t s) {
  uint64_t v = (uint64_t)y << 32 | x;
  uint32_t r = 0;
  for (int n = 0; n < 4; n++) r |= (uint32_t)((v >> (8 * ((s >> (4 * n)) & 7u))) & 0xffu) << (8 * n);
  return r;
}

// half and bfloat16 as their bits; arithmetic through _Float16 / float
struct __half {
  uint16_t x;
};
struct alignas(4) __half2 {
  __half x, y;
};
// x rounded once to half (to nearest even)
inline __half emu_to_half(double x) {
  _Float16 h = (_Float16)x;
  __half r;
  memcpy(&r, &h, 2);
  return r;
}
inline __half __float2half_rn(float f) { return emu_to_half(f); }
inline float __half2float(__half h) {
  _Float16 v;
  memcpy(&v, &h, 2);
  return (float)v;
}
inline float2 __half22float2(__half2 h) { return {__half2float(h.x), __half2float(h.y)}; }
inline __half2 __halves2half2(__half a, __half b) { return {a, b}; }
inline __half2 __float2half2_rn(float f) { return {__float2half_rn(f), __float2half_rn(f)}; }
inline __half __ushort_as_half(unsigned short u) { return __half{u}; }
// a·b + c rounded once to half (the product is exact in double)
inline __half emu_hfma(__half a, __half b, __half c) {
  return emu_to_half((double)__half2float(a) * (double)__half2float(b) + (double)__half2float(c));
}
inline __half2 __hfma2(__half2 a, __half2 b, __half2 c) { return {emu_hfma(a.x, b.x, c.x), emu_hfma(a.y, b.y, c.y)}; }

struct __nv_bfloat16 {
  uint16_t x;
};
inline float __bfloat162float(__nv_bfloat16 h) { return __uint_as_float((uint32_t)h.x << 16); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return {0x7fc0};
  u += 0x7fffu + ((u >> 16) & 1u);
  return {(uint16_t)(u >> 16)};
}

// shared memory: a 32-bit shared address is an offset from emu_shared_base
// (static __shared__ storage and the dynamic arena lie within 2 GB of it)
extern char emu_dyn_shared[];
extern uintptr_t emu_shared_base;
inline size_t __cvta_generic_to_shared(const void* p) { return (size_t)((uintptr_t)p - emu_shared_base); }
inline void* emu_shared_ptr(uint32_t a) { return (void*)(emu_shared_base + a); }
void emu_cp_async(uint32_t dst, const void* src, int bytes);
void emu_cp_commit();
void emu_cp_wait(int n);

// wmma: each lane holds the whole 16×16 tile (the lanes compute the same
// product; a store writes the same values)
namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  float v[16][16];  // [row][col] of the tile (for matrix_b: [k][n])
};
inline float emu_f(float x) { return x; }
inline float emu_f(__nv_bfloat16 x) { return __bfloat162float(x); }
inline float emu_f(__half x) { return __half2float(x); }
template <int M, int N, int K, class T, class U>
void load_matrix_sync(fragment<matrix_a, M, N, K, T, row_major>& f, const U* p, unsigned ld) {
  for (int r = 0; r < 16; r++)
    for (int c = 0; c < 16; c++) f.v[r][c] = emu_f(p[(size_t)r * ld + c]);
}
template <int M, int N, int K, class T, class U>
void load_matrix_sync(fragment<matrix_b, M, N, K, T, col_major>& f, const U* p, unsigned ld) {
  for (int n = 0; n < 16; n++)
    for (int k = 0; k < 16; k++) f.v[k][n] = emu_f(p[(size_t)n * ld + k]);
}
template <int M, int N, int K, class T>
void fill_fragment(fragment<accumulator, M, N, K, T>& f, float x) {
  for (auto& row : f.v)
    for (float& e : row) e = x;
}
template <int M, int N, int K, class TA, class TB, class LA, class LB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
              const fragment<matrix_b, M, N, K, TB, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
  float out[16][16];
  for (int m = 0; m < 16; m++)
    for (int n = 0; n < 16; n++) {
      float s = c.v[m][n];
      for (int k = 0; k < 16; k++) s += a.v[m][k] * b.v[k][n];
      out[m][n] = s;
    }
  memcpy(d.v, out, sizeof out);
}
template <int M, int N, int K>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ld, layout_t l) {
  for (int r = 0; r < 16; r++)
    for (int c = 0; c < 16; c++) {
      if (l == mem_row_major)
        p[(size_t)r * ld + c] = f.v[r][c];
      else
        p[(size_t)c * ld + r] = f.v[r][c];
    }
}
}  // namespace wmma
}  // namespace nvcuda
