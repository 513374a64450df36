// Loads and stores of the 16-bit storage types (common/precision.h): float16
// and bfloat16 elements convert to and from float, rounding to nearest even;
// float and double pass through. The emulated build converts on the host.
#pragma once

#include <cstring>

#include "common/precision.h"
#include "cuda/launch.cuh"

#if !defined(DET_OPS_CUDA_EMULATED)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace det_ops::cuda {

template <typename T>
__device__ __forceinline__ T load(T v) {
  return v;
}

template <typename T>
__device__ __forceinline__ void store(T* p, T v) {
  *p = v;
}

#if defined(DET_OPS_CUDA_EMULATED)
__device__ inline float load(Float16 v) {
  _Float16 h;
  std::memcpy(&h, &v.bits, sizeof(h));
  return static_cast<float>(h);
}

__device__ inline void store(Float16* p, float v) {
  const _Float16 h = static_cast<_Float16>(v);
  std::memcpy(&p->bits, &h, sizeof(h));
}

__device__ inline float load(BFloat16 v) {
  const uint32_t u = static_cast<uint32_t>(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

__device__ inline void store(BFloat16* p, float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof(u));
  if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN stays a (quiet) NaN
    p->bits = static_cast<uint16_t>((u >> 16) | 0x40u);
    return;
  }
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  p->bits = static_cast<uint16_t>(u >> 16);
}
#else
__device__ __forceinline__ float load(Float16 v) { return __half2float(__ushort_as_half(v.bits)); }

__device__ __forceinline__ void store(Float16* p, float v) {
  p->bits = __half_as_ushort(__float2half_rn(v));
}

__device__ __forceinline__ float load(BFloat16 v) {
  return __bfloat162float(__ushort_as_bfloat16(v.bits));
}

__device__ __forceinline__ void store(BFloat16* p, float v) {
  p->bits = __bfloat16_as_ushort(__float2bfloat16_rn(v));
}
#endif

}  // namespace det_ops::cuda
