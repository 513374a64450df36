"""Shared helpers of the tests: torchvision references with non-trivial BN statistics."""

import torch
from torch import nn


def randomize_batch_norm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Gives every BatchNorm2d of model random affine terms and running statistics, so that
    a mapping mistake between BN layers changes the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                c = module.num_features
                module.weight.copy_(torch.rand(c, generator=g) * 0.5 + 0.5)
                module.bias.copy_(torch.randn(c, generator=g) * 0.1)
                module.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                module.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    return model


def torchvision_stages(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """C2-C5 of a torchvision ResNet (its forward without avgpool and fc)."""
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    outs = []
    for name in ("layer1", "layer2", "layer3", "layer4"):
        x = getattr(model, name)(x)
        outs.append(x)
    return outs


def assert_maps_close(ours, theirs, rtol=1e-5):
    """Each pair of maps agrees within rtol of the reference map's largest magnitude."""
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape
        scale = b.abs().max().item()
        assert scale > 0
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * scale)


def image(size=(64, 64), batch=1, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, *size, generator=g)
