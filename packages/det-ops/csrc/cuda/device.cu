#include <cuda_runtime.h>

#include "cuda/device.h"

namespace det_ops::cuda {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error of a machine without a driver
    return 0;
  }
  return count;
}

}  // namespace det_ops::cuda
