import math

import torch

from det_heads import ConvGN, RoIGroupNorm
from det_heads.roi import MaskHead, mask_targets, paste_masks


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
    # an all-ones map fills its box (plus the half-sample blur at the rim)
    assert out[0, 6:17, 5:19].all() and out[0].sum() < 20 * 16


def test_mask_targets_from_polygon_and_bitmap_agree():
    # a right triangle (0, 0), (20, 0), (0, 20) in a 40 x 40 image
    polygons = [[[0.0, 0.0, 20.0, 0.0, 0.0, 20.0]]]
    bitmap = torch.zeros(1, 40, 40, dtype=torch.uint8)
    for y in range(40):
        for x in range(40):
            bitmap[0, y, x] = (x + 0.5) + (y + 0.5) < 20
    box = torch.tensor([[0.0, 0.0, 20.0, 20.0]])
    from_poly = mask_targets(box, torch.tensor([0]), polygons, size=10)
    # cell (r, c) centre at 2 c + 1, 2 r + 1: inside when c + r + 1 < 10
    expected = torch.tensor([[float(c + r + 1 < 10) for c in range(10)] for r in range(10)])
    assert torch.equal(from_poly[0], expected)
    from_bitmap = mask_targets(box, torch.tensor([0]), bitmap, size=10)
    assert (from_bitmap[0] != expected).sum() <= 10  # differ only on the diagonal's cells


def test_mask_head_shapes_and_loss():
    head = MaskHead(3, in_channels=4, conv_channels=4, num_convs=2)
    logits = head(torch.randn(5, 4, 14, 14))
    assert logits.shape == (5, 3, 28, 28)
    targets = (torch.rand(5, 28, 28) > 0.5).float()
    labels = torch.tensor([0, 2, 1, 1, 0])
    loss = head.loss(logits, targets, labels)
    chosen = logits[torch.arange(5), labels]
    expected = torch.nn.functional.binary_cross_entropy_with_logits(chosen, targets)
    torch.testing.assert_close(loss, expected)
    assert head.loss(logits[:0], targets[:0], labels[:0]).item() == 0.0
    head.loss_weight = 0.25
    torch.testing.assert_close(head.loss(logits, targets, labels), 0.25 * expected)


def test_group_norm_mask_head_of_the_gn_rows():
    head = MaskHead(3, 8, 32, num_convs=2, norm="GN")
    assert all(isinstance(c, ConvGN) and type(c.gn) is RoIGroupNorm for c in head.convs)
    assert [k for k in head.state_dict() if k.startswith("convs.0.")] == [
        "convs.0.conv.weight",
        "convs.0.gn.weight",
        "convs.0.gn.bias",
    ]
    assert head(torch.randn(4, 8, 7, 7)).shape == (4, 3, 14, 14)
