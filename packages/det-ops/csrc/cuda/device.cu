#include <atomic>

#include "cuda/device.h"
#include "cuda/launch.cuh"

namespace det_ops::cuda {
namespace {

std::atomic<int64_t> grid_cap{65535 * 8};
std::atomic<int64_t> index32_limit{int64_t(1) << 30};

}  // namespace

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error of a machine without a driver
    return 0;
  }
  return count;
}

int64_t max_grid_blocks() { return grid_cap.load(); }

int64_t set_max_grid_blocks(int64_t blocks) { return grid_cap.exchange(blocks); }

int64_t max_index32_elements() { return index32_limit.load(); }

int64_t set_max_index32_elements(int64_t elements) { return index32_limit.exchange(elements); }

}  // namespace det_ops::cuda
