"""Random features, targets and metas for the head tests."""

import torch


def random_targets(num_boxes, num_classes, size, generator):
    """One target dict per entry of num_boxes: boxes inside a size x size image."""
    targets = []
    for n in num_boxes:
        xy = torch.rand(n, 2, generator=generator) * size * 0.6
        wh = 8 + torch.rand(n, 2, generator=generator) * size * 0.4
        boxes = torch.cat([xy, (xy + wh).clamp(max=size)], 1)
        labels = torch.randint(0, num_classes, (n,), generator=generator)
        targets.append({"boxes": boxes, "labels": labels})
    return targets


def metas(batch, size, scale=1.0):
    return [
        {
            "img_shape": (size, size, 3),
            "pad_shape": (size, size, 3),
            "ori_shape": (round(size / scale), round(size / scale), 3),
            "scale_factor": scale,
        }
        for _ in range(batch)
    ]


def pyramid(batch, channels, size, strides, generator, requires_grad=True):
    return [
        torch.randn(batch, channels, size // s, size // s, generator=generator).requires_grad_(
            requires_grad
        )
        for s in strides
    ]


def assert_finite_with_grads(losses, params):
    total = sum(losses.values())
    for name, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value), name
    total.backward()
    grads = [p.grad for p in params if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    return total


def proposals_near(targets, g, n=20):
    """Random proposals plus jittered copies of the gt boxes."""
    out = []
    for t in targets:
        xy = torch.rand(n, 2, generator=g) * 40
        boxes = torch.cat([xy, xy + 4 + torch.rand(n, 2, generator=g) * 20], 1)
        jitter = t["boxes"] + torch.randn(t["boxes"].shape, generator=g)
        out.append({"boxes": torch.cat([boxes, jitter.clamp(min=0)]), "scores": torch.rand(n)})
    return out


def with_box_masks(targets):
    """Adds bitmap masks filling each gt box of a 64 x 64 image."""
    for t in targets:
        m = torch.zeros(t["boxes"].shape[0], 64, 64, dtype=torch.uint8)
        for j, b in enumerate(t["boxes"].long()):
            m[j, b[1] : b[3], b[0] : b[2]] = 1
        t["masks"] = m
    return targets
