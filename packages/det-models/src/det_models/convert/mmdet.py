"""The 2019 zoo's released checkpoints (mmdetection v0.6 key layout) -> our models' keys.

mmdetection v0.6 key -> det-models key:
- backbone.* (GN rows: gn1/gn2/gn3; DCN: layerX.Y.conv2_offset)
    -> backbone.* (bn1/bn2/bn3; conv2.conv_offset)
- neck.lateral_convs.N.conv / .gn
    -> neck.lateral_convs.N (GN: .conv / .gn)
- neck.fpn_convs.N.conv (N >= levels: the extra convs)
    -> neck.output_convs.N / neck.extra_convs.M
- rpn_head.rpn_conv / rpn_cls / rpn_reg
    -> rpn.conv / rpn.cls / rpn.reg
- bbox_head[.S].shared_convs.N / shared_fcs.N / fc_cls / fc_reg
    -> roi_head.bbox_head(s.S).convs.N / fcs.N / cls / reg
- mask_head[.S].convs.N.conv / upsample / conv_logits
    -> roi_head.mask_head(s.S).convs.N / deconv / logits
- bbox_roi_extractor.roi_layers.N.offset_fc / mask_fc
    -> roi_head.bbox_extractor.layers.N.offset_fc / mask_fc
- bbox_head.cls_convs.N / reg_convs.N / retina_cls / retina_reg (RetinaNet: plain convs in
  v0.6; later mmdetection wraps them as .N.conv, also accepted)
    -> head.cls_tower.2N / reg_tower.2N / cls / reg
- bbox_head.cls_convs.N / reg_convs.N (SSD)
    -> head.cls.N / head.reg.N

The softmax classifiers (R-CNN fc_cls, SSD cls_convs) have background at index 0 followed by the
80 (20) classes; ours have it last, so its row moves. The class-specific fc_reg and the mask
conv_logits also carry a background class at index 0, which we do not have: its outputs are
dropped. RetinaNet's sigmoid classifier has no background column and maps one to one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from det_heads import MMDET_V06, SSDAnchorGenerator
from det_models.convert.common import Converted, background_last, drop_first, rename, unwrap
from det_models.zoo.configs import GN_VARIANTS, model_config
from det_models.zoo.entry import ZooEntry

_BACKBONE_GN = re.compile(r"^backbone\.(.*\.)?gn(\d)\.")
_BACKBONE_DCN_OFFSET = re.compile(r"^(backbone\.layer\d\.\d+\.)conv2_offset\.")
_FPN = re.compile(r"^neck\.(lateral_convs|fpn_convs)\.(\d+)\.(conv|gn)\.(.+)$")
_RPN = {"rpn_conv": "conv", "rpn_cls": "cls", "rpn_reg": "reg"}
_ROI_HEAD = re.compile(r"^(bbox_head|mask_head)\.(?:(\d+)\.)?(.+)$")
_BOX_LAYER = re.compile(r"^(shared_fcs|shared_convs)\.(\d+)\.(.+)$")
_MASK_CONV = re.compile(r"^convs\.(\d+)\.(conv|gn)\.(.+)$")
_EXTRACTOR = re.compile(r"^bbox_roi_extractor\.roi_layers\.(\d+)\.((?:offset|mask)_fc\..+)$")
_RETINA = re.compile(r"^bbox_head\.(cls_convs|reg_convs)\.(\d+)\.(?:conv\.)?(weight|bias)$")
_SSD = re.compile(r"^bbox_head\.(cls_convs|reg_convs)\.(\d+)\.(.+)$")


# Top-level module names of the 2019 detectors' heads; ours are rpn, roi_head and head.
_MMDET_HEADS = ("rpn_head.", "bbox_head.", "mask_head.")


def is_mmdet_layout(state_dict: Mapping) -> bool:
    """Whether a state dict (or a checkpoint holding one) has the 2019 zoo's key layout."""
    return any(k.startswith(_MMDET_HEADS) for k in unwrap(state_dict))


