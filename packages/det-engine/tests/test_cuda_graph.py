"""The training step captured as CUDA graphs per size bucket (det_engine.cuda_graph).

On the CPU: the buckets, the refusals, the Trainer's use of a given step and the in-place
optimizer restore a captured graph relies on. On a GPU (``-m gpu``): the graphed step gives
the eager step's losses and parameters, a second bucket captures a graph of its own, and a
checkpoint restored into captured graphs continues as a fresh run from it does.
"""

from __future__ import annotations

import copy

import pytest
import torch

from det_engine import checkpoint as ckpt
from det_engine.cuda_graph import (
    GraphedTrainStep,
    NotCapturableError,
    bucket_of,
    check_capturable,
    data_buckets,
    size_buckets,
)
from det_models import apply_overrides, build_model, static_batch, zoo

SMALL = [
    "model.backbone.arch=r18",
    "model.backbone.base_channels=16",
    "model.neck.out_channels=32",
    "model.rpn.feat_channels=32",
    "model.roi.fc_channels=64",
    "model.roi.conv_channels=32",
    "model.num_classes=3",
]
# Every candidate sampled: the random keys choose nothing, so eager and graphed steps
# compare one to one whatever the draws.
TAKE_ALL = [
    "model.rpn.sampler.num=100000",
    "model.rpn.sampler.pos_fraction=1.0",
    "model.roi.stages.0.sampler.num=8192",
    "model.roi.stages.0.sampler.pos_fraction=1.0",
]


def test_size_buckets_hold_every_resized_image():
    assert size_buckets((1333, 800), 32) == [(800, 1344), (1344, 800)]
    assert size_buckets((512, 512), None, keep_ratio=False) == [(512, 512)]
    assert size_buckets((300, 200), 32, keep_ratio=False) == [(224, 320)]
    assert bucket_of(800, 1216, [(800, 1344), (1344, 800)]) == (800, 1344)
    assert bucket_of(1216, 800, [(800, 1344), (1344, 800)]) == (1344, 800)
    assert bucket_of(96, 96, [(800, 1344), (1344, 800), (128, 128)]) == (128, 128)
    with pytest.raises(NotCapturableError, match="fits none"):
        bucket_of(1400, 800, [(800, 1344), (1344, 800)])
    data = zoo.get("faster_rcnn", "r50", "1x").data
    assert data_buckets(data) == [(800, 1344), (1344, 800)]


def _model(family="faster_rcnn", overrides=()):
    config = apply_overrides(zoo.get(family, "r50", "1x"), [*SMALL, *overrides]).model
    torch.manual_seed(0)
    return build_model(config).train()


def test_what_cannot_be_captured_is_refused_by_name():
    model = _model()
    sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    with pytest.raises(NotCapturableError, match=r"device: .*CUDA device"):
        check_capturable(model, sgd, None)
    with pytest.raises(NotCapturableError, match="device"):
        GraphedTrainStep(model, sgd, buckets=[(128, 160)])


@pytest.mark.gpu
def test_a_cascade_is_refused():
    model = _model("cascade_rcnn").cuda()
    sgd = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(NotCapturableError, match="model: CascadeRCNN"):
        check_capturable(model, sgd, None)


def test_trainer_runs_the_given_step(tmp_path):
    from torch.utils.data import DataLoader

    from det_engine.schedule import WarmupStepSchedule
    from det_engine.trainer import Trainer

    model = _model()
    sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(1, 3, 64, 64)
    metas = [{"img_shape": (64, 64, 3), "pad_shape": (64, 64, 3), "scale_factor": 1.0}]
    targets = [{"boxes": torch.tensor([[4.0, 4.0, 40.0, 40.0]]), "labels": torch.tensor([1])}]
    loader = DataLoader([(images, metas, targets)] * 2, batch_size=None, collate_fn=lambda b: b)
    calls = []

    def step(images, metas, targets):
        calls.append(float(sgd.param_groups[0]["lr"]))
        return {"loss": torch.tensor(1.0)}

    schedule = WarmupStepSchedule(0.01, (), 2, warmup_iters=2, warmup_ratio=0.5)
    trainer = Trainer(model, loader, sgd, schedule, tmp_path, epochs=1, step=step)
    assert trainer.train() == 2
    assert len(calls) == 2 and calls[0] < calls[1]  # the schedule's lr, set before each step


