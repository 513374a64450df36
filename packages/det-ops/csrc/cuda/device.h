#pragma once

#include <cstdint>

namespace det_ops::cuda {

// CUDA devices this build can use; 0 when there is no driver or no GPU.
int device_count();

// The most blocks blocks_for() gives a grid-stride loop (524280 by default).
// Tests lower it so that the loops wrap on small inputs; returns the previous cap.
int64_t max_grid_blocks();
int64_t set_max_grid_blocks(int64_t blocks);

// The most elements (of the largest tensor a kernel indexes, and of its loop) for which
// a kernel indexes in 32 bits (2**30 by default: a grid-stride step from below 2**30
// stays below 2**31). Tests set 0 to run the 64-bit kernels on small inputs; returns
// the previous limit.
int64_t max_index32_elements();
int64_t set_max_index32_elements(int64_t elements);

}  // namespace det_ops::cuda
