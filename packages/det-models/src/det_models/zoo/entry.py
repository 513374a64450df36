"""One row of the model zoo: its key, reference figures, checkpoint addresses and settings."""

from __future__ import annotations

from dataclasses import dataclass

from det_models.config import DataConfig, ScheduleConfig

# The zoo document's mirror rule: the aliyun mirror serves every file of the AWS main site
# under the same path.
MAIN_SITE = "https://s3.ap-northeast-2.amazonaws.com/open-mmlab"
MIRROR_SITE = "https://open-mmlab.oss-cn-beijing.aliyuncs.com"
MODELS_URL = f"{MAIN_SITE}/mmdetection/models"


def mirror_of(url: str) -> str:
    """The mirror-site address of a main-site address (the zoo document's mirror rule).

    Args:
        url: an address on the main site, starting with MAIN_SITE.

    Returns:
        The same path on MIRROR_SITE.
    """
    if not url.startswith(MAIN_SITE + "/"):
        raise ValueError(f"url must start with {MAIN_SITE + '/'!r}, got {url!r}")
    return MIRROR_SITE + url[len(MAIN_SITE) :]


@dataclass(frozen=True)
class Reference:
    """The 2019 zoo's published figures for one row; None where the document has "-".

    Attributes:
        memory_gb: training GPU memory in GB, as measured by `memory_metric`.
        train_s_per_iter: training time, seconds per iteration (16 images).
        inference_fps: inference images per second, batch size 1, including data loading.
        box_ap: COCO val2017 box AP; for the VOC rows the VOC2007 test mAP at IoU 0.5.
        mask_ap: COCO val2017 mask AP (mask models only).
        ar1000: COCO val2017 average recall with 1000 proposals (RPN only).
        inference_fps_batch8: inference images per second at batch size 8 (SSD only).
        memory_metric: how memory was measured: "max_memory_cached" for the baselines,
            "max_memory_allocated" for the GN and DCN tables (the document's notes).
    """

    memory_gb: float | None
    train_s_per_iter: float | None
    inference_fps: float | None
    box_ap: float | None = None
    mask_ap: float | None = None
    ar1000: float | None = None
    inference_fps_batch8: float | None = None
    memory_metric: str = "max_memory_cached"


@dataclass(frozen=True)
class ZooEntry:
    """One row of the 2019 model zoo.

    Attributes:
        model: detector family: "rpn", "fast_rcnn", "faster_rcnn", "mask_rcnn", "retinanet",
            "cascade_rcnn", "cascade_mask_rcnn", "ssd300" or "ssd512".
        backbone: backbone as named in zoo keys: "r50", "r101", "r50-caffe", "r101-caffe",
            "x101-32x4d", "x101-64x4d" or "vgg16".
        schedule: schedule name: "1x", "2x", "20e", "3x", "120e" or "240e".
        variant: None for the plain row, else "mask" (Fast R-CNN with masks), "voc" (SSD on
            PASCAL VOC), "gn" / "gn-contrib" (GroupNorm, Detectron / contributed weights),
            "dconv-c3-c5", "mdconv-c3-c5" ((modulated) deformable conv in stages c3-c5),
            "dpool", "mdpool" ((modulated) deformable RoI pooling).
        style: ResNet style of the backbone: "pytorch" (stride in the 3x3 conv) or "caffe"
            (stride in the first 1x1 conv; SSD's VGG16 is listed as caffe).
        backbone_arch: the backbone's name in det_backbones, e.g. "r50-caffe", "vgg16-ssd300".
        reference: the document's figures.
        url: the released checkpoint on the main site, or None where none was released.
        mirror_url: the same checkpoint on the mirror site, or None.
        schedule_config: optimiser and learning-rate schedule of the original config.
        data: dataset and transforms of the original config.
    """

    model: str
    backbone: str
    schedule: str
    variant: str | None
    style: str
    backbone_arch: str
    reference: Reference
    url: str | None
    mirror_url: str | None
    schedule_config: ScheduleConfig
    data: DataConfig

    @property
    def key(self) -> tuple[str, str, str, str | None]:
        """(model, backbone, schedule, variant), the arguments of `zoo.entry`."""
        return (self.model, self.backbone, self.schedule, self.variant)
