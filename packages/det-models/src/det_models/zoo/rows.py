"""Every row of the 2019 model zoo's baseline tables, in the document's order.

Figures and checkpoint file names are copied from MODEL_ZOO_2019.md ("Baselines" section):
one `_row` call per table row, one tuple per table. Checkpoint names are relative to
`MODELS_URL`; rows whose Download column is "-" have none.
"""

from __future__ import annotations

from det_models.config import CAFFE_NORMALIZE, PYTORCH_NORMALIZE, SSD_NORMALIZE
from det_models.zoo.entry import MODELS_URL, Reference, ZooEntry, mirror_of
from det_models.zoo.settings import SSD_SIZES, data_config, schedule_config

# The GN and DCN tables measured memory with max_memory_allocated (their notes).
_ALLOCATED_MEMORY_VARIANTS = frozenset(
    {"gn", "gn-contrib", "dconv-c3-c5", "mdconv-c3-c5", "dpool", "mdpool"}
)


def _row(
    model: str,
    backbone: str,
    schedule: str,
    variant: str | None = None,
    *,
    mem: float,
    train: float,
    fps: float,
    box: float | None = None,
    mask: float | None = None,
    ar: float | None = None,
    fps8: float | None = None,
    ckpt: str | None = None,
    gpus: int = 8,
    imgs_per_gpu: int = 2,
) -> ZooEntry:
    """One zoo row from the document's columns.

    Args:
        model, backbone, schedule, variant: the row's key (see ZooEntry).
        mem, train, fps: memory (GB), train time (s/iter), inference speed (fps, batch 1).
        box, mask, ar: box AP, mask AP, AR1000 where the table has them.
        fps8: inference speed at batch size 8 (SSD tables).
        ckpt: checkpoint file relative to MODELS_URL, or None where the row has "-".
        gpus, imgs_per_gpu: the released run's GPUs and images per GPU.

    Returns:
        The ZooEntry with its settings derived from the key.
    """
    ssd = model in SSD_SIZES
    caffe = backbone.endswith("-caffe")
    if ssd:
        normalize = SSD_NORMALIZE
    elif caffe or variant == "gn":
        # The "(d)" GN rows start from Detectron's caffe2 weights, normalised the caffe way.
        normalize = CAFFE_NORMALIZE
    else:
        normalize = PYTORCH_NORMALIZE
    url = f"{MODELS_URL}/{ckpt}" if ckpt else None
    memory_metric = (
        "max_memory_allocated" if variant in _ALLOCATED_MEMORY_VARIANTS else "max_memory_cached"
    )
    return ZooEntry(
        model=model,
        backbone=backbone,
        schedule=schedule,
        variant=variant,
        style="caffe" if caffe or ssd else "pytorch",
        backbone_arch=f"{backbone}-{model}" if ssd else backbone,
        reference=Reference(
            memory_gb=mem,
            train_s_per_iter=train,
            inference_fps=fps,
            box_ap=box,
            mask_ap=mask,
            ar1000=ar,
            inference_fps_batch8=fps8,
            memory_metric=memory_metric,
        ),
        url=url,
        mirror_url=mirror_of(url) if url else None,
        schedule_config=schedule_config(model, schedule, gpus=gpus, imgs_per_gpu=imgs_per_gpu),
        data=data_config(model, variant, normalize),
    )


