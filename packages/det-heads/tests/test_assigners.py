import pytest
import torch

from det_heads.assigners import MaxIoUAssigner

GT = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])


def test_thresholds_hand_computed():
    boxes = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # IoU 1 with gt 0
            [0.0, 0.0, 10.0, 6.0],  # IoU 0.6 with gt 0
            [0.0, 0.0, 10.0, 4.0],  # IoU 0.4 with gt 0: between thresholds
            [0.0, 0.0, 10.0, 2.0],  # IoU 0.2 with gt 0: negative
            [50.0, 50.0, 60.0, 60.0],  # no overlap: negative
            [21.0, 20.0, 31.0, 30.0],  # IoU 90 / 110 with gt 1
        ]
    )
    a = MaxIoUAssigner(0.5, 0.3, min_pos_iou=1.0)(boxes, GT, torch.tensor([3, 1]), num_classes=5)
    assert a.gt_inds.tolist() == [1, 1, -1, 0, 0, 2]
    assert a.labels.tolist() == [3, 3, 5, 5, 5, 1]
    torch.testing.assert_close(a.max_overlaps, torch.tensor([1, 0.6, 0.4, 0.2, 0, 90 / 110]))


def test_negative_range_pair():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 4.0], [0.0, 0.0, 10.0, 0.5], [50.0, 50, 60, 60]])
    a = MaxIoUAssigner(0.5, (0.1, 0.5), min_pos_iou=1.0)(boxes, GT)
    # IoU 0.4 in [0.1, 0.5): negative; IoU 0.05 and 0 below the range: ignored
    assert a.gt_inds.tolist() == [0, -1, -1]


def test_low_quality_match_takes_best_box():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 4.0], [20.0, 20.0, 30.0, 23.5], [0, 0, 10, 3.0]])
    # gt 0's best is box 0 (0.4); gt 1's best is box 1 (0.35): both below pos_iou_thr 0.7
    a = MaxIoUAssigner(0.7, 0.3, min_pos_iou=0.3)(boxes, GT)
    assert a.gt_inds.tolist() == [1, 2, -1]
    # with min_pos_iou above 0.35, gt 1 gets no low-quality match and box 1 stays ignored
    a = MaxIoUAssigner(0.7, 0.3, min_pos_iou=0.38)(boxes, GT)
    assert a.gt_inds.tolist() == [1, -1, -1]


def test_gt_max_assign_all_ties():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 4.0], [0.0, 6.0, 10.0, 10.0]])
    gt = GT[:1]
    assert MaxIoUAssigner(0.7, 0.3, 0.3)(boxes, gt).gt_inds.tolist() == [1, 1]
    only_first = MaxIoUAssigner(0.7, 0.3, 0.3, gt_max_assign_all=False)(boxes, gt)
    assert only_first.gt_inds.tolist() == [1, -1]


def test_crowd_boxes_are_ignored():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [100.0, 100, 110, 110], [104.0, 100, 114, 110]])
    crowd = torch.tensor([[100.0, 100.0, 112.0, 120.0]])
    a = MaxIoUAssigner(0.5, 0.5, 0.5, ignore_iof_thr=0.5)(boxes, GT, ignore_boxes=crowd)
    # box 1 lies inside the crowd box (IoF 1); box 2 is 8/10 inside (IoF 0.8)
    assert a.gt_inds.tolist() == [1, -1, -1]
    a = MaxIoUAssigner(0.5, 0.5, 0.5, ignore_iof_thr=0.9)(boxes, GT, ignore_boxes=crowd)
    assert a.gt_inds.tolist() == [1, -1, 0]
    a = MaxIoUAssigner(0.5, 0.5, 0.5)(boxes, GT, ignore_boxes=crowd)
    assert a.gt_inds.tolist() == [1, 0, 0]


def test_no_ground_truth_makes_everything_negative():
    boxes = torch.rand(7, 4) * 10
    boxes[:, 2:] += boxes[:, :2]
    a = MaxIoUAssigner(0.5, 0.4)(
        boxes, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), None, 3
    )
    assert a.gt_inds.tolist() == [0] * 7 and a.labels.tolist() == [3] * 7


def test_bad_negative_range():
    with pytest.raises(ValueError, match="neg_iou_thr"):
        MaxIoUAssigner(0.5, (0.5, 0.1))


def _loop_reference(assigner, boxes, gt):
    """Step 5 as the 2019 code wrote it: a loop over the gts in order, later ones overwriting."""
    import det_ops

    before = MaxIoUAssigner(assigner.pos_iou_thr, assigner.neg_iou_thr, min_pos_iou=2.0)
    gt_inds = before(boxes, gt).gt_inds.clone()  # steps 1-4 only (no gt reaches IoU 2)
    overlaps = det_ops.bbox_overlaps(gt, boxes)
    gt_max, gt_argmax = overlaps.max(dim=1)
    for i in range(len(gt)):
        if gt_max[i] < assigner.min_pos_iou or gt_max[i] <= 0:
            continue
        if assigner.gt_max_assign_all:
            gt_inds[overlaps[i] == gt_max[i]] = i + 1
        else:
            gt_inds[gt_argmax[i]] = i + 1
    return gt_inds


@pytest.mark.parametrize("assign_all", [True, False])
def test_low_quality_matches_equal_the_loop_over_gts(assign_all):
    # Boxes on a coarse grid, so that ties and gts sharing a best box are common.
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        corners = torch.randint(0, 6, (40, 2), generator=generator).float() * 4
        boxes = torch.cat(
            [corners, corners + torch.randint(2, 5, (40, 2), generator=generator) * 4], 1
        )
        gt = boxes[torch.randint(0, 40, (12,), generator=generator)] + torch.rand(
            12, 4, generator=generator
        )
        assigner = MaxIoUAssigner(0.7, 0.3, 0.1, gt_max_assign_all=assign_all)
        assert assigner(boxes, gt).gt_inds.tolist() == _loop_reference(assigner, boxes, gt).tolist()
