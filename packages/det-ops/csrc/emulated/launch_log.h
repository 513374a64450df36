// The emulator's record of kernel launches, and the seed of its thread
// interleavings; read and set by the tests through det_ops._C_emulated.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace det_ops::emulated {

// Counts one launch of `kernel`; returns the seed that shuffles its blocks and
// threads (derived from the seed and the number of launches so far).
uint64_t record_launch(const char* kernel);

// Launches per kernel name since the module was loaded.
std::map<std::string, int64_t> launches();

// Restarts the sequence of interleavings: the same seed and the same launches
// give the same interleavings.
void set_seed(uint64_t seed);

}  // namespace det_ops::emulated