# ### RPN
RPN = (
    _row("rpn", "r50-caffe", "1x", mem=4.5, train=0.379, fps=14.4, ar=58.2),
    _row("rpn", "r50", "1x", mem=4.8, train=0.407, fps=14.5, ar=57.1,
         ckpt="rpn_r50_fpn_1x_20181010-4a9c0712.pth"),
    _row("rpn", "r50", "2x", mem=4.8, train=0.407, fps=14.5, ar=57.6,
         ckpt="rpn_r50_fpn_2x_20181010-88a4a471.pth"),
    _row("rpn", "r101-caffe", "1x", mem=7.4, train=0.513, fps=11.1, ar=59.4),
    _row("rpn", "r101", "1x", mem=8.0, train=0.552, fps=11.1, ar=58.6,
         ckpt="rpn_r101_fpn_1x_20181129-f50da4bd.pth"),
    _row("rpn", "r101", "2x", mem=8.0, train=0.552, fps=11.1, ar=59.1,
         ckpt="rpn_r101_fpn_2x_20181129-e42c6c9a.pth"),
    _row("rpn", "x101-32x4d", "1x", mem=9.9, train=0.691, fps=8.3, ar=59.4,
         ckpt="rpn_x101_32x4d_fpn_1x_20181218-7e379d26.pth"),
    _row("rpn", "x101-32x4d", "2x", mem=9.9, train=0.691, fps=8.3, ar=59.9,
         ckpt="rpn_x101_32x4d_fpn_2x_20181218-0510af40.pth"),
    _row("rpn", "x101-64x4d", "1x", mem=14.6, train=1.032, fps=6.2, ar=59.8,
         ckpt="rpn_x101_64x4d_fpn_1x_20181218-c1a24f1f.pth"),
    _row("rpn", "x101-64x4d", "2x", mem=14.6, train=1.032, fps=6.2, ar=60.0,
         ckpt="rpn_x101_64x4d_fpn_2x_20181218-c22bdd70.pth"),
)  # fmt: skip

# ### Faster R-CNN
FASTER_RCNN = (
    _row("faster_rcnn", "r50-caffe", "1x", mem=4.9, train=0.525, fps=10.0, box=36.7),
    _row("faster_rcnn", "r50", "1x", mem=5.1, train=0.554, fps=9.9, box=36.4,
         ckpt="faster_rcnn_r50_fpn_1x_20181010-3d1b3351.pth"),
    _row("faster_rcnn", "r50", "2x", mem=5.1, train=0.554, fps=9.9, box=37.7,
         ckpt="faster_rcnn_r50_fpn_2x_20181010-443129e1.pth"),
    _row("faster_rcnn", "r101-caffe", "1x", mem=7.4, train=0.663, fps=8.4, box=38.8),
    _row("faster_rcnn", "r101", "1x", mem=8.0, train=0.698, fps=8.3, box=38.6,
         ckpt="faster_rcnn_r101_fpn_1x_20181129-d1468807.pth"),
    _row("faster_rcnn", "r101", "2x", mem=8.0, train=0.698, fps=8.3, box=39.4,
         ckpt="faster_rcnn_r101_fpn_2x_20181129-73e7ade7.pth"),
    _row("faster_rcnn", "x101-32x4d", "1x", mem=9.9, train=0.842, fps=7.0, box=40.2,
         ckpt="faster_rcnn_x101_32x4d_fpn_1x_20181218-ad81c133.pth"),
    _row("faster_rcnn", "x101-32x4d", "2x", mem=9.9, train=0.842, fps=7.0, box=40.5,
         ckpt="faster_rcnn_x101_32x4d_fpn_2x_20181218-0ed58946.pth"),
    _row("faster_rcnn", "x101-64x4d", "1x", mem=14.1, train=1.181, fps=5.2, box=41.3,
         ckpt="faster_rcnn_x101_64x4d_fpn_1x_20181218-c9c69c8f.pth"),
    _row("faster_rcnn", "x101-64x4d", "2x", mem=14.1, train=1.181, fps=5.2, box=40.7,
         ckpt="faster_rcnn_x101_64x4d_fpn_2x_20181218-fe94f9b8.pth"),
)  # fmt: skip

