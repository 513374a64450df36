"""paste_masks: the per-box paste against a pixel-by-pixel reference, and the batched paste
(what runs on an accelerator) against the per-box paste, bit for bit, on the CPU."""

import math

import pytest
import torch

from det_heads.roi import mask_paste, paste_masks
from det_heads.sync_audit import SyncAudit

STYLES = mask_paste.PASTE_STYLES


def _slow_paste(mask, box, h, w, threshold=0.5):
    """Bilinear sample with zero outside the map at every pixel centre, pixel by pixel."""
    m_h, m_w = mask.shape
    x1, y1, x2, y2 = (float(v) for v in box)
    out = torch.zeros(h, w, dtype=torch.uint8)

    def at(r, c):
        return float(mask[r, c]) if 0 <= r < m_h and 0 <= c < m_w else 0.0

    for y in range(h):
        for x in range(w):
            u = (x + 0.5 - x1) / (x2 - x1) * m_w - 0.5
            v = (y + 0.5 - y1) / (y2 - y1) * m_h - 0.5
            c0, r0 = math.floor(u), math.floor(v)
            fu, fv = u - c0, v - r0
            val = (
                at(r0, c0) * (1 - fu) * (1 - fv)
                + at(r0, c0 + 1) * fu * (1 - fv)
                + at(r0 + 1, c0) * (1 - fu) * fv
                + at(r0 + 1, c0 + 1) * fu * fv
            )
            out[y, x] = val > threshold
    return out


def test_paste_matches_slow_reference():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(4, 7, 7, generator=g)
    masks[0] = 1.0
    boxes = torch.tensor(
        [
            [3.2, 4.7, 20.1, 18.3],
            [-5.0, 2.0, 12.0, 40.0],
            [30.0, 20.0, 39.5, 29.0],
            [1, 1, 2.5, 2.0],
        ]
    )
    out = paste_masks(masks, boxes, (32, 40))
    assert out.dtype == torch.uint8 and out.shape == (4, 32, 40)
    for i in range(4):
        assert torch.equal(out[i], _slow_paste(masks[i], boxes[i], 32, 40)), i
    assert torch.equal(mask_paste._paste_batched(masks, boxes, (32, 40), 0.5, "det"), out)
    # an all-ones map fills its box (plus the half-sample blur at the rim)
    assert out[0, 6:17, 5:19].all() and out[0].sum() < 20 * 16


def _awkward_boxes(g, image_size, count=24):
    """Tensor[K, 4] boxes of every kind a paste meets in a (H, W) image: inside, across an
    edge, wholly outside, larger than the image, tiny, empty and inverted."""
    h, w = image_size
    size = torch.tensor([w, h, w, h], dtype=torch.float32)
    corner = torch.rand(count, 2, generator=g) * torch.tensor([w + 20.0, h + 20.0]) - 10
    extent = torch.rand(count, 2, generator=g) * torch.tensor([w, h])
    extent = extent * torch.rand(count, 1, generator=g) * 1.5
    spread = torch.cat([corner, corner + extent], dim=1)
    tiny = torch.cat([corner[:6], corner[:6] + torch.rand(6, 2, generator=g) * 0.9], dim=1)
    fixed = torch.tensor(
        [
            [-0.7, -0.3, 4.2, 3.9],  # truncates toward zero: starts at 0
            [-1.3, -2.6, 3.0, 2.0],  # starts at -1, -2: the window cut at the edge
            [-30.0, -20.0, -5.0, -4.0],  # wholly before the image
            [1.0, 1.0, 1e3, 1e3],  # beyond it
            [-5.0, -5.0, 1e3, 1e3],  # larger than it
            [10.5, 7.5, 10.5, 7.5],  # empty, on a pixel centre
            [10.2, 7.2, 10.2, 7.2],  # empty, between centres
            [12.5, 8.5, 11.8, 7.9],  # inverted by less than a pixel
            [15.0, 12.0, 9.0, 4.0],  # inverted
            [20.5, 15.5, 16.0, 12.0],  # inverted, starting on a pixel centre
            [10.5, 7.5, 9.0, 6.0],  # inverted by 1.5: "det" samples one pixel centre
            [0.0, 0.0, 0.0, 0.0],
            # Inverted along one axis from a pixel centre, where "det" samples half the map's
            # first column (row): outside the per-box paste's window when inverted by 4.5,
            # inside by 1.5 (whose window ends at ceil(9 + 1 + 0.5e-6 / M) = 11 in float64).
            [20.5, 2.0, 16.0, 14.0],
            [2.0, 20.5, 14.0, 16.0],
            [10.5, 2.0, 9.0, 14.0],
            [2.0, 10.5, 14.0, 9.0],
        ]
    )
    return torch.cat([spread, tiny, fixed.clamp(max=size * 2)])


def _maps(g, count, map_size, quantised):
    """Probabilities Tensor[count, Mh, Mw]; quantised ones (multiples of 1/4) blend to many
    values exactly on a threshold of 0.5 or 0.25, where the rounding decides the pixel."""
    if quantised:
        masks = torch.randint(0, 5, (count, *map_size), generator=g).float() / 4
    else:
        masks = torch.rand(count, *map_size, generator=g)
    masks[:4] = torch.tensor([0.0, 0.5, 1.0, 0.25])[:, None, None]  # flat maps
    masks[-4:] = 1.0  # _awkward_boxes' last four: their half samples pass a threshold of 0.25
    return masks


