import contextlib
import io
import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from det_engine.evaluation import coco_evaluate, results_to_coco, voc_map

LABEL_TO_CAT_ID = [1, 3]  # category ids need not be contiguous
H, W = 120, 160


def _rect_polygon(x1, y1, x2, y2):
    return [[x1, y1, x2, y1, x2, y2, x1, y2]]


@pytest.fixture
def coco_gt(tmp_path):
    """Three images, two categories, small/medium/large boxes, one crowd region."""
    boxes = {  # image id -> [(x1, y1, x2, y2, cat_id, iscrowd)]
        10: [(5, 5, 20, 25, 1, 0), (40, 30, 110, 100, 3, 0)],
        11: [(0, 0, 150, 110, 3, 0), (60, 60, 80, 75, 1, 0)],
        12: [(10, 10, 40, 50, 1, 0), (100, 20, 150, 90, 1, 1)],
    }
    images, annotations = [], []
    for image_id, objs in boxes.items():
        images.append({"id": image_id, "width": W, "height": H, "file_name": f"{image_id}.jpg"})
        for x1, y1, x2, y2, cat, crowd in objs:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cat,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": crowd,
                    "segmentation": _rect_polygon(x1, y1, x2, y2),
                }
            )
    data = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "a"}, {"id": 3, "name": "b"}],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def _synthetic_detections(coco, seed=0):
    """GT boxes jittered, some label errors and false positives, random scores."""
    rng = np.random.default_rng(seed)
    image_ids = sorted(coco.getImgIds())
    results = []
    for image_id in image_ids:
        boxes, labels = [], []
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id])):
            x, y, w, h = ann["bbox"]
            for _ in range(2):
                jitter = rng.normal(0, 0.08, 4) * [w, h, w, h]
                boxes.append(np.array([x, y, x + w, y + h]) + jitter)
                labels.append(LABEL_TO_CAT_ID.index(ann["category_id"]) ^ int(rng.random() < 0.2))
        for _ in range(3):  # false positives
            x1, y1 = rng.uniform(0, 100), rng.uniform(0, 60)
            boxes.append([x1, y1, x1 + rng.uniform(5, 50), y1 + rng.uniform(5, 50)])
            labels.append(int(rng.integers(0, 2)))
        boxes = np.clip(np.array(boxes), 0, [W, H, W, H])
        masks = np.zeros((len(boxes), H, W), np.uint8)
        for k, (x1, y1, x2, y2) in enumerate(np.round(boxes).astype(int)):
            masks[k, y1:y2, x1:x2] = 1
        results.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32),
                "scores": torch.tensor(rng.uniform(0.05, 1.0, len(boxes)), dtype=torch.float32),
                "labels": torch.tensor(labels, dtype=torch.int64),
                "masks": torch.from_numpy(masks),
            }
        )
    return image_ids, results


def _pycocotools_directly(coco, image_ids, results, iou_type, proposal=False):
    """The reference: the COCO results list built by hand, then COCOeval as documented."""
    entries = []
    for image_id, r in zip(image_ids, results, strict=True):
        boxes = r["boxes"].double().numpy()
        for k in range(len(boxes)):
            x1, y1, x2, y2 = boxes[k]
            cat = 1 if proposal else LABEL_TO_CAT_ID[int(r["labels"][k])]
            entry = {"image_id": image_id, "category_id": cat, "score": float(r["scores"][k])}
            if iou_type == "segm":
                rle = mask_util.encode(np.asfortranarray(r["masks"][k].numpy()))
                rle["counts"] = rle["counts"].decode()
                entry["segmentation"] = rle
            else:
                entry["bbox"] = [x1, y1, x2 - x1, y2 - y1]
            entries.append(entry)
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes(entries), iou_type)
        if proposal:
            ev.params.useCats = 0
            ev.params.maxDets = [100, 300, 1000]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_bbox_and_segm_equal_pycocotools(coco_gt):
    image_ids, results = _synthetic_detections(coco_gt)
    ours = coco_evaluate(results, coco_gt, image_ids, LABEL_TO_CAT_ID, metrics=("bbox", "segm"))
    for iou_type in ("bbox", "segm"):
        ref = _pycocotools_directly(coco_gt, image_ids, results, iou_type)
        names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs"]
        names += ["ARm", "ARl"]
        assert [ours[f"{iou_type}_{n}"] for n in names] == pytest.approx(list(ref), abs=1e-12)
    # The case is not trivial: imperfect but far from zero.
    assert 0.2 < ours["bbox_AP"] < 0.95
    assert 0.2 < ours["segm_AP"] < 0.95