# ### Mask R-CNN
# The document's 8th and 9th rows print "X-101-64x4d 2x" and "X-101-32x4d 1x", which would
# repeat the keys of the 7th and 10th rows; their checkpoints (x101_32x4d 2x, x101_64x4d 1x)
# and figures (10.9 GB / 0.972 s like the 32x4d 1x row, 14.1 GB / 1.302 s like the 64x4d 2x
# row) show the backbone labels are swapped, so those rows are keyed by their checkpoints.
MASK_RCNN = (
    _row("mask_rcnn", "r50-caffe", "1x", mem=5.9, train=0.658, fps=7.7, box=37.5, mask=34.4),
    _row("mask_rcnn", "r50", "1x", mem=5.8, train=0.690, fps=7.7, box=37.3, mask=34.2,
         ckpt="mask_rcnn_r50_fpn_1x_20181010-069fa190.pth"),
    _row("mask_rcnn", "r50", "2x", mem=5.8, train=0.690, fps=7.7, box=38.6, mask=35.1,
         ckpt="mask_rcnn_r50_fpn_2x_20181010-41d35c05.pth"),
    _row("mask_rcnn", "r101-caffe", "1x", mem=8.8, train=0.791, fps=7.0, box=39.9, mask=36.1),
    _row("mask_rcnn", "r101", "1x", mem=9.1, train=0.825, fps=6.7, box=39.4, mask=35.9,
         ckpt="mask_rcnn_r101_fpn_1x_20181129-34ad1961.pth"),
    _row("mask_rcnn", "r101", "2x", mem=9.1, train=0.825, fps=6.7, box=40.4, mask=36.6,
         ckpt="mask_rcnn_r101_fpn_2x_20181129-a254bdfc.pth"),
    _row("mask_rcnn", "x101-32x4d", "1x", mem=10.9, train=0.972, fps=5.8, box=41.2, mask=37.2,
         ckpt="mask_rcnn_x101_32x4d_fpn_1x_20181218-44e635cc.pth"),
    _row("mask_rcnn", "x101-32x4d", "2x", mem=10.9, train=0.972, fps=5.8, box=41.4, mask=37.1,
         ckpt="mask_rcnn_x101_32x4d_fpn_2x_20181218-f023dffa.pth"),
    _row("mask_rcnn", "x101-64x4d", "1x", mem=14.1, train=1.302, fps=4.7, box=42.2, mask=38.1,
         ckpt="mask_rcnn_x101_64x4d_fpn_1x_20181218-cb159987.pth"),
    _row("mask_rcnn", "x101-64x4d", "2x", mem=14.1, train=1.302, fps=4.7, box=42.0, mask=37.8,
         ckpt="mask_rcnn_x101_64x4d_fpn_2x_20181218-ea936e44.pth"),
)  # fmt: skip

# ### Fast R-CNN (with pre-computed proposals): Type "Faster" rows, then Type "Mask" rows
FAST_RCNN = (
    _row("fast_rcnn", "r50-caffe", "1x", mem=3.5, train=0.348, fps=14.6, box=36.6),
    _row("fast_rcnn", "r50", "1x", mem=4.0, train=0.375, fps=14.5, box=35.8,
         ckpt="fast_rcnn_r50_fpn_1x_20181010-08160859.pth"),
    _row("fast_rcnn", "r50", "2x", mem=4.0, train=0.375, fps=14.5, box=37.1,
         ckpt="fast_rcnn_r50_fpn_2x_20181010-d263ada5.pth"),
    _row("fast_rcnn", "r101-caffe", "1x", mem=7.1, train=0.484, fps=11.9, box=38.4),
    _row("fast_rcnn", "r101", "1x", mem=7.6, train=0.540, fps=11.8, box=38.1,
         ckpt="fast_rcnn_r101_fpn_1x_20181129-ffaa2eb0.pth"),
    _row("fast_rcnn", "r101", "2x", mem=7.6, train=0.540, fps=11.8, box=38.8,
         ckpt="fast_rcnn_r101_fpn_2x_20181129-9dba92ce.pth"),
    _row("fast_rcnn", "r50-caffe", "1x", "mask", mem=5.4, train=0.473, fps=10.7, box=37.3,
         mask=34.5),
    _row("fast_rcnn", "r50", "1x", "mask", mem=5.3, train=0.504, fps=10.6, box=36.8, mask=34.1,
         ckpt="fast_mask_rcnn_r50_fpn_1x_20181010-e030a38f.pth"),
    _row("fast_rcnn", "r50", "2x", "mask", mem=5.3, train=0.504, fps=10.6, box=37.9, mask=34.8,
         ckpt="fast_mask_rcnn_r50_fpn_2x_20181010-5048cb03.pth"),
    _row("fast_rcnn", "r101-caffe", "1x", "mask", mem=8.6, train=0.607, fps=9.5, box=39.4,
         mask=36.1),
    _row("fast_rcnn", "r101", "1x", "mask", mem=9.0, train=0.656, fps=9.3, box=38.9, mask=35.8,
         ckpt="fast_mask_rcnn_r101_fpn_1x_20181129-2273fa9b.pth"),
    _row("fast_rcnn", "r101", "2x", "mask", mem=9.0, train=0.656, fps=9.3, box=39.9, mask=36.4,
         ckpt="fast_mask_rcnn_r101_fpn_2x_20181129-bf63ec5e.pth"),
)  # fmt: skip

