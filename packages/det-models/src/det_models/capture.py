"""What a CUDA graph capture reads that was made before it, kept alive with the graph."""

from __future__ import annotations

from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


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


__all__ = ["InputsFromOutside"]
