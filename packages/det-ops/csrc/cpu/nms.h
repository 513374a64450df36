#pragma once

#include <cstdint>

namespace det_ops::cpu {

// Greedy NMS. boxes [n, 4] (x1, y1, x2, y2), scores [n]. Writes the kept
// indices, highest score first (ties: lower index first), into keep and returns
// how many; returns -1 when a score is NaN. max_threads caps the threads used.
template <typename T>
int64_t nms(const T* boxes, const T* scores, int64_t n, double iou_threshold, int64_t* keep,
            int max_threads);

// NMS within each class of idxs [n]; keep is sorted by decreasing score.
template <typename T>
int64_t batched_nms(const T* boxes, const T* scores, const int64_t* idxs, int64_t n,
                    double iou_threshold, int64_t* keep);

// Soft-NMS: keep [n] gets the indices in the order they were selected,
// new_scores [n] their decayed scores; returns how many were kept.
template <typename T>
int64_t soft_nms(const T* boxes, const T* scores, int64_t n, double iou_threshold, double sigma,
                 double min_score, int method, int64_t* keep, T* new_scores);

}  // namespace det_ops::cpu
