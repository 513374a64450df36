// Deformable convolution's sampling on the CPU. The bilinear taps of a
// (image, offset group, kernel tap, output position) serve every channel of
// the offset group, so each kernel computes them once into a small table and
// then runs over the channels with contiguous reads or writes of the columns.
//
//  * im2col and col2im_coord: tasks are (image, group, tap, block of output
//    positions); each writes its own slice of the columns / offset gradient.
//  * col2im scatters into the input gradient, so its threads own whole
//    (image, channel) planes and share a per-image table of the taps.
#include "cpu/deform_conv.h"

#include <algorithm>
#include <vector>

#include "common/bilinear.h"
#include "cpu/parallel.h"

namespace det_ops::cpu {
namespace {

// Output positions per task: the tap table of a block stays in L1.
constexpr int64_t kBlock = 256;

// The four neighbours of one sample, with the mask folded into the weights.
// Unused neighbours have weight 0 and offset 0.
template <typename T>
struct SampleTaps {
  int32_t offset[4];
  T weight[4];
};

// As SampleTaps, unmasked, with the weights' derivatives along y and x.
template <typename T>
struct GradTaps {
  int32_t offset[4];
  T weight[4];
  T dweight_dy[4];
  T dweight_dx[4];
};

template <typename T>
BilinearTaps<T> taps_at(const DeformConvGeometry& s, const T* offset, int64_t b, int64_t g,
                        int64_t k, int64_t p) {
  T y, x;
  s.sample_point(offset, b, g, k, p, y, x);
  BilinearTaps<T> t;
  zero_padded_bilinear(s.height, s.width, y, x, t);
  return t;
}

// Sample taps of positions [p_begin, p_end) for (b, g, k).
template <typename T>
void sample_taps(const T* offset, const T* mask, const DeformConvGeometry& s, int64_t b,
                 int64_t g, int64_t k, int64_t p_begin, int64_t p_end, SampleTaps<T>* out) {
  const T* m = mask != nullptr ? mask + s.mask_plane(b, g, k) : nullptr;
  for (int64_t p = p_begin; p < p_end; ++p) {
    const BilinearTaps<T> t = taps_at(s, offset, b, g, k, p);
    const T scale = m != nullptr ? m[p] : T(1);
    SampleTaps<T>& o = out[p - p_begin];
    for (int i = 0; i < 4; ++i) {
      o.offset[i] = static_cast<int32_t>(t.offset[i]);
      o.weight[i] = t.weight[i] * scale;
    }
  }
}

// Splits (image, group, tap, position block) into task indices.
struct BlockTasks {
  int64_t groups, taps, blocks, positions;

  int64_t count(int64_t batch) const { return batch * groups * taps * blocks; }
  void decode(int64_t task, int64_t& b, int64_t& g, int64_t& k, int64_t& p_begin,
              int64_t& p_end) const {
    const int64_t block = task % blocks;
    task /= blocks;
    k = task % taps;
    task /= taps;
    g = task % groups;
    b = task / groups;
    p_begin = block * kBlock;
    p_end = std::min(positions, p_begin + kBlock);
  }
};

BlockTasks block_tasks(const DeformConvGeometry& s) {
  return {s.offset_groups, s.taps(), (s.positions() + kBlock - 1) / kBlock, s.positions()};
}

}  // namespace

template <typename T>
void deform_im2col(const T* input, const T* offset, const T* mask, const DeformConvGeometry& s,
                   T* columns) {
  const int64_t plane = s.height * s.width;
  const int64_t positions = s.positions(), taps = s.taps();
  const int64_t group_channels = s.channels_per_group();
  if (plane == 0) {  // an empty map reads as zeros everywhere
    std::fill(columns, columns + s.batch * s.channels * taps * positions, T(0));
    return;
  }
  const BlockTasks tasks = block_tasks(s);
  parallel_for(0, tasks.count(s.batch), 1, [&](int64_t begin, int64_t end) {
    SampleTaps<T> table[kBlock];
    for (int64_t task = begin; task < end; ++task) {
      int64_t b, g, k, p_begin, p_end;
      tasks.decode(task, b, g, k, p_begin, p_end);
      sample_taps(offset, mask, s, b, g, k, p_begin, p_end, table);
      const int64_t n = p_end - p_begin;
      for (int64_t c = g * group_channels; c < (g + 1) * group_channels; ++c) {
        const T* data = input + (b * s.channels + c) * plane;
        T* row = columns + ((b * s.channels + c) * taps + k) * positions + p_begin;
        for (int64_t p = 0; p < n; ++p) {
          const SampleTaps<T>& t = table[p];
          row[p] = t.weight[0] * data[t.offset[0]] + t.weight[1] * data[t.offset[1]] +
                   t.weight[2] * data[t.offset[2]] + t.weight[3] * data[t.offset[3]];
        }
      }
    }
  });
}

template <typename T>
void deform_col2im(const T* grad_columns, const T* offset, const T* mask,
                   const DeformConvGeometry& s, T* grad_input) {
  const int64_t plane = s.height * s.width;
  const int64_t positions = s.positions(), taps = s.taps();
  const int64_t group_channels = s.channels_per_group();
  if (plane == 0) return;
  const BlockTasks tasks = block_tasks(s);
  // The taps of one image: [group][tap][position].
  std::vector<SampleTaps<T>> table(s.offset_groups * taps * positions);
  for (int64_t b = 0; b < s.batch; ++b) {
    parallel_for(0, tasks.count(1), 4, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        int64_t unused_b, g, k, p_begin, p_end;
        tasks.decode(task, unused_b, g, k, p_begin, p_end);
        sample_taps(offset, mask, s, b, g, k, p_begin, p_end,
                    table.data() + (g * taps + k) * positions + p_begin);
      }
    });
    parallel_for(0, s.channels, 4, [&](int64_t c_begin, int64_t c_end) {
      for (int64_t c = c_begin; c < c_end; ++c) {
        T* grad = grad_input + (b * s.channels + c) * plane;
        std::fill(grad, grad + plane, T(0));
        const SampleTaps<T>* group_table = table.data() + (c / group_channels) * taps * positions;
        for (int64_t k = 0; k < taps; ++k) {
          const T* row = grad_columns + ((b * s.channels + c) * taps + k) * positions;
          const SampleTaps<T>* tap = group_table + k * positions;
          for (int64_t p = 0; p < positions; ++p) {
            const T v = row[p];
            const SampleTaps<T>& t = tap[p];
            grad[t.offset[0]] += t.weight[0] * v;
            grad[t.offset[1]] += t.weight[1] * v;
            grad[t.offset[2]] += t.weight[2] * v;
            grad[t.offset[3]] += t.weight[3] * v;
          }
        }
      }
    });
  }
}