# ### RetinaNet
RETINANET = (
    _row("retinanet", "r50-caffe", "1x", mem=6.7, train=0.468, fps=9.4, box=35.8),
    _row("retinanet", "r50", "1x", mem=6.9, train=0.496, fps=9.1, box=35.6,
         ckpt="retinanet_r50_fpn_1x_20181125-3d3c2142.pth"),
    _row("retinanet", "r50", "2x", mem=6.9, train=0.496, fps=9.1, box=36.5,
         ckpt="retinanet_r50_fpn_2x_20181125-e0dbec97.pth"),
    _row("retinanet", "r101-caffe", "1x", mem=9.2, train=0.614, fps=8.2, box=37.8),
    _row("retinanet", "r101", "1x", mem=9.6, train=0.643, fps=8.1, box=37.7,
         ckpt="retinanet_r101_fpn_1x_20181129-f738a02f.pth"),
    _row("retinanet", "r101", "2x", mem=9.6, train=0.643, fps=8.1, box=38.1,
         ckpt="retinanet_r101_fpn_2x_20181129-f654534b.pth"),
    _row("retinanet", "x101-32x4d", "1x", mem=10.8, train=0.792, fps=6.7, box=38.7,
         ckpt="retinanet_x101_32x4d_fpn_1x_20181218-c140fb82.pth"),
    _row("retinanet", "x101-32x4d", "2x", mem=10.8, train=0.792, fps=6.7, box=39.3,
         ckpt="retinanet_x101_32x4d_fpn_2x_20181218-605dcd0a.pth"),
    _row("retinanet", "x101-64x4d", "1x", mem=14.6, train=1.128, fps=5.3, box=40.0,
         ckpt="retinanet_x101_64x4d_fpn_1x_20181218-2f6f778b.pth"),
    _row("retinanet", "x101-64x4d", "2x", mem=14.6, train=1.128, fps=5.3, box=39.6,
         ckpt="retinanet_x101_64x4d_fpn_2x_20181218-2f598dc5.pth"),
)  # fmt: skip

