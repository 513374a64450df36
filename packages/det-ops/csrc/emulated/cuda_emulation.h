// The CUDA execution model on the CPU, for tests only.
//
// With DET_OPS_CUDA=EMULATE, CMake compiles csrc/cuda/*.cu with the host C++
// compiler into det_ops._C_emulated; cuda/launch.cuh then includes this header
// instead of <cuda_runtime.h>, so the kernels run on the CPU, unchanged, and
// the tests compare them with the CPU kernels. Never part of a wheel.
//
// What it provides:
//  * qualifiers (__global__, __device__, ...) as plain C++, and __shared__ as
//    static storage (see below);
//  * dim3 and the built-in variables threadIdx, blockIdx, blockDim, gridDim;
//  * run_grid(), the launcher behind cuda::launch(): the blocks of a grid run
//    one after another, in a shuffled order; the threads of a block run as
//    cooperative user-space threads on one OS thread and meet at
//    __syncthreads(). Each launch shuffles which thread runs first, at the
//    start and after every barrier (seeded, reproducible), so a missing
//    barrier or a read of shared memory before it was written gives a wrong
//    result here instead of only on some GPU;
//  * atomicAdd and friends, min/max and the bit intrinsics the kernels use;
//  * the runtime calls the launchers make, as host equivalents.
//
// Shared memory: `__shared__` is `static thread_local`. The blocks of a grid
// run one after another on one OS thread, so one copy of a kernel's shared
// variables serves each block in turn; like real shared memory it is not
// cleared between blocks (a block starts with what the previous block left),
// and thread_local keeps launches made from different OS threads apart.
//
// A thread runs without interruption until it reaches __syncthreads() or
// returns, so atomics are plain read-modify-writes, and a block whose threads
// do not all reach the same number of barriers (a __syncthreads() inside
// divergent code, which CUDA leaves undefined) fails its launch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>

// ---- Qualifiers --------------------------------------------------------------

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local

// ---- Launch geometry and built-in variables -----------------------------------

struct uint3 {
  unsigned int x, y, z;
};

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1)
      : x(x_), y(y_), z(z_) {}
};

// Set by run_grid before each emulated thread runs or resumes.
inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

// ---- Runtime API (the calls the launchers make) ---------------------------------

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
  cudaErrorLaunchFailure = 719,
};

struct CUstream_st;  // never defined: a stream is only a handle here
using cudaStream_t = CUstream_st*;

// The error of the last failed call on this OS thread, cleared by reading it.
cudaError_t cudaGetLastError();
// For a launch failure, the emulator's description of the last one.
const char* cudaGetErrorString(cudaError_t error);
// One emulated device, index 0.
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);

// Streams are ignored: every emulated call completes before it returns.
inline cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t) {
  std::memset(pointer, value, bytes);
  return cudaSuccess;
}

// ---- Block synchronisation and atomics ----------------------------------------

namespace det_ops::emulated {
// Suspends the calling emulated thread until every thread of its block arrives.
void barrier();
}  // namespace det_ops::emulated

inline void __syncthreads() { det_ops::emulated::barrier(); }

// Emulated threads switch only at __syncthreads(), so these cannot be interrupted.
template <typename T>
T atomicAdd(T* address, T value) {
  const T old = *address;
  *address = old + value;
  return old;
}

template <typename T>
T atomicMax(T* address, T value) {
  const T old = *address;
  *address = value > old ? value : old;
  return old;
}

template <typename T>
T atomicMin(T* address, T value) {
  const T old = *address;
  *address = value < old ? value : old;
  return old;
}

template <typename T>
T atomicOr(T* address, T value) {
  const T old = *address;
  *address = old | value;
  return old;
}

template <typename T>
T atomicCAS(T* address, T compare, T value) {
  const T old = *address;
  if (old == compare) *address = value;
  return old;
}

// ---- Intrinsics -----------------------------------------------------------------

// CUDA declares min and max for each arithmetic type (no mixed-type template).
#define DET_OPS_EMULATED_MIN_MAX(T)                  \
  inline T min(T a, T b) { return b < a ? b : a; } \
  inline T max(T a, T b) { return a < b ? b : a; }
DET_OPS_EMULATED_MIN_MAX(int)
DET_OPS_EMULATED_MIN_MAX(unsigned int)
DET_OPS_EMULATED_MIN_MAX(long)
DET_OPS_EMULATED_MIN_MAX(unsigned long)
DET_OPS_EMULATED_MIN_MAX(long long)
DET_OPS_EMULATED_MIN_MAX(unsigned long long)
DET_OPS_EMULATED_MIN_MAX(float)
DET_OPS_EMULATED_MIN_MAX(double)
#undef DET_OPS_EMULATED_MIN_MAX

// 1 + the position of the lowest set bit, 0 for none.
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
// Leading zero bits, 64 for none.
inline int __clzll(long long x) {
  return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x));
}

// ---- Running a grid -------------------------------------------------------------

namespace det_ops::emulated {

// Runs `thread` once for every thread of every block of a grid<<<grid, block>>>,
// with the built-in variables set; records `kernel` in the launch log. A bad
// configuration or a block that diverges at a barrier is reported as CUDA
// reports a launch error: through cudaGetLastError().
void run_grid(const char* kernel, dim3 grid, dim3 block, const std::function<void()>& thread);

}  // namespace det_ops::emulated
