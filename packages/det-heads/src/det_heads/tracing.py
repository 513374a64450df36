"""Size tests that torch.export can trace, on every torch the heads support (>= 2.4).

In an exported graph the number of boxes left after a threshold or NMS is a size known only
when the graph runs; Python cannot branch on it. ``guard_or_false(c)`` is c when it is
known and False otherwise (``guard_or_true`` True): a branch so guarded takes, in the graph,
the path that is right for every size. torch < 2.7, which has none of this, exports none of
these graphs, and the tests are plain bools there.
"""

from __future__ import annotations

import torch

try:
    from torch.fx.experimental.symbolic_shapes import guard_or_false, guard_or_true
except ImportError:  # torch < 2.7

    def guard_or_false(condition: bool) -> bool:
        return bool(condition)

    def guard_or_true(condition: bool) -> bool:
        return bool(condition)


def is_exporting() -> bool:
    """Whether torch.export is tracing the code that asks (never on torch < 2.5)."""
    check = getattr(torch.compiler, "is_exporting", None)
    return bool(check and check())


def is_tracing() -> bool:
    """Whether torch.export or torch.compile is tracing the code that asks: tensors made
    now are a graph's, not values to keep for later calls."""
    compiling = getattr(torch.compiler, "is_compiling", None)
    return is_exporting() or bool(compiling and compiling())


class DeviceCache:
    """Tensors made once per key (sizes, device, dtype ...) and reused by later calls: the
    constants and anchors of a step, so that it copies nothing from the host each time.

    The newest ``capacity`` keys are kept. Nothing is kept while tracing (``is_tracing``)
    or for keys holding a symbolic size.
    """

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self._items: dict = {}

    def get(self, key, make):
        """The value cached under key, else make() (cached when allowed)."""
        if is_tracing() or _symbolic(key):
            return make()
        if key in self._items:
            value = self._items.pop(key)
        else:
            value = make()
            if len(self._items) >= self.capacity:
                self._items.pop(next(iter(self._items)))
        self._items[key] = value  # newest last
        return value

    def __getstate__(self) -> dict:
        return {"capacity": self.capacity, "_items": {}}  # copies start empty

    def __deepcopy__(self, memo) -> DeviceCache:
        return DeviceCache(self.capacity)


def _symbolic(key) -> bool:
    if isinstance(key, tuple):
        return any(_symbolic(k) for k in key)
    return isinstance(key, (torch.SymInt, torch.SymFloat))


__all__ = ["DeviceCache", "guard_or_false", "guard_or_true", "is_exporting", "is_tracing"]
