// Host-side helpers shared by the binding files: raw pointers passed from
// Python as integers, and dispatch on the floating dtype code.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/precision.h"

namespace det_ops {

// Python passes the address of a buffer it allocated (numpy or torch) as an int.
template <typename T>
T* as_ptr(std::uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

// dtype codes used across the Python boundary: 0 float32, 1 float64 (and, for the
// CUDA kernels bound with half support, 2 float16, 3 bfloat16).
template <typename F>
void dispatch_float(int dtype, const char* op, const F& fn) {
  switch (dtype) {
    case 0: fn(float{}); break;
    case 1: fn(double{}); break;
    default:
      throw std::invalid_argument(std::string(op) + ": unsupported dtype code " +
                                  std::to_string(dtype) + " (expected float32 or float64)");
  }
}

// The same with codes 2 (float16) and 3 (bfloat16), for the CUDA kernels that read
// and write 16-bit maps natively (fn then gets Float16 or BFloat16).
template <typename F>
void dispatch_float_or_half(int dtype, const char* op, const F& fn) {
  switch (dtype) {
    case 2: fn(Float16{}); break;
    case 3: fn(BFloat16{}); break;
    default: dispatch_float(dtype, op, fn);
  }
}

}  // namespace det_ops
