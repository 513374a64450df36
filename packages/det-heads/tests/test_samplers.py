import pytest
import torch

from det_heads.assigners import Assignment, MaxIoUAssigner
from det_heads.samplers import OHEMSampler, PseudoSampler, RandomSampler
from det_heads.sync_audit import SyncAudit


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


def test_slots_are_fixed_positives_first_then_negatives_then_padding():
    sampler = RandomSampler(16, 0.25, add_gt_as_proposals=False)
    result = sampler(_assignment(2, 5, 30), _boxes(37), GT)
    assert result.num_slots == 16 and result.pos_capacity == 4
    assert result.is_pos.tolist() == [True] * 2 + [False] * 14
    assert result.is_neg.tolist() == [False] * 2 + [True] * 5 + [False] * 9
    # Fewer candidates than the sampler may take: every one, in index order.
    assert result.pos_inds.tolist() == [0, 1] and result.neg_inds.tolist() == [2, 3, 4, 5, 6]
    assert int(result.num_pos) == 2 and int(result.num_neg) == 5
    pos, neg = result.candidate_masks()
    assert pos.nonzero().flatten().tolist() == [0, 1]
    assert neg.nonzero().flatten().tolist() == [2, 3, 4, 5, 6]
    # Fewer candidates than num: as many slots as candidates.
    assert sampler(_assignment(1, 3), _boxes(4), GT).num_slots == 4


def test_generator_makes_the_draw_reproducible():
    def draw(seed):
        sampler = RandomSampler(
            64, 0.25, add_gt_as_proposals=False, generator=torch.Generator().manual_seed(seed)
        )
        return sampler(_assignment(100, 500), _boxes(600), GT).inds

    assert torch.equal(draw(1), draw(1)) and not torch.equal(draw(1), draw(2))


@pytest.mark.parametrize(
    "make",
    [lambda: RandomSampler(64, 0.25), lambda: PseudoSampler(), lambda: OHEMSampler(64, 0.25)],
)
def test_assigning_and_sampling_never_wait_on_the_host(make):
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(300, 2, generator=g) * 200
    boxes = torch.cat([xy, xy + 10 + torch.rand(300, 2, generator=g) * 50], dim=1)
    gt = boxes[:3] + 2.0
    labels = torch.tensor([0, 1, 2])
    valid = torch.rand(300, generator=g) > 0.1
    with SyncAudit(where=True) as audit:
        assignment = MaxIoUAssigner(0.5, 0.4, 0.3)(boxes, gt, labels, None, 3, valid=valid)
        result = make()(assignment, boxes, gt, labels, hardness=lambda b, lb: b[:, 0])
        result.slot_boxes, result.slot_gt_boxes, result.labels(3), result.is_gt
        result.candidate_masks()
    assert audit.counts() == {}, audit.where
    assert int(result.num_pos) > 0 and int(result.num_neg) > 0
