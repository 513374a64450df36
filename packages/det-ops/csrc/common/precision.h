// 16-bit floating-point storage (float16, bfloat16) for the CUDA kernels that
// read and write it natively: the kernels load each element into float, compute
// and accumulate in float (Compute<T>), and round once when they store.
// float and double compute as themselves, so code written with Compute<T>
// serves every type; the CPU kernels take float and double only.
#pragma once

#include <cstdint>

namespace det_ops {

// The bits of an IEEE binary16 number and of a bfloat16 number.
struct Float16 {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

template <typename T>
struct ComputeType {
  using type = T;
};
template <>
struct ComputeType<Float16> {
  using type = float;
};
template <>
struct ComputeType<BFloat16> {
  using type = float;
};

// The type a kernel computes elements of type T in.
template <typename T>
using Compute = typename ComputeType<T>::type;

}  // namespace det_ops
