#include "emulated/launch_log.h"

#include <mutex>

namespace det_ops::emulated {
namespace {

// Launches may come from several OS threads (the bindings release the GIL).
std::mutex mutex;
std::map<std::string, int64_t> counts;
uint64_t seed = 0x5eed;
uint64_t launch_number = 0;

}  // namespace

uint64_t record_launch(const char* kernel) {
  std::lock_guard<std::mutex> lock(mutex);
  ++counts[kernel];
  // splitmix64 of the launch number: well-spread seeds for consecutive launches.
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * ++launch_number;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::map<std::string, int64_t> launches() {
  std::lock_guard<std::mutex> lock(mutex);
  return counts;
}

void set_seed(uint64_t value) {
  std::lock_guard<std::mutex> lock(mutex);
  seed = value;
  launch_number = 0;
}

}  // namespace det_ops::emulated
