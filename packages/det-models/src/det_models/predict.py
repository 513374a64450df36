"""Inference on file paths, numpy arrays or tensors: `Detector.predict`.

Inputs are read here (files decoded by det_io, arrays and tensors checked) and made into the
row's test-time batch by `preprocess`, with det_models.preprocessing's per-image step (the
one the evaluation pipeline of det_engine.data calls too) on the model's device: resize,
normalise, pad to the row's size divisor, one meta dict per image as the detectors expect.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from det_io import read_rgb
from det_models.config import DataConfig
from det_models.graphed_detector import GraphedDetector, check_inference_capturable
from det_models.inference import prepare_for_inference, to_model_layout
from det_models.preprocessing import pad_batch, preprocess_image
from det_models.preprocessing import rescaled_size as rescaled_size  # where it used to live

ImageInput = Any  # str | os.PathLike | numpy.ndarray | Tensor


def _describe(image: Any, index: int) -> str:
    if isinstance(image, (str, os.PathLike)):
        return f"images[{index}] ({os.fspath(image)!r})"
    shape = getattr(image, "shape", None)
    dtype = getattr(image, "dtype", None)
    if shape is not None:
        return f"images[{index}] ({type(image).__name__} of shape {tuple(shape)}, dtype {dtype})"
    return f"images[{index}] ({type(image).__name__})"


def _decode_file(path: Path, name: str) -> Tensor:
    """uint8 Tensor[3, H, W] RGB of an image file, decoded by det_io.read_rgb (as det-data
    decodes it for training and evaluation)."""
    try:
        pixels = read_rgb(path)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{name}: {e}") from e
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from e
    return torch.from_numpy(pixels).permute(2, 0, 1)


def image_tensor(image: ImageInput, index: int = 0) -> Tensor:
    """One input as a Tensor[3, H, W] RGB on the 0-255 scale, in its own dtype: uint8 on
    the CPU for files and numpy arrays (the smallest copy to an accelerator); a tensor as it
    is (dtype and device), detached.

    Args:
        image: a file path; a numpy uint8 array [H, W, 3] RGB; or a Tensor[3, H, W], uint8 or
            floating point on the 0-255 scale, RGB.
        index: the input's position, for error messages.

    Raises:
        FileNotFoundError: a path that is not a file.
        ValueError: a file that cannot be decoded, or an array / tensor of the wrong shape or
            dtype; the message names the input.
        TypeError: any other kind of input.
    """
    name = _describe(image, index)
    if isinstance(image, (str, os.PathLike)):
        return _decode_file(Path(image), name)
    if isinstance(image, Tensor):
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"{name}: a tensor image must be [3, H, W] RGB")
        if image.dtype != torch.uint8 and not image.is_floating_point():
            raise ValueError(f"{name}: a tensor image must be uint8 or floating point (0..255)")
        if image.shape[1] == 0 or image.shape[2] == 0:
            raise ValueError(f"{name}: the image is empty")
        return image.detach()
    if type(image).__module__ == "numpy" and type(image).__name__ == "ndarray":
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{name}: a numpy image must be an [H, W, 3] RGB array")
        if str(image.dtype) != "uint8":
            raise ValueError(f"{name}: a numpy image must have dtype uint8")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"{name}: the image is empty")
        return torch.from_numpy(image.copy()).permute(2, 0, 1)
    raise TypeError(
        f"{name}: expected a file path, a numpy uint8 [H, W, 3] array or a Tensor[3, H, W]"
    )


def preprocess(
    images: Sequence[ImageInput],
    data: DataConfig,
    device: torch.device | str | None = None,
) -> tuple[Tensor, list[dict[str, Any]]]:
    """The test-time batch of a zoo row for some images: resized, normalised, padded.

    Each image is copied to ``device`` as it came (uint8 for files and arrays) and resized
    and normalised there by det_models.preprocessing.preprocess_image; on the CPU the batch
    is the same, bit for bit, whatever the device argument.

    Args:
        images: inputs as accepted by image_tensor.
        data: the row's data config (img_scale, keep_ratio, normalize, size_divisor).
        device: where the work is done and the batch is returned; None: the CPU.

    Returns:
        (images float[B, 3, H, W] on ``device``, metas): every image padded at the bottom
        and right to the batch's largest size (a multiple of size_divisor); one meta dict per
        image with image_id (its position), ori_shape, img_shape, pad_shape (h, w, 3),
        scale_factor (sx, sy, sx, sy) and flip False.
    """
    if len(images) == 0:
        raise ValueError("images: expected at least one image")
    device = torch.device("cpu") if device is None else torch.device(device)
    tensors, metas = [], []
    for i, image in enumerate(images):
        img, meta = preprocess_image(image_tensor(image, i).to(device), data)
        tensors.append(img)
        metas.append({"image_id": i, **meta})
    return pad_batch(tensors, data.size_divisor), metas


class Detector:
    """A detector with its test-time preprocessing: images in, detections in original pixels.

    Args:
        model: a detector of det_models.detectors (e.g. zoo.build(...)).
        data_config: the row's DataConfig (zoo.get(...).data): image scale, normalisation,
            padding.
        fast: prepare the model for inference in place (det_models.inference: frozen BN
            folded into the convs, channels_last weights); the detections are the same up to
            float rounding. Load weights before, not after: the folded backbone has no norm
            layers left.
        cuda_graph: run the model's forward as CUDA graphs captured per size bucket of the
            data config and batch size (det_models.graphed_detector.GraphedDetector): a
            Faster or Mask R-CNN on a CUDA device; what cannot be captured raises
            NotCapturableError here.

    >>> det = Detector.from_zoo("retinanet", "r50", "1x")  # doctest: +SKIP
    >>> det.predict("street.jpg")["boxes"]  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        data_config: DataConfig,
        *,
        fast: bool = True,
        cuda_graph: bool = False,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not isinstance(data_config, DataConfig):
            raise TypeError(
                f"data_config must be a DataConfig (zoo.get(...).data), got "
                f"{type(data_config).__name__}"
            )
        if cuda_graph:  # before the model is changed in place
            check_inference_capturable(model)
        self.model = prepare_for_inference(model) if fast else model.eval()
        self.data_config = data_config
        self.graphed = GraphedDetector(self.model, data_config) if cuda_graph else None

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, fast: bool = True) -> Detector:
        """The Detector of a training checkpoint (``python -m det_engine.train``, the
        quickstart): the model its run record describes, with its weights, and the test
        pipeline it was trained with.

        Raises:
            FileNotFoundError: no such file.
            det_models.checkpoint.CheckpointError: unreadable, no run record, or weights
                that do not fit.
        """
        from det_models.checkpoint import model_from_checkpoint

        model, run = model_from_checkpoint(path)
        return cls(model, run.data, fast=fast)

    @classmethod
    def from_zoo(
        cls,
        model: str,
        backbone: str,
        schedule: str,
        variant: str | None = None,
        num_classes: int | None = None,
        checkpoint: str | os.PathLike | Mapping[str, Tensor] | None = None,
        *,
        fast: bool = True,
    ) -> Detector:
        """The Detector of a zoo row, optionally with weights.

        Args:
            model, backbone, schedule, variant: the row's key (see zoo.names()).
            num_classes: object classes; default the row's dataset's.
            checkpoint: None (fresh weights), a state dict, or a .pth file holding one (or a
                checkpoint dict with "state_dict"). A state dict with det_models' keys is
                loaded as is; one with the 2019 head names (rpn_head, bbox_head, mask_head)
                is taken for the row's released mmdetection v0.6 checkpoint, converted with
                convert.from_mmdet and loaded into the row's model built with the 2019 box
                conventions, with the 2019 resize. Loading is strict.
            fast: as for Detector (applied after the weights are loaded).

        Raises:
            ValueError: unknown row (from the zoo).
            FileNotFoundError: a checkpoint path that does not exist.
            ValueError: a checkpoint that does not fit the model; the message names the first
                missing, unexpected and mis-shaped keys and the row.
        """
        from det_models import zoo
        from det_models.checkpoint import read_checkpoint
        from det_models.convert import is_mmdet_layout
        from det_models.convert.common import check_fits, unwrap

        data = zoo.get(model, backbone, schedule, variant).data
        net = zoo.build(model, backbone, schedule, variant, num_classes=num_classes)
        if checkpoint is None:
            return cls(net, data, fast=fast)
        name = "checkpoint"
        if isinstance(checkpoint, (str, os.PathLike)):
            path = Path(checkpoint)
            if not path.is_file():
                raise FileNotFoundError(f"checkpoint: no such file: {path}")
            name = f"checkpoint {path}"
            checkpoint = read_checkpoint(path)
        if not isinstance(checkpoint, Mapping):
            raise TypeError(
                f"checkpoint must be a path or a state dict, got {type(checkpoint).__name__}"
            )
        state = unwrap(checkpoint)
        if is_mmdet_layout(state):  # the row's released 2019 checkpoint
            net, config = zoo.load_released(
                state, model, backbone, schedule, variant, num_classes=num_classes, source=name
            )
            return cls(net, config.data, fast=fast)
        key = zoo.entry(model, backbone, schedule, variant).key
        check_fits(state, net, f"{name} (det_models keys, for zoo row {key})")
        net.load_state_dict(state, strict=True)
        return cls(net, data, fast=fast)

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters."""
        param = next(self.model.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    def preprocess(
        self,
        images: ImageInput | Sequence[ImageInput],
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, list[dict]]:
        """The batch (images, metas) predict feeds the model, made on ``device`` (None: the
        CPU; predict uses the model's)."""
        return preprocess(_as_list(images), self.data_config, device)

    def predict(
        self, images: ImageInput | Sequence[ImageInput]
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Detections of one image or a list of images.

        Args:
            images: one input or a list of them: file paths (decoded as RGB), numpy uint8
                arrays [H, W, 3] RGB, or Tensors[3, H, W] RGB (uint8, or float on 0..255).

        Returns:
            For one input its dict, for a list a list of dicts, on CPU: boxes float[N, 4]
            (x1, y1, x2, y2 in the original image's pixels), scores float[N], labels int64[N]
            (0..C-1) and, for mask models, masks uint8[N, H, W]. An RPN gives proposals
            (no labels).
        """
        single = not _is_list(images)
        self.model.eval()
        with torch.inference_mode():
            # The images go to the model's device as decoded (uint8) and are resized there.
            batch, metas = self.preprocess(images, self.device)
            forward = self.model if self.graphed is None else self.graphed
            results = forward(to_model_layout(batch, self.model), metas)
        results = [{k: v.cpu() for k, v in r.items()} for r in results]
        return results[0] if single else results


def _is_list(images: Any) -> bool:
    return isinstance(images, (list, tuple))


def _as_list(images: Any) -> list:
    return list(images) if _is_list(images) else [images]
