"""Our state dicts written in mmdetection v0.6's key layout, independently of the converter."""

import re

import torch


def _with_background_first(weight, groups=1, rows=1):
    """Our rows (classes..., background last) -> mmdet's (background, classes...)."""
    w = weight.reshape(groups, -1, *weight.shape[1:])
    return torch.cat([w[:, -rows:], w[:, :-rows]], dim=1).reshape(weight.shape)


def _with_extra_background(weight, rows, groups=1):
    """Prepends `rows` made-up background outputs to each group (mmdet's fc_reg, conv_logits)."""
    w = weight.reshape(groups, -1, *weight.shape[1:])
    extra = torch.full_like(w[:, :rows], 7.0)
    return torch.cat([extra, w], dim=1).reshape(-1, *weight.shape[1:])


def to_mmdet(state, key):
    """Our state dict in mmdetection v0.6's layout, written independently of the converter."""
    family = key[0]
    gn = key[3] in ("gn", "gn-contrib")
    levels = 3 if family == "retinanet" else 4
    out = {}
    for k, v in state.items():
        if gn and k.startswith("backbone."):
            k = re.sub(r"\.bn(\d)\.", r".gn\1.", k)
        k = re.sub(r"^(backbone\.layer\d\.\d+\.)conv2\.conv_offset\.", r"\1conv2_offset.", k)
        if m := re.match(r"^neck\.(lateral|output|extra)_convs\.(\d+)\.(.+)$", k):
            kind, n, rest = m[1], int(m[2]), m[3]
            if not gn:
                rest = "conv." + rest
            name = {"lateral": "lateral_convs", "output": "fpn_convs", "extra": "fpn_convs"}[kind]
            k = f"neck.{name}.{n + levels if kind == 'extra' else n}.{rest}"
        k = re.sub(r"^rpn\.(conv|cls|reg)\.", r"rpn_head.rpn_\1.", k)
        k = re.sub(r"^roi_head\.bbox_extractor\.layers\.", "bbox_roi_extractor.roi_layers.", k)
        if m := re.match(r"^roi_head\.(bbox|mask)_heads?\.(?:(\d+)\.)?(.+)$", k):
            head, stage, rest = m[1], m[2], m[3]
            prefix = f"{head}_head." + (f"{stage}." if stage is not None else "")
            rest = re.sub(r"^fcs\.", "shared_fcs.", rest)
            if head == "bbox":
                rest = re.sub(r"^convs\.", "shared_convs.", rest)
            elif not gn:
                rest = re.sub(r"^convs\.(\d+)\.", r"convs.\1.conv.", rest)
            rest = re.sub(r"^cls\.", "fc_cls.", rest)
            rest = re.sub(r"^reg\.", "fc_reg.", rest)
            rest = re.sub(r"^deconv\.", "upsample.", rest)
            rest = re.sub(r"^logits\.", "conv_logits.", rest)
            if rest.startswith("fc_cls."):
                v = _with_background_first(v)
            elif rest.startswith("fc_reg.") and v.shape[0] > 4:
                v = _with_extra_background(v, 4)
            elif rest.startswith("conv_logits."):
                v = _with_extra_background(v, 1)
            k = prefix + rest
        if family == "retinanet" and (m := re.match(r"^head\.(cls|reg)_tower\.(\d+)\.(.+)$", k)):
            # v0.6's RetinaHead towers are plain convs (no ConvModule .conv).
            k = f"bbox_head.{m[1]}_convs.{int(m[2]) // 2}.{m[3]}"
        elif family == "retinanet":
            k = re.sub(r"^head\.(cls|reg)\.", r"bbox_head.retina_\1.", k)
        elif m := re.match(r"^head\.(cls|reg)\.(\d+)\.(.+)$", k):
            k = f"bbox_head.{m[1]}_convs.{m[2]}.{m[3]}"
            if m[1] == "cls":
                groups = v.shape[0] // 21 if key[3] == "voc" else v.shape[0] // 81
                v = _with_background_first(v, groups)
        out[k] = v.clone()
    return out
