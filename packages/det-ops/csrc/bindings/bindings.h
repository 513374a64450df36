// Each op's binding file adds its functions to the `cpu` and, when built with
// CUDA, `cuda` submodules of det_ops._C. A CUDA function takes the same
// arguments as its CPU twin after two more: the device index and the stream
// (a cudaStream_t as an integer; Python passes torch's current stream).
// Adding an op: write its kernels, a binding file with a bind_<op> function,
// and list it here and in module.cpp.
#pragma once

#include <pybind11/pybind11.h>

#if defined(DET_OPS_WITH_CUDA)
#include "cuda/launch.cuh"
#include "cuda/ops.h"
#endif

namespace det_ops::bindings {

namespace py = pybind11;

// Every kernel call releases the GIL: Python threads may run other work.
using release_gil = py::call_guard<py::gil_scoped_release>;

void bind_runtime(py::module_& m);
void bind_nms(py::module_& cpu, py::module_& cuda);
void bind_bbox_overlaps(py::module_& cpu, py::module_& cuda);
void bind_roi_align(py::module_& cpu, py::module_& cuda);
void bind_roi_pool(py::module_& cpu, py::module_& cuda);
void bind_focal_loss(py::module_& cpu, py::module_& cuda);
void bind_deform_conv(py::module_& cpu, py::module_& cuda);
void bind_deform_roi_pool(py::module_& cpu, py::module_& cuda);

#if defined(DET_OPS_CUDA_EMULATED)
// The `emulator` submodule of det_ops._C_emulated (csrc/emulated/bindings.cpp).
void bind_emulator(py::module_& m);
#endif

}  // namespace det_ops::bindings
