// The runner behind cuda_emulation.h: blocks one after another, the threads of
// a block as cooperative user-space threads (ucontext) that meet at barriers.
//
// A worker is a context with its own stack. A worker runs emulated threads one
// after another until one of them waits at __syncthreads(); that thread keeps
// the worker (its stack holds the thread's frames) and another worker starts
// the next thread. A kernel without barriers thus runs a whole block on one
// worker, and a block of n threads that all wait at a barrier uses n workers.
// Workers are kept per OS thread and reused by later blocks and launches.
#include "emulated/cuda_emulation.h"

#include <ucontext.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "emulated/launch_log.h"

namespace det_ops::emulated {
namespace {

// Kernel frames are small; this leaves room for the math library and -O0 builds.
constexpr size_t kStackBytes = 256 * 1024;

struct Worker {
  ucontext_t context;
  std::unique_ptr<char[]> stack;
};

// Runs the blocks of the grids launched from one OS thread.
class BlockRunner {
 public:
  // Runs every thread of one block. Returns false if some threads returned
  // while others waited at a barrier (the block is then abandoned).
  bool run(const std::function<void()>& thread, dim3 block, std::mt19937_64& random);

  // Called by an emulated thread at __syncthreads().
  void wait_at_barrier();

  bool running() const { return thread_ != nullptr; }

 private:
  static void worker_main();
  Worker* idle_worker();
  void switch_to(Worker* worker);
  void enter(unsigned int thread);
  void restart(Worker* worker);