# ### Cascade R-CNN
# The X-101 20e checkpoints carry "2x" in their file names; the table says 20e and the names
# are kept as published.
CASCADE_RCNN = (
    _row("cascade_rcnn", "r50-caffe", "1x", mem=5.0, train=0.592, fps=8.1, box=40.3),
    _row("cascade_rcnn", "r50", "1x", mem=5.5, train=0.622, fps=8.0, box=40.3,
         ckpt="cascade_rcnn_r50_fpn_1x_20181123-b1987c4a.pth"),
    _row("cascade_rcnn", "r50", "20e", mem=5.5, train=0.622, fps=8.0, box=41.1,
         ckpt="cascade_rcnn_r50_fpn_20e_20181123-db483a09.pth"),
    _row("cascade_rcnn", "r101-caffe", "1x", mem=8.5, train=0.731, fps=7.0, box=42.2),
    _row("cascade_rcnn", "r101", "1x", mem=8.7, train=0.766, fps=6.9, box=42.1,
         ckpt="cascade_rcnn_r101_fpn_1x_20181129-d64ebac7.pth"),
    _row("cascade_rcnn", "r101", "20e", mem=8.7, train=0.766, fps=6.9, box=42.6,
         ckpt="cascade_rcnn_r101_fpn_20e_20181129-b46dcede.pth"),
    _row("cascade_rcnn", "x101-32x4d", "1x", mem=10.6, train=0.902, fps=5.7, box=43.5,
         ckpt="cascade_rcnn_x101_32x4d_fpn_1x_20181218-941c0925.pth"),
    _row("cascade_rcnn", "x101-32x4d", "20e", mem=10.6, train=0.902, fps=5.7, box=44.1,
         ckpt="cascade_rcnn_x101_32x4d_fpn_2x_20181218-28f73c4c.pth"),
    _row("cascade_rcnn", "x101-64x4d", "1x", mem=14.1, train=1.251, fps=4.6, box=44.6,
         ckpt="cascade_rcnn_x101_64x4d_fpn_1x_20181218-e2dc376a.pth"),
    _row("cascade_rcnn", "x101-64x4d", "20e", mem=14.1, train=1.251, fps=4.6, box=44.8,
         ckpt="cascade_rcnn_x101_64x4d_fpn_2x_20181218-5add321e.pth"),
)  # fmt: skip

# ### Cascade Mask R-CNN
# X-101-64x4d was trained on 16 GPUs with 1 image each (the table's notes).
CASCADE_MASK_RCNN = (
    _row("cascade_mask_rcnn", "r50-caffe", "1x", mem=7.5, train=0.880, fps=5.8, box=41.0,
         mask=35.6),
    _row("cascade_mask_rcnn", "r50", "1x", mem=7.6, train=0.910, fps=5.7, box=41.3, mask=35.7,
         ckpt="cascade_mask_rcnn_r50_fpn_1x_20181123-88b170c9.pth"),
    _row("cascade_mask_rcnn", "r50", "20e", mem=7.6, train=0.910, fps=5.7, box=42.4, mask=36.6,
         ckpt="cascade_mask_rcnn_r50_fpn_20e_20181123-6e0c9713.pth"),
    _row("cascade_mask_rcnn", "r101-caffe", "1x", mem=10.5, train=1.024, fps=5.3, box=43.1,
         mask=37.3),
    _row("cascade_mask_rcnn", "r101", "1x", mem=10.9, train=1.055, fps=5.2, box=42.7, mask=37.1,
         ckpt="cascade_mask_rcnn_r101_fpn_1x_20181129-64f00602.pth"),
    _row("cascade_mask_rcnn", "r101", "20e", mem=10.9, train=1.055, fps=5.2, box=43.4,
         mask=37.6, ckpt="cascade_mask_rcnn_r101_fpn_20e_20181129-cb85151d.pth"),
    _row("cascade_mask_rcnn", "x101-32x4d", "1x", mem=12.67, train=1.181, fps=4.2, box=44.4,
         mask=38.3, ckpt="cascade_mask_rcnn_x101_32x4d_fpn_1x_20181218-1d944c89.pth"),
    _row("cascade_mask_rcnn", "x101-32x4d", "20e", mem=12.67, train=1.181, fps=4.2, box=44.9,
         mask=38.7, ckpt="cascade_mask_rcnn_x101_32x4d_fpn_20e_20181218-761a3473.pth"),
    _row("cascade_mask_rcnn", "x101-64x4d", "1x", mem=10.87, train=1.125, fps=3.6, box=45.5,
         mask=39.2, ckpt="cascade_mask_rcnn_x101_64x4d_fpn_1x_20181218-85953a91.pth",
         gpus=16, imgs_per_gpu=1),
    _row("cascade_mask_rcnn", "x101-64x4d", "20e", mem=10.87, train=1.125, fps=3.6, box=45.8,
         mask=39.5, ckpt="cascade_mask_rcnn_x101_64x4d_fpn_20e_20181218-630773a7.pth",
         gpus=16, imgs_per_gpu=1),
)  # fmt: skip

