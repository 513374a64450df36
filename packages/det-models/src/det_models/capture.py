"""A CUDA graph's capture: what it reads that was made before it, kept alive with the graph
(`InputsFromOutside`), and the capture itself (`capture_graph`), which the captured training
step (det_engine.cuda_graph) and inference (det_models.graphed_detector) share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from det_models.static_batch import NotCapturableError


class InputsFromOutside(TorchDispatchMode):
    """Records the tensors a capture reads that were made before it (cached anchors and
    constants, parameters, the static batch): the graph reads their memory on every replay,
    so its owner keeps them (``read``) alive, whatever a cache does with them later.

    >>> outside = InputsFromOutside()  # doctest: +SKIP
    >>> with torch.cuda.graph(graph), outside:  # doctest: +SKIP
    ...     outputs = step(batch)
    >>> kept = list(outside.read.values())  # doctest: +SKIP
    """

    def __init__(self) -> None:
        super().__init__()
        self.made: set[int] = set()
        self.read: dict[int, Tensor] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs, _ = tree_flatten((args, kwargs))
        for x in inputs:
            if isinstance(x, Tensor) and id(x) not in self.made:
                self.read.setdefault(id(x), x)
        outputs, _ = tree_flatten(out)
        self.made.update(id(x) for x in outputs if isinstance(x, Tensor))
        return out


def capture_graph(
    run: Callable[[], Any],
    *,
    stream: torch.cuda.Stream,
    pool: Any,
    what: str,
    generators: Sequence[torch.Generator] = (),
) -> tuple[torch.cuda.CUDAGraph, Any, list[Tensor]]:
    """``run()`` captured into a new CUDA graph on ``stream``, its memory from ``pool``.

    The device is synchronised first (once per capture: the warm-up's work is done), the
    ``generators`` (CUDA generators ``run`` draws from) are registered so each replay draws
    new numbers.

    Returns:
        (the graph, what ``run`` returned (the graph's outputs, overwritten by each replay),
        the tensors made before the capture that it reads, to keep with the graph).

    Raises:
        NotCapturableError: the capture failed; the message names ``what`` and torch's error.
    """
    graph = torch.cuda.CUDAGraph()
    for generator in generators:
        graph.register_generator_state(generator)
    torch.cuda.synchronize(stream.device)
    outside = InputsFromOutside()
    try:
        with (
            torch.cuda.graph(graph, pool=pool, stream=stream, capture_error_mode="thread_local"),
            outside,
        ):
            outputs = run()
    except RuntimeError as err:
        raise NotCapturableError(f"capture of {what} failed: {err}") from err
    return graph, outputs, list(outside.read.values())


__all__ = ["InputsFromOutside", "capture_graph"]
