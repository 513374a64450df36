// Kernels with known barrier faults, for tests/test_cuda_emulation.py to show
// that the emulator exposes them. They live here, not in csrc/cuda: they are
// never compiled for a GPU, and the list of kernels the tests must launch is
// the list in csrc/cuda.
#include "emulated/selftest.h"

#include "cuda/launch.cuh"

namespace det_ops::emulated {
namespace {

constexpr int kThreads = 64;

// out[i] = in[i + 1] within each block of 64, through shared memory. Without
// `sync` the barrier between the writes and the reads is missing.
__global__ void rotate_kernel(const int64_t* in, int64_t* out, bool sync) {
  __shared__ int64_t values[kThreads];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * kThreads;
  values[threadIdx.x] = in[base + threadIdx.x];
  if (sync) __syncthreads();
  out[base + threadIdx.x] = values[(threadIdx.x + 1) % kThreads];
}

// Thread 0 returns before the barrier that the other threads wait at.
__global__ void divergent_barrier_kernel(int64_t* out) {
  if (threadIdx.x == 0) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

}  // namespace

void rotate_through_shared_memory(const int64_t* in, int64_t* out, int64_t blocks, bool sync) {
  cuda::launch("rotate_kernel", rotate_kernel, static_cast<unsigned int>(blocks), kThreads, 0, in,
               out, sync);
}

void divergent_barrier(int64_t* out) {
  cuda::launch("divergent_barrier_kernel", divergent_barrier_kernel, 1, kThreads, 0, out);
}

}  // namespace det_ops::emulated
