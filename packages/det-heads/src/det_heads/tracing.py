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


__all__ = ["guard_or_false", "guard_or_true", "is_exporting"]
