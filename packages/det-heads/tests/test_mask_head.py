import pytest
import torch

import det_ops
from det_heads import ConvGN, RoIGroupNorm
from det_heads.roi import MaskHead, mask_targets
from det_heads.sync_audit import SyncAudit


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


def test_mmdet_mask_targets_crop_the_integer_box_and_resize():
    # Box (2.7, 1.2, 5.9, 4.99) truncates to (2, 1, 5, 4): a 4 x 4 crop of rows 1..4 and
    # columns 2..5, halved by bilinear resizing: each target pixel is the mean of a 2 x 2 block.
    mask = torch.zeros(8, 8, dtype=torch.uint8)
    mask[1:3, 2:4] = torch.tensor([[1, 1], [1, 0]])  # 3/4 -> 1
    mask[1:3, 4:6] = torch.tensor([[1, 0], [0, 0]])  # 1/4 -> 0
    mask[3:5, 2:4] = 1  # 4/4 -> 1
    mask[3:5, 4:6] = torch.tensor([[0, 1], [1, 0]])  # 2/4: ties go to 1 (>= 0.5)
    box = torch.tensor([[2.7, 1.2, 5.9, 4.99]])
    target = mask_targets(box, torch.tensor([0]), mask[None], size=2, style="mmdet")
    assert target[0].tolist() == [[1.0, 0.0], [1.0, 1.0]]
    # A box past the image's edge: numpy slicing cuts the crop at the edge, and the part
    # left is stretched over the whole target (the 2019 behaviour).
    edge = torch.zeros(6, 6, dtype=torch.uint8)
    edge[3:, 3:] = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    cut = mask_targets(
        torch.tensor([[3.0, 3.0, 9.0, 9.0]]), torch.tensor([0]), edge[None], 3, style="mmdet"
    )
    assert cut[0].tolist() == [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]


def test_torchvision_mask_targets_are_its_soft_projection():
    roi_align = pytest.importorskip("torchvision.ops").roi_align
    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(3, 40, 50, generator=g) > 0.5).to(torch.uint8)
    boxes = torch.tensor([[3.2, 4.7, 30.1, 33.3], [0.0, 0.0, 49.0, 39.0], [10.5, 2.5, 12.0, 9.0]])
    inds = torch.tensor([2, 0, 0])
    got = mask_targets(boxes, inds, masks, 14, style="torchvision")
    rois = torch.cat([torch.arange(3, dtype=torch.float32)[:, None], boxes], 1)
    expected = roi_align(masks[inds][:, None].float(), rois, (14, 14), 1.0)[:, 0]
    torch.testing.assert_close(got, expected)
    assert ((got > 0) & (got < 1)).any()  # soft, not thresholded


def test_polygon_masks_give_the_bitmap_targets_in_every_style():
    # A rectangle polygon covers exactly the pixels whose centres it contains.
    polygon = [[[4.0, 6.0, 20.0, 6.0, 20.0, 18.0, 4.0, 18.0]]]
    bitmap = torch.zeros(1, 30, 30, dtype=torch.uint8)
    bitmap[0, 6:18, 4:20] = 1
    boxes = torch.tensor([[2.0, 3.0, 22.5, 19.5], [5.0, 7.0, 15.0, 16.0]])
    inds = torch.tensor([0, 0])
    for style in ("mmdet", "torchvision"):
        from_polygon = mask_targets(boxes, inds, polygon, 7, style=style)
        from_bitmap = mask_targets(boxes, inds, bitmap, 7, style=style)
        torch.testing.assert_close(from_polygon, from_bitmap, msg=style)
    with pytest.raises(ValueError, match="style must be one of"):
        mask_targets(boxes, inds, bitmap, 7, style="detectron")


@pytest.mark.parametrize("style", ["det", "torchvision"])
def test_bitmap_mask_targets_never_wait_on_the_host(style):
    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(3, 40, 50, generator=g) > 0.5).to(torch.uint8)
    xy = torch.rand(6, 2, generator=g) * 30
    boxes = torch.cat([xy, xy + 3 + torch.rand(6, 2, generator=g) * 20], dim=1)
    gt_inds = torch.tensor([0, 2, 1, 1, 0, 2])
    with SyncAudit(where=True) as audit:
        out = mask_targets(boxes, gt_inds, masks, 7, style=style)
    assert audit.counts() == {}, audit.where
    # Each RoI cut from its own gt's map, as RoIAlign of that map alone.
    own = masks[gt_inds].float()[:, None]
    rois = torch.cat([torch.arange(6.0)[:, None], boxes], dim=1)
    expected = det_ops.roi_align(own, rois, 7, 1.0, 0, aligned=style == "det")[:, 0]
    if style == "det":
        expected = (expected >= 0.5).float()
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_mask_loss_weights_count_only_the_positives():
    head = MaskHead(2, 4, 4, num_convs=0)
    logits = torch.randn(3, 2, 5, 5)
    targets = (torch.rand(3, 5, 5) > 0.5).float()
    labels = torch.tensor([1, 0, 1])
    weights = torch.tensor([True, False, True])
    with SyncAudit() as audit:
        weighted = head.loss(logits, targets, labels, weights)
    assert audit.counts() == {}
    plain = head.loss(logits[weights], targets[weights], labels[weights])
    torch.testing.assert_close(weighted, plain)
    assert float(head.loss(logits, targets, labels, torch.zeros(3, dtype=torch.bool))) == 0.0
