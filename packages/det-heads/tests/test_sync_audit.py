import torch

import det_ops.torch_ops  # noqa: F401  (registers torch.ops.det_ops)
from det_heads.sync_audit import SyncAudit


def test_records_the_operators_that_wait_on_the_host():
    x = torch.tensor([0.0, 2.0, 0.0, 3.0])
    with SyncAudit(where=True) as audit:
        x.nonzero()
        float(x.sum())
        x[x > 0]
        y = x.clone()
        y[x > 0] = 1.0
        x.masked_select(x > 1)
        x.unique()
        torch.repeat_interleave(torch.tensor([1, 2]))
    assert audit.counts() == {
        "aten::nonzero": 1,
        "aten::_local_scalar_dense": 1,
        "aten::index(bool)": 1,
        "aten::index_put(bool)": 1,
        "aten::masked_select": 1,
        "aten::_unique2": 1,
        "aten::repeat_interleave": 1,
    }
    assert len(audit.where) == len(audit) and all(__file__ in w for w in audit.where)


def test_fixed_shape_code_records_nothing():
    x = torch.rand(10)
    with SyncAudit() as audit:
        keep = x > 0.5
        torch.where(keep, x, 0.0).sum()
        x.topk(3).indices.sort()
        x[torch.arange(3)]
        torch.zeros(10).index_put_((torch.arange(3),), torch.ones(3))
        torch.repeat_interleave(x, 2)
    assert audit.counts() == {} and len(audit) == 0


def test_custom_ops_of_data_dependent_size_are_recorded():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50, 50, 60, 60]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    with SyncAudit() as audit:
        torch.ops.det_ops.nms(boxes, scores, 0.5)
        torch.ops.det_ops.bbox_overlaps(boxes, boxes, "iou", False)  # its size is known
    assert audit.counts() == {"det_ops::nms": 1}
