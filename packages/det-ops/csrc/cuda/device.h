#pragma once

namespace det_ops::cuda {

// CUDA devices this build can use; 0 when there is no driver or no GPU.
int device_count();

}  // namespace det_ops::cuda
