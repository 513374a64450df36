#include "cpu/parallel.h"

#include <cstdlib>

#if defined(__linux__)
#include <sched.h>
#endif

namespace det_ops::cpu {
namespace {

int default_threads() {
  if (const char* env = std::getenv("DET_OPS_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
#if defined(__linux__)
  // The cores this process may run on (a container's limit), not the host's.
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

std::atomic<int> g_threads{default_threads()};

}  // namespace

int num_threads() { return g_threads.load(std::memory_order_relaxed); }

void set_num_threads(int n) { g_threads.store(n > 0 ? n : 1, std::memory_order_relaxed); }

}  // namespace det_ops::cpu
