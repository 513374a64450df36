// A minimal parallel_for over an index range for the CPU kernels.
//
// Threads are started per call rather than kept in a pool: it costs tens of
// microseconds, which the grain sizes below amortise, and it stays correct
// after fork() (data-loader workers), where a pool's threads would be gone.
// No OpenMP runtime is linked, so the module never fights torch's own.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace det_ops::cpu {

// Threads the kernels may use; set from Python (det_ops.set_num_threads).
int num_threads();
void set_num_threads(int n);

// Calls fn(begin_i, end_i) on chunks of at most `grain` indices covering
// [begin, end), from up to num_threads() threads pulling chunks in turn (so
// uneven chunks balance). `grain` should hold enough work to outweigh a
// thread start (roughly 50 microseconds); a range of one chunk runs inline.
template <typename F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const F& fn) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = (n + grain - 1) / grain;
  const int64_t threads = std::min<int64_t>(num_threads(), chunks);
  if (threads <= 1) {
    fn(begin, end);
    return;
  }
  std::atomic<int64_t> next{0};
  auto worker = [&]() {
    for (int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) {
      const int64_t b = begin + c * grain;
      fn(b, std::min(end, b + grain));
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
}

// Splits [begin, end) into one contiguous block per thread (no more blocks
// than `min_block` allows). For kernels whose per-thread setup is costly.
template <typename F>
void parallel_blocks(int64_t begin, int64_t end, int64_t min_block, const F& fn) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  const int64_t threads = std::max<int64_t>(
      1, std::min<int64_t>(num_threads(), n / std::max<int64_t>(min_block, 1)));
  parallel_for(begin, end, (n + threads - 1) / threads, fn);
}

}  // namespace det_ops::cpu
