"""An allow-list unpickler: pickles of numpy arrays and plain containers, and nothing else.

``pickle.load`` calls whatever a file names (``os.system``, ``subprocess.Popen``,
``builtins.eval``, a class's ``__reduce__``), so a .pkl handed out by someone else can run
code on the machine that opens it. The files this project reads as pickles hold only data:
Detectron's Caffe2 weights (a dict of numpy arrays, written by Python 2) and the 2019
zoo's proposal files (a list of numpy arrays). This module loads those and refuses every
other global the moment the pickle names it, before anything it names is called.

Allowed (see :data:`ALLOWED_GLOBALS`): numpy's array, dtype and scalar reconstruction under
both ``numpy.core`` (numpy 1) and ``numpy._core`` (numpy 2) module names; the builtin
containers and scalars; ``collections.OrderedDict``; and ``_codecs.encode`` with the
``latin1`` codec only, which Python 3 pickles of protocol 0-2 use to write bytes.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import io
import os
import pickle
from collections import OrderedDict
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

_BUILTINS = (dict, list, tuple, set, frozenset, int, float, complex, bool, str, bytes, bytearray)
_NUMPY = {
    "multiarray._reconstruct": ("multiarray", "_reconstruct"),
    "multiarray.scalar": ("multiarray", "scalar"),
    "numeric._frombuffer": ("numeric", "_frombuffer"),
}

ALLOWED_GLOBALS: frozenset[str] = frozenset(
    {"numpy.ndarray", "numpy.dtype", "collections.OrderedDict", "_codecs.encode"}
    | {f"{core}.{name}" for core in ("numpy.core", "numpy._core") for name in _NUMPY}
    | {f"builtins.{kind.__name__}" for kind in _BUILTINS}
)
"""The globals (``module.name``) a pickle may name; Python 2's ``__builtin__`` counts as
``builtins``."""


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle named a global outside :data:`ALLOWED_GLOBALS`; nothing it named was called.

    Attributes:
        source: the file (or description) that was being read.
        refused: the refused global as ``module.name`` (or "a persistent id").
    """

    def __init__(self, source: str, refused: str) -> None:
        self.source = source
        self.refused = refused
        super().__init__(
            f"{source}: refused to unpickle {refused}: only numpy arrays, dtypes and scalars, "
            f"builtin containers and scalars and collections.OrderedDict are loaded, since a "
            f"pickle that names anything else can run code when it is opened. Nothing was "
            f"run. If the file comes from a source you trust and really holds other objects, "
            f"convert it to .npz or .json yourself first."
        )


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol 0-2 pickles use it (bytes as latin1 text), no other codec."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(
            f"_codecs.encode with codec {encoding!r}: only latin1 is used to pickle bytes"
        )
    return codecs.encode(text, "latin1", errors)


@cache
def _resolved() -> dict[str, Any]:
    """Each allowed global name -> the object it loads as."""
    try:  # numpy 2 renamed numpy.core to numpy._core; files name either
        from numpy import _core as core
    except ImportError:  # numpy 1 before 1.26
        from numpy import core  # type: ignore[no-redef]
    table: dict[str, Any] = {
        "numpy.ndarray": np.ndarray,
        "numpy.dtype": np.dtype,
        "collections.OrderedDict": OrderedDict,
        "_codecs.encode": _latin1_encode,
    }
    for name, (module, attribute) in _NUMPY.items():
        found = getattr(getattr(core, module), attribute)
        table[f"numpy.core.{name}"] = table[f"numpy._core.{name}"] = found
    table.update({f"builtins.{kind.__name__}": kind for kind in _BUILTINS})
    assert set(table) == ALLOWED_GLOBALS
    return table


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """The Python 3 name of a global a Python 2 pickle names (``__builtin__.set`` ->
    ``builtins.set``), as pickle's ``fix_imports`` maps it; other names unchanged."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class _AllowListUnpickler(pickle.Unpickler):
    """pickle.Unpickler whose globals come from the allow-list; persistent ids refused."""

    def __init__(self, file: BinaryIO, source: str, encoding: str) -> None:
        super().__init__(file, encoding=encoding)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        # Called for every global the stream names (GLOBAL, STACK_GLOBAL, INST, OBJ's class,
        # extension codes), before REDUCE / BUILD can call it.
        module, name = _python3_name(module, name)
        found = _resolved().get(f"{module}.{name}")
        if found is None:
            raise UnsafePickleError(self._source, f"{module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(self._source, f"a persistent id ({type(pid).__name__})")


def _unpickle(file: BinaryIO, source: str, encoding: str) -> Any:
    try:
        return _AllowListUnpickler(file, source, encoding).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(
            f"{source}: not a readable pickle of arrays and containers "
            f"({type(err).__name__}: {err})"
        ) from err


def load(path: str | os.PathLike, *, what: str = "pickle file", encoding: str = "latin1") -> Any:
    """Unpickles a file of numpy arrays and builtin containers, refusing any other global.

    Args:
        path: the .pkl / .pickle file.
        what: what the file is, for messages ("Detectron weights", "proposals file").
        encoding: how Python 2 ``str`` objects are decoded; latin1 (the default) gives
            numpy arrays written by Python 2 their bytes back, as numpy documents.

    Returns:
        The unpickled object (dicts, lists, tuples, numpy arrays, scalars, ...).

    Raises:
        FileNotFoundError: no such file (naming it).
        UnsafePickleError: the pickle names a global outside :data:`ALLOWED_GLOBALS`; it is
            raised when that name is read, so nothing it names has been called.
        ValueError: the file is not a readable pickle (truncated, not a pickle), naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    with path.open("rb") as file:
        return _unpickle(file, f"{what} {path}", encoding)


def loads(data: bytes, *, what: str = "pickle data", encoding: str = "latin1") -> Any:
    """:func:`load` for bytes in memory; ``what`` names them in messages."""
    return _unpickle(io.BytesIO(data), what, encoding)


def load_npy(path: str | os.PathLike, *, what: str = ".npy file") -> np.ndarray:
    """Reads a .npy file; an object array (its payload is a pickle) goes through the allow-list.

    Plain arrays are read by ``np.load(allow_pickle=False)``. An object array, such as
    ``np.save`` writes for a dict or a list of arrays of different lengths, is unpickled by
    the same allow-list as :func:`load`.

    Args:
        path: the .npy file.
        what: what the file is, for messages.

    Returns:
        The array (for a saved dict, a 0-d object array: ``.item()`` gives the dict).

    Raises:
        FileNotFoundError: no such file.
        UnsafePickleError: an object array whose pickle names a refused global.
        ValueError: not a .npy file, or an unreadable one, naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    source = f"{what} {path}"
    fmt = np.lib.format
    with path.open("rb") as file:
        try:
            version = fmt.read_magic(file)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(file)
            elif version == (2, 0):
                shape, _, dtype = fmt.read_array_header_2_0(file)
            else:  # 3.0: utf-8 field names, never used for object arrays
                shape, dtype = None, None
        except ValueError as err:
            raise ValueError(f"{source}: not a .npy file ({err})") from err
        if dtype is None or not dtype.hasobject:
            file.seek(0)
            try:
                return np.load(file, allow_pickle=False)
            except ValueError as err:
                raise ValueError(f"{source}: unreadable .npy file ({err})") from err
        array = _unpickle(file, source, "latin1")
    if not isinstance(array, np.ndarray) or array.shape != tuple(shape):
        raise ValueError(
            f"{source}: its header announces an object array of shape {tuple(shape)} but "
            f"its data is {type(array).__name__} {getattr(array, 'shape', '')}"
        )
    return array
