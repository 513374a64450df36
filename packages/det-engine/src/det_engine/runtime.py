"""Process setup shared by every command: seeds, the device and its mixed precision."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

AMP_CHOICES = ("auto", "bf16", "fp16", "off")


class DeviceError(RuntimeError):
    """The device asked for is not there, or cannot run what was asked of it."""


def set_seed(seed: int) -> None:
    """Seeds python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str | None) -> torch.device:
    """``name`` ("cpu" or "cuda"), default CUDA when available; under torchrun cuda:LOCAL_RANK.

    Raises:
        DeviceError: ``name`` is "cuda" and no CUDA device is available.
        ValueError: ``name`` is neither "cpu", "cuda" nor None.
    """
    if name not in (None, "cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or None, got {name!r}")
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("device 'cuda': no CUDA device is available; use the CPU")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def has_fast_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (CPU: AVX512-BF16 or AMX tiles), so that
    autocast to bf16 speeds training up instead of emulating it."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_amp(choice: str | None, device: torch.device) -> str | None:
    """The autocast dtype a run uses on ``device``: None (float32), "bf16" or "fp16".

    Args:
        choice: "off" or None (float32), "bf16", "fp16" (with a GradScaler; CUDA only), or
            "auto" (bf16 where the device computes it natively, see :func:`has_fast_bf16`,
            else float32).

    Raises:
        ValueError: ``choice`` is not one of those, or is "fp16" on a device other than CUDA.
    """
    if choice not in (None, *AMP_CHOICES):
        raise ValueError(f"amp must be one of {', '.join(AMP_CHOICES)} or None, got {choice!r}")
    if choice == "fp16" and device.type != "cuda":
        raise ValueError("amp 'fp16' needs a CUDA device; on the CPU use 'bf16'")
    if choice == "auto":
        return "bf16" if has_fast_bf16(device) else None
    return None if choice in (None, "off") else choice