def test_proposal_ar_equals_pycocotools(coco_gt):
    image_ids, results = _synthetic_detections(coco_gt, seed=1)
    proposals = [{"boxes": r["boxes"], "scores": r["scores"]} for r in results]
    ours = coco_evaluate(proposals, coco_gt, image_ids, LABEL_TO_CAT_ID, metrics=("proposal",))
    ref = _pycocotools_directly(coco_gt, image_ids, results, "bbox", proposal=True)
    names = ["AR@100", "AR@300", "AR@1000", "ARs@1000", "ARm@1000", "ARl@1000"]
    assert [ours[f"proposal_{n}"] for n in names] == pytest.approx(list(ref[6:12]), abs=1e-12)
    assert ours["proposal_AR@100"] > 0.3


def test_perfect_detections_give_ap_one(coco_gt):
    image_ids = sorted(coco_gt.getImgIds())
    results = []
    for image_id in image_ids:
        anns = [
            a for a in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=[image_id])) if not a["iscrowd"]
        ]
        boxes = [
            [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
            for a in anns
        ]
        results.append(
            {
                "boxes": np.array(boxes, np.float32),
                "scores": np.linspace(0.9, 0.5, len(anns)),
                "labels": np.array([LABEL_TO_CAT_ID.index(a["category_id"]) for a in anns]),
                "masks": np.stack([coco_gt.annToMask(a) for a in anns]),
            }
        )
    ours = coco_evaluate(results, coco_gt, image_ids, LABEL_TO_CAT_ID, metrics=("bbox", "segm"))
    for key in ("bbox_AP", "bbox_AP50", "bbox_AP75", "segm_AP", "bbox_AR100"):
        assert ours[key] == pytest.approx(1.0), key


def test_labels_map_to_category_ids(coco_gt):
    results = [{"boxes": [[0, 0, 10, 10]], "scores": [0.5], "labels": [1]}]
    (entry,) = results_to_coco(results, [10], LABEL_TO_CAT_ID, "bbox")
    assert entry == {"image_id": 10, "category_id": 3, "score": 0.5, "bbox": [0, 0, 10, 10]}


def test_no_detections_and_bad_arguments(coco_gt):
    empty = [{"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0)}]
    assert coco_evaluate(empty, coco_gt, [10], LABEL_TO_CAT_ID)["bbox_AP"] == 0.0
    with pytest.raises(ValueError, match="image_ids"):
        coco_evaluate(empty, coco_gt, [10, 11], LABEL_TO_CAT_ID)
    with pytest.raises(ValueError, match="metrics"):
        coco_evaluate(empty, coco_gt, [10], LABEL_TO_CAT_ID, metrics=("keypoints",))


def _voc_case():
    # Image 0: class 0 box + a difficult class 0 box; image 1: class 0 box and class 1 box.
    annotations = [
        {"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "labels": [0, 0], "difficult": [0, 1]},
        {"boxes": [[0, 0, 10, 10], [40, 40, 50, 50]], "labels": [0, 1]},
    ]
    results = [
        {  # TP (0.9), on the difficult box: ignored (0.8), FP (0.7)
            "boxes": [[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]],
            "scores": [0.9, 0.8, 0.7],
            "labels": [0, 0, 0],
        },
        {  # TP with IoU 81/100 (0.6), duplicate of the same box: FP (0.5); class 1 missed
            "boxes": [[1, 1, 10, 10], [0, 0, 10, 10]],
            "scores": [0.6, 0.5],
            "labels": [0, 0],
        },
    ]
    return results, annotations


def test_voc_map_hand_computed():
    results, annotations = _voc_case()
    # Class 0, npos 2: TP FP TP FP -> recall .5 .5 1 1, precision 1 .5 2/3 .5.
    # Area: .5 * 1 + .5 * 2/3 = 5/6. 11-point: 6 points at 1, 5 at 2/3 -> 28/33.
    # Class 1 has a box and no detection: AP 0. Class 2 has no box: NaN, left out.
    area = voc_map(results, annotations, num_classes=3, use_07_metric=False)
    assert area["AP_per_class"][:2] == pytest.approx([5 / 6, 0.0])
    assert np.isnan(area["AP_per_class"][2])
    assert area["mAP"] == pytest.approx(5 / 12)
    voc07 = voc_map(results, annotations, num_classes=3, use_07_metric=True)
    assert voc07["AP_per_class"][0] == pytest.approx(28 / 33)
    assert voc07["mAP"] == pytest.approx(14 / 33)


def test_voc_difficult_box_counts_when_not_difficult():
    results, annotations = _voc_case()
    annotations[0]["difficult"] = [0, 0]  # now 3 positives, the 0.8 detection is a TP
    # TP TP FP TP FP -> recall 1/3 2/3 2/3 1 1, precision 1 1 2/3 3/4 3/5; area = 2/3 + 1/3 * 3/4.
    out = voc_map(results, annotations, num_classes=2, use_07_metric=False)
    assert out["AP_per_class"][0] == pytest.approx(2 / 3 + 0.25)
