// Launch helpers shared by the CUDA kernels. Every kernel runs on the stream
// and device that Python passes in (torch's current stream), and reports
// launch errors as exceptions instead of leaving them for a later call.
//
// The tests' emulated build (DET_OPS_CUDA=EMULATE) compiles the same .cu files
// with the host compiler against emulated/cuda_emulation.h, which runs the
// kernels on the CPU; launch() is the one place where the two builds differ.
#pragma once

#if defined(DET_OPS_CUDA_EMULATED)
#include "emulated/cuda_emulation.h"
#else
#include <cuda_runtime.h>
#endif

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "cuda/device.h"

namespace det_ops::cuda {

constexpr int kThreads = 256;

// A grid of `blocks` blocks, capped at max_grid_blocks() (the kernel's blocks
// then loop over several of its items).
inline unsigned int grid_blocks(int64_t blocks) {
  const int64_t cap = max_grid_blocks();
  return static_cast<unsigned int>(blocks < cap ? (blocks > 0 ? blocks : 1) : cap);
}

// Blocks for a grid-stride loop over n items, capped at max_grid_blocks()
// (each thread then loops over several items).
inline unsigned int blocks_for(int64_t n) { return grid_blocks((n + kThreads - 1) / kThreads); }

// Calls fn(I{}) with the index type of a kernel over tensors of these element counts:
// int32_t where each is at most max_index32_elements(), else int64_t. A launcher
// instantiates its kernels for both and names both with the kernel's one name.
template <typename F>
void with_index_type(std::initializer_list<int64_t> elements, const F& fn) {
  for (const int64_t n : elements) {
    if (n > max_index32_elements()) {
      fn(int64_t{});
      return;
    }
  }
  fn(int32_t{});
}

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("det_ops CUDA ") + what + ": " +
                             cudaGetErrorString(status));
  }
}

// Raises the error of the last launch, if any.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

inline cudaStream_t as_stream(std::uintptr_t stream) {
  return reinterpret_cast<cudaStream_t>(stream);
}

// Makes `device` current for the scope, restoring the previous one after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (device != previous_) check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// Runs kernel<<<grid, block, 0, stream>>>(args...) and raises its launch
// error, naming the kernel. Every launch goes through here, so that kernel
// bodies are the same in the CUDA and the emulated builds. `name` is the
// kernel's function name: the emulated build logs it, and a test checks that
// every kernel in csrc/cuda was launched.
#if defined(__CUDACC__) || defined(DET_OPS_CUDA_EMULATED)  // the binding files never launch
template <typename... Params, typename... Args>
void launch(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block,
            std::uintptr_t stream, const Args&... args) {
#if defined(DET_OPS_CUDA_EMULATED)
  (void)stream;
  emulated::run_grid(name, grid, block, [&] { kernel(args...); });
#else
  kernel<<<grid, block, 0, as_stream(stream)>>>(args...);
#endif
  check_launch(name);
}
#endif

}  // namespace det_ops::cuda

// Grid-stride loop over [0, n).
#define DET_CUDA_LOOP(i, n)                                                        \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

// The same loop with an index of type I (see with_index_type).
#define DET_CUDA_INDEX_LOOP(I, i, n)                                                      \
  for (I i = static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) +                    \
             static_cast<I>(threadIdx.x);                                                 \
       i < (n); i += static_cast<I>(blockDim.x) * static_cast<I>(gridDim.x))