def test_restore_copies_the_optimizer_state_into_its_tensors(tmp_path):
    model = torch.nn.Linear(3, 2)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3)).sum().backward()
    sgd.step()
    path = ckpt.save(tmp_path / "a.pth", model=model, epoch=0, iteration=1, optimizer=sgd)
    buffers = [sgd.state[p]["momentum_buffer"] for p in model.parameters()]
    saved = [b.clone() for b in buffers]
    weight = model.weight
    for b in buffers:
        b.add_(1.0)
    with torch.no_grad():
        model.weight.add_(1.0)
    ckpt.restore(ckpt.load(path), model=model, optimizer=sgd)
    assert model.weight is weight
    for p, b, s in zip(model.parameters(), buffers, saved, strict=True):
        assert sgd.state[p]["momentum_buffer"] is b
        assert torch.equal(b, s)


def test_train_cli_refuses_cuda_graph_on_the_cpu(capsys):
    from det_engine.apps.train import main

    code = main(["faster_rcnn", "r50", "1x", "--device", "cpu", "--cuda-graph", "--data", "shapes"])
    assert code != 0
    assert "--cuda-graph needs a CUDA device" in capsys.readouterr().err


# ----------------------------------------------------------------------------- GPU


def _batches(sizes_per_batch, height=128, width=160, seed=0, masks=False):
    """Batches of 2 images padded to height x width, on CUDA, different gt counts (bitmap
    masks with masks)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for k, sizes in enumerate(sizes_per_batch):
        images = torch.randn(len(sizes), 3, height, width, generator=g)
        metas, targets = [], []
        for i, (h, w) in enumerate(sizes):
            metas.append(
                {
                    "image_id": i,
                    "img_shape": (h, w, 3),
                    "pad_shape": (-(-h // 32) * 32, -(-w // 32) * 32, 3),
                    "scale_factor": 1.0,
                    "flip": bool((k + i) % 2),
                }
            )
            n = 1 + (k + 2 * i) % 4
            xy = torch.rand(n, 2, generator=g) * torch.tensor([w - 40.0, h - 40.0])
            boxes = torch.cat([xy, xy + 8 + torch.rand(n, 2, generator=g) * 30], dim=1)
            labels = torch.randint(0, 3, (n,), generator=g)
            target = {"boxes": boxes.cuda(), "labels": labels.cuda()}
            if masks:
                bitmap = torch.zeros(n, height, width, dtype=torch.uint8)
                for j, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
                    bitmap[j, y1 + 2 : y2 - 2, x1 + 2 : x2 - 2] = 1
                target["masks"] = bitmap.cuda()
            targets.append(target)
        out.append((images.cuda(), metas, targets))
    return out


def _eager_reference(model, batches, buckets, lr=0.01, grad_clip=35.0):
    """The eager step on the same static batches: fused SGD, float lr."""
    sgd = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4, fused=True)
    params = [p for p in model.parameters() if p.requires_grad]
    losses = []
    for images, metas, targets in batches:
        size = bucket_of(images.shape[-2], images.shape[-1], buckets)
        batch = static_batch(images, metas, targets, size=size, drop_ignore_boxes=True)
        sgd.zero_grad(set_to_none=True)
        out = model(batch.images, batch.metas(), batch.targets())
        sum(out.values()).backward()
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
        sgd.step()
        losses.append({k: v.detach() for k, v in out.items()})
    return losses


@pytest.fixture
def exact_fp32():
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def _close(got, want):
    for a, b in zip(got, want, strict=True):
        assert a.keys() == b.keys()
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.gpu
@pytest.mark.parametrize("family", ["faster_rcnn", "mask_rcnn"])
def test_graphed_step_gives_the_eager_losses_and_parameters(family, exact_fp32):
    buckets = [(128, 160)]
    sizes = [[(128, 160), (96, 128)], [(120, 150), (101, 140)], [(128, 140), (64, 64)]]
    batches = _batches(sizes, masks=family == "mask_rcnn")
    reference = _model(family, TAKE_ALL).cuda()
    graphed = copy.deepcopy(reference)
    want = _eager_reference(reference, batches, buckets)
    sgd = torch.optim.SGD(graphed.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    step = GraphedTrainStep(graphed, sgd, buckets=buckets, grad_clip=35.0, warmup=1)
    got = [step(*b) for b in batches]  # eager warm-up, capture + replay, replay
    assert step.num_graphs == 1
    _close(got, want)
    for p, q in zip(graphed.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
def test_the_schedule_reaches_the_replayed_optimizer(exact_fp32):
    """Replays with lr 0 leave the parameters as they are; then lr > 0 moves them."""
    batches = _batches([[(128, 160), (96, 128)]] * 4)
    model = _model("faster_rcnn", TAKE_ALL).cuda()
    sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.0)
    step = GraphedTrainStep(model, sgd, buckets=[(128, 160)], warmup=1)
    step(*batches[0])
    for group in sgd.param_groups:
        group["lr"] = 0.0
    before = [p.detach().clone() for p in model.parameters()]
    step(*batches[1])  # captured and replayed
    step(*batches[2])
    assert step.num_graphs == 1
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))
    sgd.param_groups[0]["lr"] = 0.01
    step(*batches[3])
    assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


@pytest.mark.gpu
def test_a_second_bucket_captures_its_own_graph(exact_fp32):
    buckets = [(128, 160), (160, 128)]
    landscape = _batches([[(128, 160), (96, 128)], [(120, 150), (101, 140)]], 128, 160, seed=1)
    portrait = _batches([[(160, 128), (128, 96)], [(150, 120), (140, 101)]], 160, 128, seed=2)
    order = [landscape[0], portrait[0], landscape[1], portrait[1], landscape[0], portrait[0]]
    reference = _model("faster_rcnn", TAKE_ALL).cuda()
    graphed = copy.deepcopy(reference)
    want = _eager_reference(reference, order, buckets)
    sgd = torch.optim.SGD(graphed.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    step = GraphedTrainStep(graphed, sgd, buckets=buckets, grad_clip=35.0, warmup=1)
    got = [step(*b) for b in order]
    assert step.num_graphs == 2
    _close(got, want)


@pytest.mark.gpu
def test_a_restored_checkpoint_continues_as_a_fresh_run_from_it(tmp_path, exact_fp32):
    batches = _batches([[(128, 160), (96, 128)], [(120, 150), (101, 140)]] * 3, seed=3)
    model = _model("faster_rcnn", TAKE_ALL).cuda()
    sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    step = GraphedTrainStep(model, sgd, buckets=[(128, 160)], grad_clip=35.0, warmup=1)
    for b in batches[:3]:
        step(*b)
    path = ckpt.save(tmp_path / "c.pth", model=model, epoch=0, iteration=3, optimizer=sgd)
    first = [step(*b) for b in batches[3:]]
    # Into the captured graphs: the weights and momentum are copied where they read them.
    ckpt.restore(ckpt.load(path), model=model, optimizer=sgd, restore_rng=False)
    again = [step(*b) for b in batches[3:]]
    _close(again, first)
    # A fresh run from the checkpoint (eager warm-up, then its own capture).
    fresh = _model("faster_rcnn", TAKE_ALL).cuda()
    fresh_sgd = torch.optim.SGD(fresh.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    ckpt.restore(ckpt.load(path), model=fresh, optimizer=fresh_sgd, restore_rng=False)
    fresh_step = GraphedTrainStep(fresh, fresh_sgd, buckets=[(128, 160)], grad_clip=35.0, warmup=1)
    _close([fresh_step(*b) for b in batches[3:]], first)


@pytest.mark.gpu
def test_bf16_autocast_is_captured():
    batches = _batches([[(128, 160), (96, 128)]] * 3)
    model = _model("faster_rcnn").cuda()
    sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    step = GraphedTrainStep(model, sgd, buckets=[(128, 160)], amp="bf16", warmup=1)
    losses = [step(*b) for b in batches]
    assert step.num_graphs == 1
    assert all(torch.isfinite(v).all() for out in losses for v in out.values())


@pytest.mark.gpu
def test_fp16_and_other_optimizers_are_refused():
    model = _model("faster_rcnn").cuda()
    sgd = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(NotCapturableError, match="amp fp16"):
        GraphedTrainStep(model, sgd, buckets=[(128, 160)], amp="fp16")
    with pytest.raises(NotCapturableError, match="optimizer: AdamW"):
        GraphedTrainStep(model, torch.optim.AdamW(model.parameters()), buckets=[(128, 160)])
