"""The allow-list unpickler: data pickles load, pickles that would run code are refused
before anything runs."""

import io
import os
import pickle
import re
import struct
import subprocess
from collections import OrderedDict
from typing import ClassVar

import numpy as np
import pytest

from det_io import ALLOWED_GLOBALS, UnsafePickleError, load, load_npy, loads

PROTOCOLS = (0, 2, 4, 5)


class _Touch:
    """Unpickling it creates a file: the side effect the tests look for."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


class _Popen:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (subprocess.Popen, (["touch", self.path],))


class _Eval:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (eval, (f"open({self.path!r}, 'w').close()",))


class _Py2Pickler(pickle._Pickler):
    """Writes what Python 2's pickle wrote at protocol 2: every str (and the bytes of numpy
    arrays) as a byte string (BINSTRING), builtins under ``__builtin__``, numpy's functions
    under ``numpy.core``."""

    def save_str(self, obj):
        self._save_binstring(obj.encode("latin1"))

    def save_bytes(self, obj):
        self._save_binstring(obj)

    def _save_binstring(self, data):
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(data)

    dispatch: ClassVar[dict] = {**pickle._Pickler.dispatch, str: save_str, bytes: save_bytes}


def py2_pickle(obj) -> bytes:
    """``obj`` pickled the way Python 2 (cPickle, protocol 2) wrote Detectron's R-50.pkl."""
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"cnumpy._core.", b"cnumpy.core.")


def _blobs():
    rng = np.random.default_rng(0)
    return {
        "conv1_w": rng.standard_normal((4, 3, 2, 2)).astype(np.float32),
        "res_conv1_bn_s": np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32),
    }


def test_python2_detectron_weights_load(tmp_path):
    blobs = _blobs()
    data = py2_pickle({"blobs": blobs})
    # The fixture is a Python 2 pickle: byte strings, numpy.core names, no _codecs.
    assert b"cnumpy.core.multiarray\n_reconstruct" in data and b"_codecs" not in data
    assert pickle.SHORT_BINSTRING + bytes([7]) + b"conv1_w" in data
    path = tmp_path / "R-50.pkl"
    path.write_bytes(data)
    loaded = load(path, what="Detectron weights")
    assert sorted(loaded) == ["blobs"]
    assert sorted(loaded["blobs"]) == ["conv1_w", "res_conv1_bn_s"]
    for name, array in blobs.items():
        assert loaded["blobs"][name].dtype == np.float32
        np.testing.assert_array_equal(loaded["blobs"][name], array)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_data_pickles_of_every_protocol_load(protocol):
    arrays = [np.arange(10, dtype=np.float32).reshape(2, 5), np.zeros((0, 5), np.float32)]
    obj = {
        "list": arrays,  # the 2019 proposal files: a list of [K, 5] arrays
        "ordered": OrderedDict([("b", 1), ("a", 2.5)]),
        "scalars": (np.float32(1.5), np.int64(7), True, None, 1 + 2j, "text", b"\x00\xff"),
        "sets": ({1, 2}, frozenset({3})),
        "structured": np.array([(1, 2.0)], dtype=[("i", "<i4"), ("f", "<f8")]),
        "bytes": bytearray(b"ab"),
    }
    loaded = loads(pickle.dumps(obj, protocol=protocol))
    assert [a.shape for a in loaded["list"]] == [(2, 5), (0, 5)]
    np.testing.assert_array_equal(loaded["list"][0], arrays[0])
    assert isinstance(loaded["ordered"], OrderedDict) and list(loaded["ordered"]) == ["b", "a"]
    assert loaded["scalars"] == obj["scalars"]
    assert type(loaded["scalars"][0]) is np.float32
    assert loaded["sets"] == ({1, 2}, frozenset({3}))
    assert loaded["structured"].dtype == obj["structured"].dtype
    assert loaded["structured"]["f"][0] == 2.0
    assert loaded["bytes"] == bytearray(b"ab")


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("payload", "refused"),
    [(_Touch, "os.system"), (_Popen, "subprocess.Popen"), (_Eval, "builtins.eval")],
    ids=["os.system", "subprocess.Popen", "builtins.eval"],
)
def test_code_running_pickles_are_refused_before_running(tmp_path, protocol, payload, refused):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(payload(marker), protocol=protocol))
    with pytest.raises(UnsafePickleError) as info:
        load(path, what="proposals file")
    # os.system pickles as posix.system on Linux: the module the file names is reported.
    expected = "posix.system" if refused == "os.system" and os.name == "posix" else refused
    assert info.value.refused == expected
    message = str(info.value)
    assert f"proposals file {path}" in message and f"refused to unpickle {expected}" in message
    assert not marker.exists()
    # The same file run through pickle would have created the marker: the test can fail.
    if protocol == 2 and payload is _Touch:
        with path.open("rb") as f:
            pickle.load(f)
        assert marker.exists()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reduce_nested_in_a_dict_of_arrays_is_refused(tmp_path, protocol):
    marker = tmp_path / "ran"
    blobs = {**_blobs(), "meta": {"layers": [1, 2, {"hook": _Touch(marker)}]}}
    with pytest.raises(UnsafePickleError, match=r"(posix|nt)\.system"):
        loads(pickle.dumps({"blobs": blobs}, protocol=protocol), what="Detectron weights")
    assert not marker.exists()