# ### SSD (COCO); inference speed at batch size 1 and 8
SSD_COCO = (
    _row("ssd300", "vgg16", "120e", mem=3.5, train=0.286, fps=22.9, fps8=29.2, box=25.7,
         ckpt="ssd300_coco_vgg16_caffe_120e_20181221-84d7110b.pth"),
    _row("ssd512", "vgg16", "120e", mem=6.3, train=0.458, fps=17.3, fps8=21.2, box=29.3,
         ckpt="ssd512_coco_vgg16_caffe_120e_20181221-d48b0be8.pth"),
)  # fmt: skip

# ### SSD (PASCAL VOC); "box AP" here is VOC2007 test mAP at IoU 0.5
SSD_VOC = (
    _row("ssd300", "vgg16", "240e", "voc", mem=1.2, train=0.189, fps=40.1, fps8=58.0, box=77.8,
         ckpt="ssd300_voc_vgg16_caffe_240e_20181221-2f05dd40.pth"),
    _row("ssd512", "vgg16", "240e", "voc", mem=2.9, train=0.261, fps=28.1, fps8=36.2, box=80.4,
         ckpt="ssd512_voc_vgg16_caffe_240e_20181221-7652ee18.pth"),
)  # fmt: skip

# ### Group Normalization (GN): "(d)" Detectron-converted weights -> "gn",
# "(c)" contributed weights -> "gn-contrib". The checkpoints' "20180113" dates are as published.
GN = (
    _row("mask_rcnn", "r50", "2x", "gn", mem=7.2, train=0.806, fps=5.4, box=39.9, mask=36.1,
         ckpt="mask_rcnn_r50_fpn_gn_2x_20180113-86832cf2.pth"),
    _row("mask_rcnn", "r50", "3x", "gn", mem=7.2, train=0.806, fps=5.4, box=40.2, mask=36.5,
         ckpt="mask_rcnn_r50_fpn_gn_3x_20180113-8e82f48d.pth"),
    _row("mask_rcnn", "r101", "2x", "gn", mem=9.9, train=0.970, fps=4.8, box=41.6, mask=37.1,
         ckpt="mask_rcnn_r101_fpn_gn_2x_20180113-9598649c.pth"),
    _row("mask_rcnn", "r101", "3x", "gn", mem=9.9, train=0.970, fps=4.8, box=41.7, mask=37.3,
         ckpt="mask_rcnn_r101_fpn_gn_3x_20180113-a14ffb96.pth"),
    _row("mask_rcnn", "r50", "2x", "gn-contrib", mem=7.2, train=0.806, fps=5.4, box=39.7,
         mask=35.9, ckpt="mask_rcnn_r50_fpn_gn_contrib_2x_20180113-ec93305c.pth"),
    _row("mask_rcnn", "r50", "3x", "gn-contrib", mem=7.2, train=0.806, fps=5.4, box=40.1,
         mask=36.2, ckpt="mask_rcnn_r50_fpn_gn_contrib_3x_20180113-9d230cab.pth"),
)  # fmt: skip