template <typename T>
void deform_col2im_coord(const T* grad_columns, const T* input, const T* offset, const T* mask,
                         const DeformConvGeometry& s, T* grad_offset, T* grad_mask) {
  const int64_t plane = s.height * s.width;
  const int64_t positions = s.positions(), taps = s.taps();
  const int64_t group_channels = s.channels_per_group();
  const BlockTasks tasks = block_tasks(s);
  parallel_for(0, tasks.count(s.batch), 1, [&](int64_t begin, int64_t end) {
    GradTaps<T> table[kBlock];
    T sum_dy[kBlock], sum_dx[kBlock], sum_value[kBlock];
    for (int64_t task = begin; task < end; ++task) {
      int64_t b, g, k, p_begin, p_end;
      tasks.decode(task, b, g, k, p_begin, p_end);
      const int64_t n = p_end - p_begin;
      for (int64_t p = 0; p < n; ++p) {
        const BilinearTaps<T> t = taps_at(s, offset, b, g, k, p_begin + p);
        for (int i = 0; i < 4; ++i) {
          table[p].offset[i] = static_cast<int32_t>(t.offset[i]);
          table[p].weight[i] = t.weight[i];
          table[p].dweight_dy[i] = t.dweight_dy[i];
          table[p].dweight_dx[i] = t.dweight_dx[i];
        }
        sum_dy[p] = sum_dx[p] = sum_value[p] = T(0);
      }
      // An empty map has no values: all three sums stay 0.
      const int64_t channels_to_read = plane == 0 ? 0 : group_channels;
      for (int64_t c = g * group_channels; c < g * group_channels + channels_to_read; ++c) {
        const T* data = input + (b * s.channels + c) * plane;
        const T* row = grad_columns + ((b * s.channels + c) * taps + k) * positions + p_begin;
        for (int64_t p = 0; p < n; ++p) {
          const GradTaps<T>& t = table[p];
          const T v0 = data[t.offset[0]], v1 = data[t.offset[1]];
          const T v2 = data[t.offset[2]], v3 = data[t.offset[3]];
          const T gc = row[p];
          sum_dy[p] += gc * (t.dweight_dy[0] * v0 + t.dweight_dy[1] * v1 +
                             t.dweight_dy[2] * v2 + t.dweight_dy[3] * v3);
          sum_dx[p] += gc * (t.dweight_dx[0] * v0 + t.dweight_dx[1] * v1 +
                             t.dweight_dx[2] * v2 + t.dweight_dx[3] * v3);
          sum_value[p] += gc * (t.weight[0] * v0 + t.weight[1] * v1 + t.weight[2] * v2 +
                                t.weight[3] * v3);
        }
      }
      T* out_dy = grad_offset + s.offset_plane(b, g, k) + p_begin;
      T* out_dx = out_dy + positions;
      const T* m = mask != nullptr ? mask + s.mask_plane(b, g, k) + p_begin : nullptr;
      for (int64_t p = 0; p < n; ++p) {
        const T scale = m != nullptr ? m[p] : T(1);
        out_dy[p] = sum_dy[p] * scale;
        out_dx[p] = sum_dx[p] * scale;
      }
      if (grad_mask != nullptr) {
        std::copy(sum_value, sum_value + n, grad_mask + s.mask_plane(b, g, k) + p_begin);
      }
    }
  });
}

#define DET_OPS_INSTANTIATE(T)                                                                 \
  template void deform_im2col<T>(const T*, const T*, const T*, const DeformConvGeometry&, T*); \
  template void deform_col2im<T>(const T*, const T*, const T*, const DeformConvGeometry&, T*); \
  template void deform_col2im_coord<T>(const T*, const T*, const T*, const T*,                 \
                                       const DeformConvGeometry&, T*, T*);
DET_OPS_INSTANTIATE(float)
DET_OPS_INSTANTIATE(double)
#undef DET_OPS_INSTANTIATE

}  // namespace det_ops::cpu