def test_refusal_comes_before_the_refused_callable_runs():
    # A hand-written stream: the global is named, then called with REDUCE; the error must
    # come at the name. builtins.print would write to stdout if called.
    stream = b"cbuiltins\nprint\n(S'called'\ntR."
    with pytest.raises(UnsafePickleError, match=r"builtins\.print"):
        loads(stream)


def test_other_codecs_through_codecs_encode_are_refused():
    stream = b"c_codecs\nencode\n(Vabc\nVrot13\ntR."
    with pytest.raises(ValueError, match="only latin1"):
        loads(stream)
    assert loads(b"c_codecs\nencode\n(V\xe9\nVlatin1\ntR.") == b"\xe9"


def test_persistent_ids_are_refused():
    with pytest.raises(UnsafePickleError, match="persistent id"):
        loads(b"Pxyz\n.")


def test_not_a_pickle_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.pkl"
    path.write_bytes(pickle.dumps([np.zeros(3)], protocol=4)[:-10])
    with pytest.raises(ValueError, match=re.escape(f"proposals file {path}: not a readable")):
        load(path, what="proposals file")
    with pytest.raises(FileNotFoundError, match=r"proposals file .*missing\.pkl does not exist"):
        load(tmp_path / "missing.pkl", what="proposals file")


def test_allowed_globals_are_data_only():
    assert "builtins.eval" not in ALLOWED_GLOBALS and "os.system" not in ALLOWED_GLOBALS
    assert {"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct"} <= (
        ALLOWED_GLOBALS
    )
    assert len(ALLOWED_GLOBALS) == 22


def test_npy_plain_and_object_arrays(tmp_path):
    plain = tmp_path / "plain.npy"
    np.save(plain, np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(load_npy(plain), np.arange(6).reshape(2, 3))
    as_dict = tmp_path / "dict.npy"
    np.save(as_dict, {7: np.ones((2, 5), np.float32)}, allow_pickle=True)
    loaded = load_npy(as_dict, what="proposals file")
    assert loaded.shape == () and loaded.item()[7].shape == (2, 5)
    ragged = tmp_path / "ragged.npy"
    arrays = np.empty(2, dtype=object)
    arrays[0], arrays[1] = np.ones((1, 5), np.float32), np.ones((3, 5), np.float32)
    np.save(ragged, arrays, allow_pickle=True)
    assert [a.shape for a in load_npy(ragged)] == [(1, 5), (3, 5)]


def test_npy_object_array_with_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.npy"
    np.save(path, np.array({"x": _Touch(marker)}, dtype=object), allow_pickle=True)
    with pytest.raises(UnsafePickleError, match=re.escape(f"proposals file {path}: refused")):
        load_npy(path, what="proposals file")
    assert not marker.exists()


def test_npy_not_npy_is_a_clear_error(tmp_path):
    path = tmp_path / "x.npy"
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError, match=re.escape(f"{path}: not a .npy file")):
        load_npy(path)
