"""The shape classes of det_ops._C: built by keyword with every field required."""

import numpy as np
import pytest
from cuda_devices import emulated_module

from det_ops import _C

# One value per field, all different, so that two swapped fields would show.
FIELDS = {
    "RoIAlignShape": {
        "batch": 2,
        "channels": 3,
        "height": 5,
        "width": 7,
        "num_rois": 11,
        "pooled_h": 13,
        "pooled_w": 17,
        "sampling_ratio": 19,
        "spatial_scale": 0.25,
        "aligned": 2,
    },
    "RoIPoolShape": {
        "batch": 2,
        "channels": 3,
        "height": 5,
        "width": 7,
        "num_rois": 11,
        "pooled_h": 13,
        "pooled_w": 17,
        "spatial_scale": 0.125,
    },
    "DeformConvGeometry": {
        "batch": 2,
        "channels": 3,
        "height": 5,
        "width": 7,
        "offset_groups": 11,
        "kernel_h": 13,
        "kernel_w": 17,
        "stride_h": 19,
        "stride_w": 23,
        "pad_h": 29,
        "pad_w": 31,
        "dilation_h": 37,
        "dilation_w": 41,
        "out_h": 43,
        "out_w": 47,
    },
    "DeformRoIPoolShape": {
        "batch": 2,
        "channels": 3,
        "height": 5,
        "width": 7,
        "num_rois": 11,
        "pooled_h": 13,
        "pooled_w": 17,
        "sampling_ratio": 19,
        "spatial_scale": 0.25,
        "gamma": 0.1,
        "aligned": 1,
    },
}
CLASSES = sorted(FIELDS)


@pytest.mark.parametrize("name", CLASSES)
def test_every_field_round_trips(name):
    fields = FIELDS[name]
    shape = getattr(_C, name)(**fields)
    assert {field: getattr(shape, field) for field in fields} == fields
    assert repr(shape) == f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"
    for field in fields:
        setattr(shape, field, 1)
        assert getattr(shape, field) == 1


@pytest.mark.parametrize("name", CLASSES)
def test_a_missing_field_is_an_error(name):
    fields = dict(FIELDS[name])
    del fields["width"]
    with pytest.raises(TypeError, match="missing field 'width'"):
        getattr(_C, name)(**fields)


@pytest.mark.parametrize("name", CLASSES)
def test_a_misspelt_field_is_an_error(name):
    fields = dict(FIELDS[name])
    fields["hieght"] = fields.pop("height")
    with pytest.raises(TypeError, match="missing field 'height'"):
        getattr(_C, name)(**fields)
    fields["height"] = 5
    with pytest.raises(TypeError, match="unknown field 'hieght'"):
        getattr(_C, name)(**fields)


@pytest.mark.parametrize("name", CLASSES)
def test_positional_fields_are_an_error(name):
    with pytest.raises(TypeError):
        getattr(_C, name)(*FIELDS[name].values())


@pytest.mark.parametrize("name", CLASSES)
def test_a_float_for_an_integer_field_is_an_error(name):
    fields = dict(FIELDS[name], channels=3.0)
    with pytest.raises(TypeError, match="field 'channels' must be an integer"):
        getattr(_C, name)(**fields)
    shape = getattr(_C, name)(**FIELDS[name])
    with pytest.raises(TypeError):
        shape.channels = 3.5


def test_a_kernel_rejects_a_tuple_for_a_shape():
    x = np.zeros((1, 1, 4, 4), np.float32)
    rois = np.array([[0, 0, 0, 3, 3]], np.float32)
    out = np.zeros((1, 1, 2, 2), np.float32)
    shape = tuple(FIELDS["RoIPoolShape"].values())
    with pytest.raises(TypeError):
        _C.cpu.roi_align_forward(0, x.ctypes.data, rois.ctypes.data, shape, out.ctypes.data)


def test_the_emulated_module_takes_the_cpu_modules_shapes():
    """det_ops builds shapes with _C and hands them to _C_emulated in the CUDA tests."""
    emulated = emulated_module()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    rois = np.array([[0, 1.0, 2.0, 7.5, 8.0], [1, 0.0, 0.5, 10.0, 6.0]], np.float32)

    def forward(kernel, shape):
        out = np.zeros((2, 3, 4, 5), np.float32)
        kernel(0, x.ctypes.data, rois.ctypes.data, shape, out.ctypes.data)
        return out

    def emulated_forward(dtype, *args):  # device 0, stream 0
        emulated.cuda.roi_align_forward(0, 0, dtype, *args)

    fields = dict(
        batch=2,
        channels=3,
        height=9,
        width=11,
        num_rois=2,
        pooled_h=4,
        pooled_w=5,
        sampling_ratio=2,
        spatial_scale=1.0,
        aligned=1,
    )
    expected = forward(_C.cpu.roi_align_forward, _C.RoIAlignShape(**fields))
    assert np.abs(expected).sum() > 0
    np.testing.assert_allclose(
        forward(emulated_forward, _C.RoIAlignShape(**fields)), expected, rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(
        forward(_C.cpu.roi_align_forward, emulated.RoIAlignShape(**fields)),
        expected,
        rtol=0,
        atol=0,
    )