def _on_threshold(masks, boxes, image_size, threshold, style):
    """How many pixels of the per-box paste have a probability exactly on the threshold."""
    below = torch.nextafter(torch.tensor(threshold), torch.tensor(-1.0)).item()
    at_or_above = mask_paste._paste_per_box(masks, boxes, image_size, below, style)
    above = mask_paste._paste_per_box(masks, boxes, image_size, threshold, style)
    return int((at_or_above != above).sum())


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("map_size", [(28, 28), (5, 7), (1, 3)])
@pytest.mark.parametrize("quantised", [False, True])
def test_batched_paste_is_the_per_box_paste_bit_for_bit(style, map_size, quantised):
    # Images from 24 to 300 pixels a side, so that resized boxes take both of the CPU's
    # interpolate kernels (at most 128 rows plus columns, and more).
    on_threshold = 0
    for seed in range(6):
        g = torch.Generator().manual_seed(seed * 7 + map_size[1])
        image_size = tuple(int(v) for v in torch.randint(24, 300, (2,), generator=g))
        boxes = _awkward_boxes(g, image_size)
        masks = _maps(g, boxes.shape[0], map_size, quantised)
        for threshold in (0.5, 0.25):
            expected = mask_paste._paste_per_box(masks, boxes, image_size, threshold, style)
            got = mask_paste._paste_batched(masks, boxes, image_size, threshold, style)
            assert got.dtype == torch.uint8 and got.shape == (boxes.shape[0], *image_size)
            assert torch.equal(got, expected), (seed, threshold)
            if quantised:
                on_threshold += _on_threshold(masks, boxes, image_size, threshold, style)
    assert not quantised or on_threshold > 0


@pytest.mark.parametrize("style", STYLES)
def test_batched_paste_of_float64_boxes_and_half_maps(style):
    g = torch.Generator().manual_seed(3)
    boxes = _awkward_boxes(g, (60, 80)).double()
    boxes = boxes + torch.rand(boxes.shape, generator=g, dtype=torch.float64) * 1e-3
    masks = _maps(g, boxes.shape[0], (28, 28), quantised=True).half()
    expected = mask_paste._paste_per_box(masks, boxes, (60, 80), 0.5, style)
    assert torch.equal(mask_paste._paste_batched(masks, boxes, (60, 80), 0.5, style), expected)


@pytest.mark.parametrize("style", STYLES)
def test_batched_paste_in_chunks_of_boxes_and_of_none(style, monkeypatch):
    g = torch.Generator().manual_seed(1)
    boxes = _awkward_boxes(g, (20, 24))
    masks = torch.rand(boxes.shape[0], 6, 6, generator=g)
    whole = mask_paste._paste_batched(masks, boxes, (20, 24), 0.5, style)
    monkeypatch.setattr(mask_paste, "_PASTE_CHUNK_BYTES", 3 * 20 * 24 * 64)
    assert torch.equal(mask_paste._paste_batched(masks, boxes, (20, 24), 0.5, style), whole)
    none = mask_paste._paste_batched(masks[:0], boxes[:0], (20, 24), 0.5, style)
    assert none.dtype == torch.uint8 and none.shape == (0, 20, 24)


@pytest.mark.parametrize("style", STYLES)
def test_batched_paste_reads_nothing_on_the_host(style):
    # Meta tensors have no values: any read of a box, or a size that depends on one, fails;
    # paste_masks takes the batched paste for any device but the CPU.
    masks, boxes = torch.empty(5, 28, 28, device="meta"), torch.empty(5, 4, device="meta")
    out = paste_masks(masks, boxes, (40, 60), style=style)
    assert out.device.type == "meta" and out.shape == (5, 40, 60) and out.dtype == torch.uint8
    g = torch.Generator().manual_seed(2)
    boxes = _awkward_boxes(g, (40, 60))
    masks = torch.rand(boxes.shape[0], 28, 28, generator=g)
    with SyncAudit(where=True) as audit:
        mask_paste._paste_batched(masks, boxes, (40, 60), 0.5, style)
    assert audit.counts() == {}, audit.where


@pytest.mark.gpu
@pytest.mark.parametrize("style", STYLES)
def test_paste_on_cuda_is_the_per_box_paste_bit_for_bit(style):
    # On CUDA the batched paste mirrors CUDA's kernels (a division by a host scalar is a
    # product with its reciprocal there; interpolate has one kernel for every size).
    total_on_threshold = 0
    for seed in range(6):
        g = torch.Generator().manual_seed(seed)
        image_size = tuple(int(v) for v in torch.randint(24, 300, (2,), generator=g))
        boxes = _awkward_boxes(g, image_size)
        masks = _maps(g, boxes.shape[0], (28, 28), quantised=bool(seed % 2))
        cuda_masks, cuda_boxes = masks.cuda(), boxes.cuda()
        for threshold in (0.5, 0.25):
            expected = mask_paste._paste_per_box(cuda_masks, boxes, image_size, threshold, style)
            with SyncAudit(where=True) as audit:
                got = paste_masks(cuda_masks, cuda_boxes, image_size, threshold, style=style)
            assert audit.counts() == {}, audit.where
            assert torch.equal(got, expected), (seed, threshold)
        total_on_threshold += _on_threshold(masks, boxes, image_size, 0.5, style)
    assert total_on_threshold > 0
