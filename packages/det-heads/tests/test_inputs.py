"""The checks of targets, metas and proposals: their messages, and one host synchronisation
for a batch's values (not one per image)."""

import pytest
import torch

from det_heads.inputs import check_proposals, check_targets


def _targets(num_images, num_boxes=3):
    g = torch.Generator().manual_seed(0)
    targets = []
    for _ in range(num_images):
        xy = torch.rand(num_boxes, 2, generator=g) * 50
        boxes = torch.cat([xy, xy + 5 + torch.rand(num_boxes, 2, generator=g) * 20], 1)
        ignore = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
        labels = torch.randint(0, 3, (num_boxes,), generator=g)
        targets.append({"boxes": boxes, "labels": labels, "ignore_boxes": ignore})
    return targets


@pytest.fixture
def host_reads(monkeypatch):
    """Counts the reads of tensor values by the host (each one a synchronisation on a GPU)."""
    reads = []
    for name in ("__bool__", "__int__", "__float__", "item", "tolist"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return reads


def test_a_batch_of_targets_is_checked_with_one_host_read(host_reads):
    check_targets("op", _targets(8), 8, num_classes=3)
    assert host_reads == ["__bool__"]


def test_a_batch_of_proposals_is_checked_with_one_host_read(host_reads):
    proposals = [t["boxes"] for t in _targets(8)]
    check_proposals("op", [{"boxes": p} for p in proposals[:4]] + proposals[4:], 8, offset=1)
    assert host_reads == ["__bool__"]


def test_the_message_names_the_first_bad_image():
    targets = _targets(3)
    targets[2]["boxes"][1] = torch.tensor([10.0, 10.0, 5.0, 20.0])
    with pytest.raises(ValueError, match=r"op: targets\[2\]\['boxes'\]\[1\] = .* has x2 < x1"):
        check_targets("op", targets, 3, num_classes=3)
    targets[1]["labels"] = torch.tensor([0, 3, 1])
    with pytest.raises(
        ValueError, match=r"targets\[1\]\['labels'\] must be in 0..2, got values in"
    ):
        check_targets("op", targets, 3, num_classes=3)
    check_targets("op", _targets(3), 3)  # without num_classes, labels are not read
    targets = _targets(2)
    targets[1]["ignore_boxes"] = torch.tensor([[5.0, 5.0, 5.0, 1.0]])
    with pytest.raises(ValueError, match=r"targets\[1\]\['ignore_boxes'\]\[0\]"):
        check_targets("op", targets, 2)
    with pytest.raises(ValueError, match=r"proposals\[1\]\[0\] .* has x2 \+ 1 < x1"):
        check_proposals("op", [torch.zeros(0, 4), torch.tensor([[9.0, 0.0, 7.0, 5.0]])], 2, 1)


def test_types_and_lengths():
    targets = _targets(2)
    with pytest.raises(ValueError, match="expected 3 targets"):
        check_targets("op", targets, 3)
    targets[1]["boxes"] = targets[1]["boxes"].long()
    with pytest.raises(ValueError, match=r"targets\[1\]\['boxes'\] must be floating point"):
        check_targets("op", targets, 2)
    with pytest.raises(ValueError, match=r"must have 'boxes' and 'labels'"):
        check_targets("op", [{"boxes": torch.zeros(0, 4)}], 1)
    with pytest.raises(ValueError, match=r"proposals\[0\] must be a Tensor\[N, 4\]"):
        check_proposals("op", [torch.zeros(4)], 1)
    check_targets("op", [], 0)
    check_targets("op", [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0).long()}], 1, 3)
