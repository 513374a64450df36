import torch
from torch.utils.data import DataLoader

from det_data import GroupSampler, collate, shapes, zoo_train_transforms


def test_loader_end_to_end_on_shapes(tmp_path):
    root = shapes.prepare(tmp_path / "shapes", splits={"train": 6, "val": 2})
    torch.manual_seed(0)
    ds = shapes.dataset("train", transforms=zoo_train_transforms((256, 160)), root=root)
    loader = DataLoader(
        ds, batch_size=2, sampler=GroupSampler(ds, samples_per_gpu=2), collate_fn=collate
    )
    for images, metas, targets in loader:
        assert images.shape[0] == 2 and images.shape[2] % 32 == 0 and images.shape[3] % 32 == 0
        for meta, target in zip(metas, targets, strict=True):
            h, w = meta["img_shape"][:2]
            assert max(h, w) <= 256 and min(h, w) <= 160
            assert min(h, w) == 160 or max(h, w) == 256  # one bound reached
            boxes = target["boxes"]
            assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
            assert len(target["masks"]) == len(boxes) == len(target["labels"])
        # the two images of a batch share an orientation
        assert len({m["ori_shape"][1] > m["ori_shape"][0] for m in metas}) == 1
