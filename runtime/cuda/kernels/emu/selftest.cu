// Kernels that test the emulator itself (selftest_main.inc runs them):
// what it must compute, and the faults and races it must show.

extern "C" __global__ void st_shfl(int* out) {
  int t = threadIdx.x;
  int a = __shfl_xor_sync(0xffffffffu, t, 1);
  int b = __shfl_sync(0xffffffffu, t, 3);
  out[blockIdx.x * blockDim.x + t] = a + 100 * b;
}

// the block's sum through a warp reduction and shared memory
extern "C" __global__ void st_blocksum(const float* in, float* out) {
  __shared__ float red[32];
  float v = in[blockIdx.x * blockDim.x + threadIdx.x];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float s = 0.f;
    for (unsigned w = 0; w < blockDim.x / 32; w++) s += red[w];
    out[blockIdx.x] = s;
  }
}

// warp 1 reads what warp 0 wrote, with or without a barrier between
extern "C" __global__ void st_race(float* out, int barrier) {
  __shared__ float s[1];
  if (threadIdx.x == 0) s[0] = 1.f;
  if (barrier) __syncthreads();
  if (threadIdx.x == 32) out[0] = s[0];
}

// half of each warp at a shuffle, the other half at __syncthreads
extern "C" __global__ void st_diverge(int* out) {
  if ((threadIdx.x & 31) < 16)
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (int)threadIdx.x, 1);
  else
    __syncthreads();
}

// the lanes of a warp at two different shuffles
extern "C" __global__ void st_sites(int* out) {
  int t = threadIdx.x;
  if (t < 16)
    out[t] = __shfl_xor_sync(0xffffffffu, t, 1);
  else
    out[t] = __shfl_xor_sync(0xffffffffu, t, 2);
}

extern "C" __global__ void st_mask(int* out) { out[threadIdx.x] = __shfl_xor_sync(0xffffu, (int)threadIdx.x, 1); }

// shared word 0 = 1, then a cp.async of src's word into it: read before
// and after the wait
extern "C" __global__ void st_cpasync(const uint32_t* src, uint32_t* out) {
  uint32_t* sm = (uint32_t*)emu_dyn_shared;
  if (threadIdx.x == 0) {
    sm[0] = 1;
    emu_cp_async((uint32_t)__cvta_generic_to_shared(sm), src, 4);
    emu_cp_commit();
    out[0] = sm[0];
    emu_cp_wait(0);
    out[1] = sm[0];
  }
}

// a read n floats into a buffer of n
extern "C" __global__ void st_oob(const float* in, float* out, int n) {
  if (threadIdx.x == 0) out[0] = in[n];
}

extern "C" __global__ void st_add(const int* tok, int* acc) {
  if (threadIdx.x == 0) acc[0] += tok[0];
}

// what the previous block of this launch left in shared memory
extern "C" __global__ void st_stale(float* out) {
  __shared__ float s[1];
  if (blockIdx.x == 0 && threadIdx.x == 0) s[0] = 5.f;
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

// programmatic dependent launch: st_produce writes out[i] = i + 1 (a block
// of n threads); st_consume copies in[i] to out[i] of each of its blocks,
// reading before its wait or after it; st_mid writes only its own buffer
// and calls launch_dependents before or after its wait
extern "C" __global__ void st_produce(float* out) { out[threadIdx.x] = (float)(threadIdx.x + 1); }
extern "C" __global__ void st_consume(const float* in, float* out, int before) {
  float v = 0.f;
  if (before) v = in[threadIdx.x];
  emu_pdl_wait();
  if (!before) v = in[threadIdx.x];
  emu_pdl_launch();
  out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}
extern "C" __global__ void st_mid(float* own, int early) {
  if (early) emu_pdl_launch();
  emu_pdl_wait();
  if (!early) emu_pdl_launch();
  own[threadIdx.x] = 2.f;
}
// thread 0 waits at a barrier the others reach only after their wait
extern "C" __global__ void st_consume_bar(const float* in, float* out) {
  float v = 0.f;
  if (threadIdx.x == 0) {
    __syncthreads();
    emu_pdl_wait();
    v = in[0];
  } else {
    emu_pdl_wait();
    __syncthreads();
    v = in[threadIdx.x];
  }
  out[threadIdx.x] = v;
}
// a write before the wait, by block 0 only
extern "C" __global__ void st_write_early(float* out) {
  if (blockIdx.x == 0) out[threadIdx.x] = 1.f;
  emu_pdl_wait();
}
// a 16-byte load 4 bytes past a 16-byte boundary (a GPU faults on it)
extern "C" __global__ void st_misaligned(const float* in, float* out, int off) {
  uint4 v = *(const uint4*)(in + off);
  out[threadIdx.x] = __uint_as_float(v.x);
}
// an int product past 2^31 (an index that wraps on a GPU)
extern "C" __global__ void st_overflow(int* out, int a) { out[threadIdx.x] = a * a + (int)threadIdx.x; }
