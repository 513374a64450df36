"""torch.fx symbolic tracing: a public op called on fx Proxies becomes one graph node.

``torch.fx.symbolic_trace`` calls a module's forward with Proxy objects that hold no
values, so the ops' argument checks cannot run on them. Each public op first asks
`traced_call`; while tracing it records the call itself as a ``call_function`` node
(the traced graph then calls the op, checks included, on real tensors), and otherwise
returns None at the cost of one dictionary look-up: no Proxy can exist before
torch.fx is imported, and torch is never imported here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def _find_proxy(values: Any, proxy_type: type) -> Any:
    for value in values:
        if isinstance(value, proxy_type):
            return value
        if isinstance(value, (list, tuple)):
            found = _find_proxy(value, proxy_type)
            if found is not None:
                return found
    return None


def traced_call(fn: Callable, args: tuple, kwargs: dict[str, Any]) -> Any:
    """The Proxy of fn(*args, **kwargs) as a graph node when an argument is an fx
    Proxy (or a list or tuple holding one); None otherwise."""
    fx = sys.modules.get("torch.fx")
    if fx is None:
        return None
    proxy = _find_proxy((*args, *kwargs.values()), fx.Proxy)
    if proxy is None:
        return None
    return proxy.tracer.create_proxy("call_function", fn, args, kwargs)
