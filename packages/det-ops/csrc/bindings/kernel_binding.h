// def_kernel: binds a CPU launcher and its CUDA twin under one name, from one
// description of their arguments.
//
//   def_kernel<void(Ptr, Ptr, const RoIPoolShape&, Ptr, Ptr)>(
//       cpu, cuda, "roi_pool_forward", DET_OPS_LAUNCHERS(roi_pool_forward),
//       [](auto launch, auto tag, Ptr input, Ptr rois, const RoIPoolShape& s, Ptr output,
//          Ptr argmax) {
//         using T = decltype(tag);
//         launch(as_ptr<const T>(input), as_ptr<const T>(rois), s, as_ptr<T>(output),
//                as_ptr<int64_t>(argmax));
//       });
//
// defines `_C.cpu.roi_pool_forward(dtype, input, rois, shape, output, argmax)` and, built
// with CUDA, `_C.cuda.roi_pool_forward(device, stream, dtype, ...the same)`. The template
// argument lists the Python-side arguments after dtype; the lambda turns them into typed
// pointers for the element type T (float or double, from dtype) and calls `launch`,
// which is cpu::roi_pool_forward or cuda::roi_pool_forward with the stream appended.
// Both functions release the GIL; the CUDA one runs on `device`.
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "common/dispatch.h"

#if defined(DET_OPS_WITH_CUDA)
#include "cuda/launch.cuh"
#endif

namespace det_ops::bindings {

namespace py = pybind11;

// A buffer address passed from Python (numpy or torch) as an integer.
using Ptr = std::uintptr_t;

// The launchers of one kernel: `cpu(args...)` and `cuda(stream, args...)`; cuda is
// nullptr for a CPU-only kernel, cpu for a CUDA-only one. Made by DET_OPS_LAUNCHERS /
// DET_OPS_CPU_LAUNCHER / DET_OPS_CUDA_LAUNCHER.
template <typename CpuLaunch, typename CudaLaunch>
struct Launchers {
  CpuLaunch cpu;
  CudaLaunch cuda;
};
template <typename CpuLaunch, typename CudaLaunch>
Launchers(CpuLaunch, CudaLaunch) -> Launchers<CpuLaunch, CudaLaunch>;

// The launchers cpu::fn and cuda::fn (which takes the stream last), as callables; without
// CUDA, cpu::fn only. Macros, because the name of a function template cannot be passed
// as a value.
#if defined(DET_OPS_WITH_CUDA)
#define DET_OPS_LAUNCHERS(fn)                                                          \
  ::det_ops::bindings::Launchers {                                                     \
    [](auto... args) { ::det_ops::cpu::fn(args...); },                                 \
    [](std::uintptr_t stream, auto... args) { ::det_ops::cuda::fn(args..., stream); }  \
  }
#else
#define DET_OPS_LAUNCHERS(fn) DET_OPS_CPU_LAUNCHER(fn)
#endif

// The launcher cpu::fn alone, for a kernel that has no CUDA twin.
#define DET_OPS_CPU_LAUNCHER(fn)                                                       \
  ::det_ops::bindings::Launchers {                                                     \
    [](auto... args) { ::det_ops::cpu::fn(args...); }, nullptr                         \
  }

// The launcher cuda::fn alone, for a kernel whose CPU twin is the CPU kernel of another
// layout (the Python side then runs that one on the CPU); without CUDA, nothing.
#if defined(DET_OPS_WITH_CUDA)
#define DET_OPS_CUDA_LAUNCHER(fn)                                                      \
  ::det_ops::bindings::Launchers {                                                     \
    nullptr, [](std::uintptr_t stream, auto... args) { ::det_ops::cuda::fn(args..., stream); } \
  }
#else
#define DET_OPS_CUDA_LAUNCHER(fn) ::det_ops::bindings::Launchers { nullptr, nullptr }
#endif

// The work of def_kernel, for a signature void(Args...).
template <typename Signature>
struct KernelDefinition;

template <typename... Args>
struct KernelDefinition<void(Args...)> {
  template <bool kHalf, typename CpuLaunch, typename CudaLaunch, typename Call>
  static void define(py::module_& cpu, py::module_& cuda, const char* name,
                     Launchers<CpuLaunch, CudaLaunch> launchers, Call call) {
    if constexpr (!std::is_same_v<CpuLaunch, std::nullptr_t>) {
      cpu.def(
          name,
          [name, launchers, call](int dtype, Args... args) {
            dispatch_float(dtype, name, [&](auto tag) { call(launchers.cpu, tag, args...); });
          },
          py::call_guard<py::gil_scoped_release>());
    }
#if defined(DET_OPS_WITH_CUDA)
    if constexpr (!std::is_same_v<CudaLaunch, std::nullptr_t>) {
      cuda.def(
          name,
          [name, launchers, call](int device, std::uintptr_t stream, int dtype, Args... args) {
            det_ops::cuda::DeviceGuard guard(device);
            auto launch = [&](auto... typed) { launchers.cuda(stream, typed...); };
            auto typed_call = [&](auto tag) { call(launch, tag, args...); };
            if constexpr (kHalf) {
              dispatch_float_or_half(dtype, name, typed_call);
            } else {
              dispatch_float(dtype, name, typed_call);
            }
          },
          py::call_guard<py::gil_scoped_release>());
    }
#else
    (void)cuda;
#endif
  }
};

// Signature is void(the Python-side arguments after dtype), e.g.
// void(Ptr, Ptr, const RoIPoolShape&, Ptr, Ptr). With kHalf, the CUDA function also takes
// dtype codes 2 (float16) and 3 (bfloat16): the tag is then Float16 or BFloat16
// (common/precision.h) and the CUDA launcher must be instantiated for them.
template <typename Signature, bool kHalf = false, typename CpuLaunch, typename CudaLaunch,
          typename Call>
void def_kernel(py::module_& cpu, py::module_& cuda, const char* name,
                Launchers<CpuLaunch, CudaLaunch> launchers, Call call) {
  KernelDefinition<Signature>::template define<kHalf>(cpu, cuda, name, launchers, call);
}

}  // namespace det_ops::bindings