# ### Deformable Convolution v2: Conv column -> "dconv-c3-c5" / "mdconv-c3-c5",
# Pool column -> "dpool" / "mdpool"
DCN = (
    _row("faster_rcnn", "r50", "1x", "dconv-c3-c5", mem=3.9, train=0.594, fps=10.2, box=40.0,
         ckpt="dcn/faster_rcnn_dconv_c3-c5_r50_fpn_1x_20190125-e41688c9.pth"),
    _row("faster_rcnn", "r50", "1x", "mdconv-c3-c5", mem=3.7, train=0.598, fps=10.0, box=40.3,
         ckpt="dcn/faster_rcnn_mdconv_c3-c5_r50_fpn_1x_20190125-1b768045.pth"),
    _row("faster_rcnn", "r50", "1x", "dpool", mem=4.6, train=0.714, fps=8.7, box=37.9,
         ckpt="dcn/faster_rcnn_dpool_r50_fpn_1x_20190125-f4fc1d70.pth"),
    _row("faster_rcnn", "r50", "1x", "mdpool", mem=5.2, train=0.769, fps=8.2, box=38.1,
         ckpt="dcn/faster_rcnn_mdpool_r50_fpn_1x_20190125-473d0f3d.pth"),
    _row("faster_rcnn", "r101", "1x", "dconv-c3-c5", mem=5.8, train=0.811, fps=8.0, box=42.1,
         ckpt="dcn/faster_rcnn_dconv_c3-c5_r101_fpn_1x_20190125-a7e31b65.pth"),
    _row("faster_rcnn", "x101-32x4d", "1x", "dconv-c3-c5", mem=7.1, train=1.126, fps=6.6,
         box=43.5, ckpt="dcn/faster_rcnn_dconv_c3-c5_x101_32x4d_fpn_1x_20190201-6d46376f.pth"),
    _row("mask_rcnn", "r50", "1x", "dconv-c3-c5", mem=4.5, train=0.712, fps=7.7, box=41.1,
         mask=37.2, ckpt="dcn/mask_rcnn_dconv_c3-c5_r50_fpn_1x_20190125-4f94ff79.pth"),
    _row("mask_rcnn", "r50", "1x", "mdconv-c3-c5", mem=4.5, train=0.712, fps=7.7, box=41.4,
         mask=37.4, ckpt="dcn/mask_rcnn_mdconv_c3-c5_r50_fpn_1x_20190125-c5601dc3.pth"),
    _row("mask_rcnn", "r101", "1x", "dconv-c3-c5", mem=6.4, train=0.939, fps=6.5, box=43.2,
         mask=38.7, ckpt="dcn/mask_rcnn_dconv_c3-c5_r101_fpn_1x_20190125-decb6db5.pth"),
    _row("cascade_rcnn", "r50", "1x", "dconv-c3-c5", mem=4.4, train=0.660, fps=7.6, box=44.1,
         ckpt="dcn/cascade_rcnn_dconv_c3-c5_r50_fpn_1x_20190125-dfa53166.pth"),
    _row("cascade_rcnn", "r101", "1x", "dconv-c3-c5", mem=6.3, train=0.881, fps=6.8, box=45.1,
         ckpt="dcn/cascade_rcnn_dconv_c3-c5_r101_fpn_1x_20190125-aaa877cc.pth"),
    _row("cascade_mask_rcnn", "r50", "1x", "dconv-c3-c5", mem=6.6, train=0.942, fps=5.7,
         box=44.5, mask=38.3,
         ckpt="dcn/cascade_mask_rcnn_dconv_c3-c5_r50_fpn_1x_20190125-09d8a443.pth"),
    _row("cascade_mask_rcnn", "r101", "1x", "dconv-c3-c5", mem=8.5, train=1.156, fps=5.1,
         box=45.8, mask=39.5,
         ckpt="dcn/cascade_mask_rcnn_dconv_c3-c5_r101_fpn_1x_20190125-0d62c190.pth"),
)  # fmt: skip

# Every row, in the document's order of tables.
ALL: tuple[ZooEntry, ...] = (
    RPN
    + FASTER_RCNN
    + MASK_RCNN
    + FAST_RCNN
    + RETINANET
    + CASCADE_RCNN
    + CASCADE_MASK_RCNN
    + SSD_COCO
    + SSD_VOC
    + GN
    + DCN
)
