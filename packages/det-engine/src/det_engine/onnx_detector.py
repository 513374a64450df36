"""An exported ONNX detector run in onnxruntime on image files: :class:`OnnxDetector`.

The ONNX file of ``python -m det_engine.export --format onnx`` carries its row's test-time
preprocessing and class names (det_engine.onnx_export.deploy_metadata), so an image is all it
needs: the image is decoded as evaluation decodes it (det_data.read_image), resized,
normalised and padded as the row's pipeline does, the graph runs in onnxruntime, and the
detections come back in the original image's pixels (masks pasted into it)::

    detector = OnnxDetector("quickstart.onnx")
    detections = detector("demo.jpg")  # dict(boxes, scores, labels[, masks]), numpy arrays

The graph gets the image's size before padding and clips its boxes there, as the eager
model does, so the detections are ``det_models.Detector``'s up to float rounding.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from det_data import read_image
from det_engine.optional_deps import require
from det_models import DataConfig, from_plain, paste_mask_probs, preprocess


class OnnxDetector:
    """An exported ONNX detector in onnxruntime, with its row's preprocessing.

    Args:
        path: the .onnx file written by ``python -m det_engine.export --format onnx``.
        threads: onnxruntime intra-op threads (None: its default).

    Raises:
        MissingPackageError: onnxruntime is not installed (the message gives the pip command).
        FileNotFoundError: no such file.
        ValueError: the file lacks the metadata det_engine.export writes.
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None) -> None:
        require("onnxruntime", purpose="running an ONNX detector")
        import onnxruntime

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist; write it with python -m det_engine.export --format onnx"
            )
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        meta = self.session.get_modelmeta().custom_metadata_map
        if "det.data_config" not in meta:
            raise ValueError(
                f"{path} has no det.data_config metadata: export it with python -m "
                "det_engine.export, which records the row's preprocessing"
            )
        self.data_config: DataConfig = from_plain(json.loads(meta["det.data_config"]))
        self.class_names: list[str] | None = json.loads(meta.get("det.class_names", "null"))
        self.mask_paste: str | None = json.loads(meta.get("det.mask_paste", "null"))
        self.output_names = [o.name for o in self.session.get_outputs()]
        height, width = self.session.get_inputs()[0].shape[2:]
        # A graph exported without --dynamic takes one size, named by ints.
        self.input_size = (height, width) if isinstance(height, int) else None

    def __call__(self, image: Any) -> dict[str, np.ndarray]:
        """Detections of one image (a file path, an HWC uint8 RGB array or a CHW tensor):
        dict(boxes float32[N, 4] (x1, y1, x2, y2, original-image pixels), scores float32[N],
        labels int64[N][, masks uint8[N, H, W] in the original image])."""
        if isinstance(image, (str, os.PathLike)):
            image = read_image(image, torch.uint8)
        images, metas = preprocess([image], self.data_config)
        meta = metas[0]
        images = self._fit_input(images)
        image_sizes = np.array([meta["img_shape"][:2]], dtype=np.int64)
        feed = {"images": images.numpy(), "image_sizes": image_sizes}
        outputs = dict(zip(self.output_names, self.session.run(None, feed), strict=True))
        boxes = torch.from_numpy(outputs["boxes"])
        scale = torch.tensor(meta["scale_factor"], dtype=torch.float32)
        ori_h, ori_w = meta["ori_shape"][:2]
        boxes = boxes / scale
        limits = torch.tensor([ori_w, ori_h, ori_w, ori_h], dtype=torch.float32)
        boxes = torch.minimum(boxes.clamp(min=0), limits)
        result = {"boxes": boxes.numpy(), "scores": outputs["scores"]}
        if "labels" in outputs:
            result["labels"] = outputs["labels"]
        if "mask_probs" in outputs:
            masks = paste_mask_probs(
                torch.from_numpy(outputs["mask_probs"]), boxes, (ori_h, ori_w), self.mask_paste
            )
            result["masks"] = masks.numpy()
        return result

    def _fit_input(self, images: torch.Tensor) -> torch.Tensor:
        """The batch padded (bottom, right) to the graph's size when it takes only one."""
        if self.input_size is None:
            return images
        height, width = self.input_size
        if images.shape[2] > height or images.shape[3] > width:
            raise ValueError(
                f"the preprocessed image is {images.shape[2]} x {images.shape[3]}, larger than "
                f"the {height} x {width} this graph takes: export with --dynamic or with "
                "--img-size large enough"
            )
        return F.pad(images, (0, width - images.shape[3], 0, height - images.shape[2]))


__all__ = ["OnnxDetector"]
