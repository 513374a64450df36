#pragma once

#include <cstdint>

namespace det_ops::emulated {

// out[b * 64 + i] = in[b * 64 + (i + 1) % 64] for `blocks` blocks of 64 threads,
// through shared memory; without `sync`, with no barrier between write and read.
void rotate_through_shared_memory(const int64_t* in, int64_t* out, int64_t blocks, bool sync);

// A block of 64 threads of which one skips the barrier: the launch raises.
void divergent_barrier(int64_t* out);

}  // namespace det_ops::emulated