  const std::function<void()>* thread_ = nullptr;  // the kernel, while a block runs
  dim3 block_;
  ucontext_t scheduler_;
  Worker* current_ = nullptr;  // the worker running now
  unsigned int current_thread_ = 0;
  std::vector<unsigned int> unstarted_;                    // next to start at the back
  std::vector<std::pair<unsigned int, Worker*>> waiting_;  // at the barrier, with their worker
  unsigned int returned_ = 0;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<Worker*> idle_;
};

thread_local BlockRunner runner;

// Sets threadIdx for the linear thread index `thread` of the block.
void BlockRunner::enter(unsigned int thread) {
  current_thread_ = thread;
  threadIdx = {thread % block_.x, (thread / block_.x) % block_.y, thread / (block_.x * block_.y)};
}

void BlockRunner::restart(Worker* worker) {
  getcontext(&worker->context);
  worker->context.uc_stack.ss_sp = worker->stack.get();
  worker->context.uc_stack.ss_size = kStackBytes;
  worker->context.uc_link = nullptr;  // worker_main never returns
  makecontext(&worker->context, &BlockRunner::worker_main, 0);
}

Worker* BlockRunner::idle_worker() {
  if (!idle_.empty()) {
    Worker* worker = idle_.back();
    idle_.pop_back();
    return worker;
  }
  workers_.push_back(std::make_unique<Worker>());
  Worker* worker = workers_.back().get();
  worker->stack.reset(new char[kStackBytes]);
  restart(worker);
  return worker;
}

void BlockRunner::switch_to(Worker* worker) {
  current_ = worker;
  swapcontext(&scheduler_, &worker->context);
}

void BlockRunner::worker_main() {
  BlockRunner& self = runner;
  for (;;) {
    while (!self.unstarted_.empty()) {
      self.enter(self.unstarted_.back());
      self.unstarted_.pop_back();
      (*self.thread_)();
      ++self.returned_;
    }
    Worker* me = self.current_;
    self.idle_.push_back(me);
    swapcontext(&me->context, &self.scheduler_);
  }
}

void BlockRunner::wait_at_barrier() {
  Worker* me = current_;
  waiting_.emplace_back(current_thread_, me);
  swapcontext(&me->context, &scheduler_);
  // Resumed by run(), which has set threadIdx back to this thread.
}

bool BlockRunner::run(const std::function<void()>& thread, dim3 block, std::mt19937_64& random) {
  thread_ = &thread;
  block_ = block;
  const unsigned int threads = block.x * block.y * block.z;
  unstarted_.resize(threads);
  for (unsigned int t = 0; t < threads; ++t) unstarted_[t] = t;
  std::shuffle(unstarted_.begin(), unstarted_.end(), random);
  waiting_.clear();
  returned_ = 0;
  // Start every thread; each runs until it returns or waits at the barrier.
  while (!unstarted_.empty()) switch_to(idle_worker());
  // All threads have returned or wait: release the waiting ones, in a new order.
  bool uniform = true;
  while (!waiting_.empty()) {
    if (returned_ > 0) {
      uniform = false;
      for (auto& [t, worker] : waiting_) {
        restart(worker);  // drop the abandoned thread's frames
        idle_.push_back(worker);
      }
      waiting_.clear();
      break;
    }
    std::vector<std::pair<unsigned int, Worker*>> released;
    released.swap(waiting_);
    std::shuffle(released.begin(), released.end(), random);
    for (auto& [t, worker] : released) {
      enter(t);
      switch_to(worker);
    }
  }
  thread_ = nullptr;
  return uniform;
}

// Launch failures, as cudaGetLastError() reports them.
thread_local cudaError_t last_error = cudaSuccess;
thread_local std::string last_message;

void fail(cudaError_t error, std::string message) {
  last_error = error;
  last_message = std::move(message);
}

bool valid_configuration(dim3 grid, dim3 block) {
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  return threads >= 1 && threads <= 1024 && block.z <= 64 && grid.x >= 1 &&
         grid.x <= 0x7fffffffu && grid.y >= 1 && grid.y <= 65535 && grid.z >= 1 &&
         grid.z <= 65535;
}

}  // namespace

void barrier() {
  // Outside a block (not reachable from a kernel) there is nothing to wait for.
  if (runner.running()) runner.wait_at_barrier();
}

void run_grid(const char* kernel, dim3 grid, dim3 block, const std::function<void()>& thread) {
  if (!valid_configuration(grid, block)) {
    fail(cudaErrorInvalidConfiguration,
         std::string("invalid configuration argument (grid ") + std::to_string(grid.x) + "x" +
             std::to_string(grid.y) + "x" + std::to_string(grid.z) + ", block " +
             std::to_string(block.x) + "x" + std::to_string(block.y) + "x" +
             std::to_string(block.z) + ")");
    return;
  }
  std::mt19937_64 random(record_launch(kernel));
  gridDim = grid;
  blockDim = block;
  std::vector<uint64_t> order(uint64_t{grid.x} * grid.y * grid.z);
  for (uint64_t b = 0; b < order.size(); ++b) order[b] = b;
  std::shuffle(order.begin(), order.end(), random);
  for (const uint64_t b : order) {
    blockIdx = {static_cast<unsigned int>(b % grid.x),
                static_cast<unsigned int>((b / grid.x) % grid.y),
                static_cast<unsigned int>(b / (uint64_t{grid.x} * grid.y))};
    if (!runner.run(thread, block, random)) {
      fail(cudaErrorLaunchFailure,
           std::string(kernel) + ": __syncthreads() not reached by every thread of block (" +
               std::to_string(blockIdx.x) + ", " + std::to_string(blockIdx.y) + ", " +
               std::to_string(blockIdx.z) + ")");
      return;
    }
  }
}

}  // namespace det_ops::emulated

cudaError_t cudaGetLastError() {
  const cudaError_t error = det_ops::emulated::last_error;
  det_ops::emulated::last_error = cudaSuccess;
  return error;
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    default: return det_ops::emulated::last_message.c_str();
  }
}

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (device == 0) return cudaSuccess;
  det_ops::emulated::fail(cudaErrorInvalidDevice, "invalid device ordinal");
  return cudaErrorInvalidDevice;
}
