// Each op's binding file adds its shape class (if it has one) to det_ops._C
// itself, and its functions to the `cpu` and, when built with CUDA, `cuda`
// submodules. A CUDA function takes the same arguments as its CPU twin after
// two more: the device index and the stream (a cudaStream_t as an integer;
// Python passes torch's current stream).
// Adding an op: write its kernels and a binding file bindings/<op>.cpp that
// defines bind_<op> and registers it with DET_OPS_BIND_OP(<op>).
#pragma once

#include <pybind11/pybind11.h>

#include "bindings/kernel_binding.h"
#include "bindings/shape_class.h"
#include "common/dispatch.h"

#if defined(DET_OPS_WITH_CUDA)
#include "cuda/launch.cuh"
#endif

namespace det_ops::bindings {

namespace py = pybind11;

// Every kernel call releases the GIL: Python threads may run other work.
using release_gil = py::call_guard<py::gil_scoped_release>;

void bind_runtime(py::module_& m);

// An op's binding function: m is det_ops._C (or _C_emulated), for the op's shape
// class; cpu and cuda are its submodules, for its kernels.
using BindOp = void (*)(py::module_& m, py::module_& cpu, py::module_& cuda);

// Adds bind to the functions module.cpp calls, in the order of their names; use it
// through DET_OPS_BIND_OP. Returns true.
bool add_op(const char* name, BindOp bind);

// The one line that registers an op: DET_OPS_BIND_OP(roi_align) after the definition
// of bind_roi_align in bindings/roi_align.cpp.
#define DET_OPS_BIND_OP(op) \
  [[maybe_unused]] static const bool bind_##op##_added = add_op(#op, &bind_##op)

#if defined(DET_OPS_CUDA_EMULATED)
// The `emulator` submodule of det_ops._C_emulated (csrc/emulated/bindings.cpp).
void bind_emulator(py::module_& m);
#endif

}  // namespace det_ops::bindings
