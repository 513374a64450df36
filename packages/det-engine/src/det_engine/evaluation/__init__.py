"""Detection metrics: COCO (bbox, segm, proposal) through pycocotools, and VOC mAP."""

from det_engine.evaluation.coco import coco_evaluate, results_to_coco
from det_engine.evaluation.voc import voc_map

__all__ = ["coco_evaluate", "results_to_coco", "voc_map"]
