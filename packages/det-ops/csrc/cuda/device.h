#pragma once

#include <cstdint>

namespace det_ops::cuda {

// CUDA devices this build can use; 0 when there is no driver or no GPU.
int device_count();

// The most blocks blocks_for() gives a grid-stride loop (524280 by default).
// Tests lower it so that the loops wrap on small inputs; returns the previous cap.
int64_t max_grid_blocks();
int64_t set_max_grid_blocks(int64_t blocks);

}  // namespace det_ops::cuda
