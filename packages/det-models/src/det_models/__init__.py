"""Detector families and the 2019 mmdetection model zoo.

What other packages use of det-models is exported here; its submodules are its own
business (docs/design.md). In short:

- the zoo (`zoo`): every row of the 2019 zoo by name, with its reference figures,
  checkpoint addresses and the schedule and data settings of its original config;
- the typed configs (`ModelConfig`, `DataConfig`, `ScheduleConfig`, `RunConfig`, ... with
  `replace_path`, `apply_overrides`, `to_plain` / `from_plain`) and `build_model`;
- checkpoints: `model_from_checkpoint` (a run's checkpoint rebuilt from its run record),
  `read_checkpoint`, `CheckpointError`;
- `Detector`, inference on file paths, numpy arrays or tensors with the row's test-time
  preprocessing (`preprocess`: per image `preprocess_image`, on the image's device, which
  det-engine's evaluation pipeline calls too, then `pad_batch`; training batches:
  `normalize_batch` on their device); `init_backbone` /
  `find_backbone_weights`, a built detector's backbone set to the ImageNet weights its
  config names (as a training run starts);
- export (`export_detector`, `ExportableDetector`, `check_onnx_exportable`,
  `paste_mask_probs`, `mask_paste_style`), the batch at fixed shapes of a step captured as a
  CUDA graph (`static_batch`, `StaticBatch`, `gt_bucket`, `NotCapturableError`), the padded
  size buckets of a data config (`size_buckets`, `data_buckets`, `inference_buckets`,
  `bucket_of`), inference captured as CUDA graphs (`GraphedDetector`, also
  `Detector(..., cuda_graph=True)`), what a capture reads from outside it
  (`InputsFromOutside`, `capture_graph`) and the converters of other codebases' weights
  (`from_mmdet`, `is_mmdet_layout`, `from_torchvision`, `torchvision_config`).
"""

from det_models import zoo
from det_models.backbone_weights import (
    LoadReport,
    WeightsMismatchError,
    WeightsNotFoundError,
    find_backbone_weights,
    init_backbone,
)
from det_models.buckets import bucket_of, data_buckets, inference_buckets, size_buckets
from det_models.builder import build_model
from det_models.capture import InputsFromOutside, capture_graph
from det_models.checkpoint import CheckpointError, model_from_checkpoint, read_checkpoint
from det_models.config import (
    CASCADE_STAGES_2019,
    CONVENTION_PRESETS,
    BackboneConfig,
    DataConfig,
    DenseHeadConfig,
    ModelConfig,
    NeckConfig,
    OverrideError,
    ProposalConfig,
    RoIConfig,
    RoIStageConfig,
    RPNConfig,
    RunConfig,
    SamplerConfig,
    ScheduleConfig,
    SSDAugment,
    ZooConfig,
    apply_overrides,
    from_plain,
    parse_override,
    replace_path,
    to_plain,
)
from det_models.convert import from_mmdet, from_torchvision, is_mmdet_layout, torchvision_config
from det_models.export import (
    ExportableDetector,
    ExportError,
    check_onnx_exportable,
    export_detector,
    mask_paste_style,
    paste_mask_probs,
)
from det_models.graphed_detector import GraphedDetector
from det_models.predict import Detector, preprocess
from det_models.preprocessing import normalize_batch, pad_batch, preprocess_image
from det_models.static_batch import NotCapturableError, StaticBatch, gt_bucket, static_batch

__version__ = "0.1.0"

__all__ = [
    "CASCADE_STAGES_2019",
    "CONVENTION_PRESETS",
    "BackboneConfig",
    "CheckpointError",
    "DataConfig",
    "DenseHeadConfig",
    "Detector",
    "ExportError",
    "ExportableDetector",
    "GraphedDetector",
    "InputsFromOutside",
    "LoadReport",
    "ModelConfig",
    "NeckConfig",
    "NotCapturableError",
    "OverrideError",
    "ProposalConfig",
    "RPNConfig",
    "RoIConfig",
    "RoIStageConfig",
    "RunConfig",
    "SSDAugment",
    "SamplerConfig",
    "ScheduleConfig",
    "StaticBatch",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "ZooConfig",
    "__version__",
    "apply_overrides",
    "bucket_of",
    "build_model",
    "capture_graph",
    "check_onnx_exportable",
    "data_buckets",
    "export_detector",
    "find_backbone_weights",
    "from_mmdet",
    "from_plain",
    "from_torchvision",
    "gt_bucket",
    "inference_buckets",
    "init_backbone",
    "is_mmdet_layout",
    "mask_paste_style",
    "model_from_checkpoint",
    "normalize_batch",
    "pad_batch",
    "parse_override",
    "paste_mask_probs",
    "preprocess",
    "preprocess_image",
    "read_checkpoint",
    "replace_path",
    "size_buckets",
    "static_batch",
    "to_plain",
    "torchvision_config",
    "zoo",
]
