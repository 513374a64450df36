"""Samplers that keep landscape and portrait images in separate batches.

Batches of images with one orientation pad far less than mixed ones. Both samplers yield
image indices in chunks of ``samples_per_gpu`` (use them with a DataLoader whose
batch_size is samples_per_gpu): every chunk holds one orientation, each group padded to a
whole number of chunks by repeating some of its own indices.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def _group_flags(dataset) -> np.ndarray:
    flags = getattr(dataset, "aspect_ratio_flags", None)
    if flags is None:
        raise TypeError(
            f"{type(dataset).__name__} has no aspect_ratio_flags (uint8 per image, 1 when "
            "width > height); the group samplers need it"
        )
    return np.asarray(flags, dtype=np.int64)


class GroupSampler(Sampler[int]):
    """Shuffled indices in chunks of samples_per_gpu that never mix orientations.

    Args:
        dataset: has ``aspect_ratio_flags`` (uint8 ndarray[len]).
        samples_per_gpu: the batch size the chunks are made for.
        seed: the shuffling seed; the order also depends on set_epoch.
    """

    def __init__(self, dataset, samples_per_gpu: int = 2, seed: int = 0) -> None:
        if samples_per_gpu < 1:
            raise ValueError(f"GroupSampler: samples_per_gpu must be >= 1, got {samples_per_gpu}")
        self.flags = _group_flags(dataset)
        self.samples_per_gpu = samples_per_gpu
        self.seed = seed
        self.epoch = 0
        sizes = np.bincount(self.flags, minlength=2)
        self.num_samples = int(sum(math.ceil(s / samples_per_gpu) * samples_per_gpu for s in sizes))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        chunks = _group_chunks(self.flags, self.samples_per_gpu, 1, g)
        order = torch.randperm(len(chunks), generator=g).tolist()
        return iter([int(i) for c in order for i in chunks[c]])


def _group_chunks(
    flags: np.ndarray, samples_per_gpu: int, num_replicas: int, g: torch.Generator
) -> list[np.ndarray]:
    """Each group shuffled, padded to a multiple of samples_per_gpu * num_replicas with its
    own indices, and cut into chunks of samples_per_gpu."""
    chunks = []
    step = samples_per_gpu * num_replicas
    for flag in (0, 1):
        members = np.flatnonzero(flags == flag)
        if len(members) == 0:
            continue
        members = members[torch.randperm(len(members), generator=g).numpy()]
        extra = math.ceil(len(members) / step) * step - len(members)
        # Repeat the group as often as needed (a group may be smaller than one step).
        members = np.concatenate([members, np.resize(members, extra)])
        chunks.extend(np.split(members, len(members) // samples_per_gpu))
    return chunks


class DistributedGroupSampler(Sampler[int]):
    """GroupSampler's chunks dealt out across the processes of a distributed run.

    Every rank builds the same padded, shuffled list of chunks (same seed and epoch) and
    takes its own contiguous share: shares are disjoint positions of that list, all of
    the same length, and together cover every image at least once.

    Args:
        dataset: has ``aspect_ratio_flags``.
        samples_per_gpu: images per batch on one process.
        num_replicas: the number of processes (default: the world size).
        rank: this process's rank (default: from torch.distributed).
        seed: the shuffling seed, the same on every rank.
    """

    def __init__(
        self,
        dataset,
        samples_per_gpu: int = 2,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
    ) -> None:
        if num_replicas is None or rank is None:
            import torch.distributed as dist

            if not dist.is_available() or not dist.is_initialized():
                raise ValueError(
                    "DistributedGroupSampler: pass num_replicas and rank, or initialise "
                    "torch.distributed first"
                )
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedGroupSampler: rank {rank} not in [0, {num_replicas})")
        if samples_per_gpu < 1:
            raise ValueError(
                f"DistributedGroupSampler: samples_per_gpu must be >= 1, got {samples_per_gpu}"
            )
        self.flags = _group_flags(dataset)
        self.samples_per_gpu = samples_per_gpu
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.epoch = 0
        step = samples_per_gpu * num_replicas
        sizes = np.bincount(self.flags, minlength=2)
        self.total_size = int(sum(math.ceil(s / step) * step for s in sizes))
        self.num_samples = self.total_size // num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Reshuffles for a new epoch; call it on every rank with the same epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        chunks = _group_chunks(self.flags, self.samples_per_gpu, self.num_replicas, g)
        order = torch.randperm(len(chunks), generator=g).tolist()
        indices = [int(i) for c in order for i in chunks[c]]
        start = self.rank * self.num_samples
        return iter(indices[start : start + self.num_samples])
