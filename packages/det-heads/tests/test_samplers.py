import pytest
import torch

from det_heads.assigners import Assignment
from det_heads.samplers import OHEMSampler, PseudoSampler, RandomSampler


def _assignment(num_pos: int, num_neg: int, num_ignored: int = 0) -> Assignment:
    gt_inds = torch.cat(
        [torch.ones(num_pos), torch.zeros(num_neg), -torch.ones(num_ignored)]
    ).long()
    labels = torch.where(gt_inds > 0, 0, 2)
    return Assignment(1, gt_inds, torch.zeros(gt_inds.numel()), labels)


def _boxes(n: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float32)[:, None] + torch.tensor([0.0, 0.0, 5.0, 5.0])


GT = torch.tensor([[1.0, 1.0, 6.0, 6.0]])


def test_random_sampler_caps_positive_fraction():
    sampler = RandomSampler(
        256, 0.5, add_gt_as_proposals=False, generator=torch.Generator().manual_seed(0)
    )
    result = sampler(_assignment(300, 1000, 50), _boxes(1350), GT)
    assert result.pos_inds.numel() == 128 and result.neg_inds.numel() == 128
    assert (result.pos_inds < 300).all()
    assert ((result.neg_inds >= 300) & (result.neg_inds < 1300)).all()
    assert result.pos_inds.unique().numel() == 128


def test_random_sampler_fills_with_negatives():
    sampler = RandomSampler(512, 0.25, add_gt_as_proposals=False)
    result = sampler(_assignment(10, 2000), _boxes(2010), GT)
    assert result.pos_inds.numel() == 10 and result.neg_inds.numel() == 502


def test_neg_pos_upper_bound():
    sampler = RandomSampler(512, 0.25, neg_pos_ub=3, add_gt_as_proposals=False)
    result = sampler(_assignment(10, 2000), _boxes(2010), GT)
    assert result.neg_inds.numel() == 30
    result = sampler(_assignment(0, 2000), _boxes(2000), GT)
    assert result.neg_inds.numel() == 3  # at least one positive's worth


def test_add_gt_as_proposals():
    sampler = RandomSampler(512, 0.25, add_gt_as_proposals=True)
    result = sampler(_assignment(2, 5), _boxes(7), GT, gt_labels=torch.tensor([0]))
    assert result.boxes.shape == (8, 4) and result.num_added_gt == 1
    assert sorted(result.pos_inds.tolist()) == [0, 1, 2]
    assert torch.equal(result.boxes[0], GT[0])
    assert result.pos_is_gt.tolist() == [i == 0 for i in result.pos_inds.tolist()]
    assert torch.equal(result.pos_gt_boxes, GT.expand(3, 4))
    assert result.pos_labels.tolist() == [0, 0, 0]


def test_pseudo_sampler_takes_all():
    result = PseudoSampler()(_assignment(3, 4, 2), _boxes(9), GT)
    assert result.pos_inds.tolist() == [0, 1, 2] and result.neg_inds.tolist() == [3, 4, 5, 6]


def test_ohem_takes_hardest():
    sampler = OHEMSampler(4, 0.5, add_gt_as_proposals=False)

    def hardness(boxes, labels):
        return boxes[:, 0]  # later boxes are "harder"

    result = sampler(_assignment(5, 5), _boxes(10), GT, hardness=hardness)
    assert sorted(result.pos_inds.tolist()) == [3, 4]
    assert sorted(result.neg_inds.tolist()) == [8, 9]
    with pytest.raises(ValueError, match="hardness"):
        sampler(_assignment(5, 5), _boxes(10), GT)


def test_bad_fraction():
    with pytest.raises(ValueError, match="pos_fraction"):
        RandomSampler(10, 1.5)
