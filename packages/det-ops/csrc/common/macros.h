// Shared by the CPU (.cpp) and CUDA (.cu) kernels: a function marked DET_HD
// compiles for both, so the CPU tests exercise the math the GPU runs.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define DET_HD __host__ __device__ __forceinline__
#else
#define DET_HD inline
#endif

namespace det_ops {

template <typename T>
DET_HD T max_of(T a, T b) { return a > b ? a : b; }

template <typename T>
DET_HD T min_of(T a, T b) { return a < b ? a : b; }

}  // namespace det_ops
