// Host-side helpers shared by the binding files: raw pointers passed from
// Python as integers, and dispatch on the floating dtype code.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace det_ops {

// Python passes the address of a buffer it allocated (numpy or torch) as an int.
template <typename T>
T* as_ptr(std::uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

// dtype codes used across the Python boundary: 0 float32, 1 float64.
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

}  // namespace det_ops