def from_mmdet(state_dict: Mapping, zoo_entry: ZooEntry) -> Converted:
    """Converts a 2019 zoo checkpoint (mmdetection v0.6 layout) for the model of zoo_entry.

    Args:
        state_dict: the checkpoint's state dict, or the whole checkpoint ({"state_dict": ...,
            "meta": ...}) as torch.load returns it.
        zoo_entry: the zoo row the checkpoint belongs to (zoo.entry(...)).

    Returns:
        Converted(state_dict with our keys, unused source keys, conventions MMDET_V06). The
        state dict loads strictly into zoo.build(*zoo_entry.key); the 2019 code's detections
        need the model built with those conventions: zoo.build(*zoo_entry.key,
        conventions=MMDET_V06), as Detector.from_zoo and zoo.load_pretrained do.
    """
    if not isinstance(zoo_entry, ZooEntry):
        raise TypeError(f"zoo_entry must be a ZooEntry, got {type(zoo_entry).__name__}")
    config = model_config(zoo_entry)
    family = config.family
    gn = zoo_entry.variant in GN_VARIANTS
    fpn_levels = 3 if family == "retinanet" else 4
    ssd_anchors = _ssd_anchors(config.dense.input_size) if family == "ssd" else ()

    def rule(key: str, value: Tensor) -> tuple[str, Tensor] | None:
        if key.startswith("backbone."):
            if gn:
                key = _BACKBONE_GN.sub(lambda m: f"backbone.{m[1] or ''}bn{m[2]}.", key)
            return _BACKBONE_DCN_OFFSET.sub(r"\1conv2.conv_offset.", key), value
        if m := _FPN.match(key):
            kind, n, part, rest = m[1], int(m[2]), m[3], m[4]
            if kind == "fpn_convs" and n >= fpn_levels:
                return f"neck.extra_convs.{n - fpn_levels}.{rest}", value
            name = "lateral_convs" if kind == "lateral_convs" else "output_convs"
            return f"neck.{name}.{n}." + (f"{part}.{rest}" if gn else rest), value
        if key.startswith("rpn_head."):
            layer, _, rest = key.removeprefix("rpn_head.").partition(".")
            return (f"rpn.{_RPN[layer]}.{rest}", value) if layer in _RPN else None
        if m := _EXTRACTOR.match(key):
            return f"roi_head.bbox_extractor.layers.{m[1]}.{m[2]}", value
        if family == "retinanet":
            return _retina(key, value)
        if family == "ssd":
            return _ssd(key, value, ssd_anchors)
        if m := _ROI_HEAD.match(key):
            return _roi(m[1], m[2], m[3], value, gn)
        return None

    converted = rename(unwrap(state_dict), rule)
    converted.conventions = MMDET_V06
    return converted


def _roi(head: str, stage: str | None, rest: str, value: Tensor, gn: bool):
    prefix = f"roi_head.{head}" + (f"s.{stage}" if stage is not None else "")
    if head == "bbox_head":
        if m := _BOX_LAYER.match(rest):
            return f"{prefix}.{'fcs' if m[1] == 'shared_fcs' else 'convs'}.{m[2]}.{m[3]}", value
        if rest.startswith("fc_cls."):
            return f"{prefix}.cls.{rest[7:]}", background_last(value)
        if rest.startswith("fc_reg."):
            # Class-specific regression has 4 (C + 1) outputs, background's first.
            class_specific = value.shape[0] % 4 == 0 and value.shape[0] > 4
            return f"{prefix}.reg.{rest[7:]}", drop_first(value, 4) if class_specific else value
        return None
    if m := _MASK_CONV.match(rest):
        return f"{prefix}.convs.{m[1]}." + (f"{m[2]}.{m[3]}" if gn else m[3]), value
    if rest.startswith("upsample."):
        return f"{prefix}.deconv.{rest[9:]}", value
    if rest.startswith("conv_logits."):
        return f"{prefix}.logits.{rest[12:]}", drop_first(value, 1)
    return None


def _retina(key: str, value: Tensor):
    if m := _RETINA.match(key):
        tower = "cls_tower" if m[1] == "cls_convs" else "reg_tower"
        # Our towers are Sequential(conv, ReLU, conv, ReLU, ...).
        return f"head.{tower}.{2 * int(m[2])}.{m[3]}", value
    for source, target in (
        ("bbox_head.retina_cls.", "head.cls."),
        ("bbox_head.retina_reg.", "head.reg."),
    ):
        if key.startswith(source):
            return target + key[len(source) :], value
    return None


def _ssd(key: str, value: Tensor, anchors: tuple[int, ...]):
    if not (m := _SSD.match(key)):
        return None
    level = int(m[2])
    if m[1] == "reg_convs":
        return f"head.reg.{level}.{m[3]}", value
    return f"head.cls.{level}.{m[3]}", background_last(value, anchors[level])


def _ssd_anchors(input_size: int) -> tuple[int, ...]:
    return tuple(SSDAnchorGenerator(input_size).num_anchors)
