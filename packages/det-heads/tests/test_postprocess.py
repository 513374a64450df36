import torch
import torchvision

from det_heads.postprocess import NMSConfig, multiclass_nms


def _reference(boxes, scores, cfg):
    out = []
    for c in range(scores.shape[1]):
        b = boxes[:, c * 4 : c * 4 + 4] if boxes.shape[1] > 4 else boxes
        keep_mask = scores[:, c] > cfg.score_thr
        bb, ss = b[keep_mask], scores[keep_mask, c]
        keep = torchvision.ops.nms(bb, ss, cfg.iou_thr)
        out += [(float(s), c, tuple(x.tolist())) for s, x in zip(ss[keep], bb[keep], strict=True)]
    out.sort(key=lambda t: -t[0])
    return out[: cfg.max_per_img]


def _random(n, classes, g, specific):
    xy = torch.rand(n, 2, generator=g) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(n, 2, generator=g) * 30], 1)
    if specific:
        boxes = (boxes[:, None] + torch.randn(n, classes, 4, generator=g)).reshape(n, -1)
    return boxes, torch.rand(n, classes, generator=g)


def test_matches_per_class_torchvision_loop():
    g = torch.Generator().manual_seed(0)
    for specific in (False, True):
        for cfg in (NMSConfig(), NMSConfig(score_thr=0.3, iou_thr=0.3, max_per_img=20)):
            boxes, scores = _random(200, 4, g, specific)
            b, s, l = multiclass_nms(boxes, scores, cfg)
            got = [(float(x), int(c), tuple(y.tolist())) for x, c, y in zip(s, l, b, strict=True)]
            expected = _reference(boxes, scores, cfg)
            assert len(got) == len(expected)
            assert sorted(got) == sorted(expected)
            assert s.tolist() == sorted(s.tolist(), reverse=True)


def test_nothing_above_threshold():
    b, s, l = multiclass_nms(torch.rand(5, 4) + torch.tensor([0, 0, 1, 1]), torch.zeros(5, 3))
    assert b.shape == (0, 4) and s.shape == (0,) and l.shape == (0,) and l.dtype == torch.int64


def test_soft_nms_decays_overlapping_box():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 8.0], [50.0, 50, 60, 60]])
    scores = torch.tensor([[0.9], [0.8], [0.7]])
    _, s, l = multiclass_nms(boxes, scores, NMSConfig(iou_thr=0.3, soft=True))
    # box 1 overlaps box 0 by IoU 0.8: linear decay to 0.8 * (1 - 0.8) = 0.16
    torch.testing.assert_close(s, torch.tensor([0.9, 0.7, 0.16]))
    assert l.tolist() == [0, 0, 0]
    hard = multiclass_nms(boxes, scores, NMSConfig(iou_thr=0.3))
    assert hard[1].tolist() == [0.8999999761581421, 0.699999988079071]


def test_to_original_rescales_and_clips_to_the_original_image():
    from det_heads.inputs import to_original

    # A 249 x 200 image resized by 256/249: a box on the input's right edge maps back to
    # 249 + rounding error without the clip.
    s = 256 / 249
    meta = {"ori_shape": (200, 249, 3), "img_shape": (206, 256, 3), "scale_factor": (s,) * 4}
    boxes = torch.tensor([[10.0 * s, 20.0 * s, 256.0, 206.0], [-1.0, -2.0, 5.0 * s, 6.0 * s]])
    out = to_original(boxes, meta)
    expected = torch.tensor([[10.0, 20.0, 249.0, 200.0], [0.0, 0.0, 5.0, 6.0]])
    torch.testing.assert_close(out, expected)
    assert float(out[:, 2].max()) <= 249 and float(out[:, 3].max()) <= 200


def test_box_head_detections_equal_decoding_every_class_first():
    from det_heads import BBoxHead
    from det_heads.postprocess import multiclass_nms

    torch.manual_seed(0)
    head = BBoxHead(5, 4, 2, 8, 1)
    boxes = torch.rand(30, 2) * 50
    boxes = torch.cat([boxes, boxes + 5 + torch.rand(30, 2) * 40], 1)
    logits, deltas = torch.randn(30, 6) * 2, torch.randn(30, 20) * 0.3
    meta = {"img_shape": (80, 90, 3)}
    for nms in (NMSConfig(score_thr=0.1), NMSConfig(score_thr=0.1, soft=True)):
        got = head.detections(boxes, logits, deltas, meta, nms)
        scores = logits.softmax(1)[:, :5]
        want = multiclass_nms(head.decode(boxes, deltas, meta), scores, nms)
        assert got["scores"].numel() > 0
        torch.testing.assert_close(got["boxes"], want[0])
        torch.testing.assert_close(got["scores"], want[1])
        assert torch.equal(got["labels"], want[2])


def test_box_head_detections_when_nothing_passes_the_score_threshold():
    from det_heads import BBoxHead

    head = BBoxHead(3, 4, 2, 8, 1)
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 20.0, 30.0]])
    logits = torch.tensor([[-9.0, -9.0, -9.0, 9.0], [-9.0, -9.0, -9.0, 9.0]])  # background
    meta = {"img_shape": (40, 40, 3)}
    for k in (2, 0):  # two RoIs, and none at all
        got = head.detections(boxes[:k], logits[:k], torch.zeros(k, 12), meta, NMSConfig())
        assert got["boxes"].shape == (0, 4) and got["scores"].shape == (0,)
        assert got["labels"].shape == (0,) and got["labels"].dtype == torch.int64
    assert head.decode(boxes[:0], torch.zeros(0, 12), meta).shape == (0, 12)
