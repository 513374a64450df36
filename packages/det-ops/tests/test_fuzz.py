"""Property tests: any shape and any values give a result or a documented error, never a crash."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import det_ops

values = st.floats(allow_nan=True, allow_infinity=True, width=32)
finite = st.floats(-1e4, 1e4, width=32)
SETTINGS = settings(max_examples=60, deadline=None)


def arrays(shape, elements=values, dtype=np.float32):
    return hnp.arrays(dtype, shape, elements=elements)


def attempt(fn, *args, **kwargs):
    """Runs fn; documented argument errors are fine, anything else fails the test."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError):
        return None


shapes = st.lists(st.integers(0, 6), min_size=0, max_size=3).map(tuple)


@SETTINGS
@given(
    boxes=arrays(st.one_of(st.tuples(st.integers(0, 40), st.just(4)), shapes)),
    scores=arrays(st.one_of(st.tuples(st.integers(0, 40)), shapes)),
    threshold=st.floats(-1, 2),
)
def test_nms_family(boxes, scores, threshold):
    keep = attempt(det_ops.nms, boxes, scores, threshold)
    if keep is not None:
        assert len(set(keep.tolist())) == len(keep) and (keep < len(boxes)).all()
    idxs = np.arange(boxes.shape[0] if boxes.ndim else 0) % 3
    attempt(det_ops.batched_nms, boxes, scores, idxs, threshold)
    attempt(det_ops.soft_nms, boxes, scores, threshold, method="gaussian")
    attempt(det_ops.bbox_overlaps, boxes, boxes[::-1] if boxes.ndim else boxes)


@SETTINGS
@given(
    shape=st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 9), st.integers(0, 9)),
    rois=arrays(
        st.tuples(st.integers(0, 6), st.sampled_from([5, 4])), elements=st.one_of(finite, values)
    ),
    out=st.tuples(st.integers(-1, 4), st.integers(1, 4)),
    scale=st.floats(-1, 4),
    sampling=st.integers(-1, 3),
    aligned=st.booleans(),
)
def test_roi_ops(shape, rois, out, scale, sampling, aligned):
    x = torch.randn(shape)
    rois = torch.from_numpy(rois)
    if rois.shape[1] == 5:
        rois[:, 0] = rois[:, 0].abs().nan_to_num() % max(shape[0], 1)  # mostly valid batch indices
    result = attempt(det_ops.roi_align, x, rois, out, scale, sampling, aligned)
    if result is not None:
        assert result.shape == (rois.shape[0], shape[1], *out)
    attempt(det_ops.roi_pool, x.numpy(), rois.numpy(), out, scale)


@SETTINGS
@given(
    logits=arrays(shapes, elements=st.one_of(finite, values)),
    labels=st.booleans(),
    gamma=st.floats(-1, 4),
    alpha=st.floats(-2, 2),
)
def test_focal_loss(logits, labels, gamma, alpha):
    if labels and logits.ndim:
        targets = np.arange(int(np.prod(logits.shape[:-1]))).reshape(logits.shape[:-1]) % (
            logits.shape[-1] + 1
        )
    else:
        targets = np.ones_like(logits) * 0.5
    attempt(det_ops.sigmoid_focal_loss, logits, targets, alpha, gamma)
