"""det_io.read_rgb: the one image decoder."""

import numpy as np
import pytest

from det_io import read_rgb


def test_a_png_decodes_to_its_pixels(tmp_path):
    from PIL import Image

    pixels = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    got = read_rgb(tmp_path / "a.png")
    assert got.dtype == np.uint8 and got.shape == (4, 5, 3)
    np.testing.assert_array_equal(got, pixels)


def test_a_grey_image_comes_back_as_rgb(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((3, 2), 7, np.uint8)).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "grey.png"), np.full((3, 2, 3), 7))


def test_a_missing_or_undecodable_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no such image file: .*gone\.jpg"):
        read_rgb(tmp_path / "gone.jpg")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(ValueError, match=r"cannot decode image file .*text\.jpg"):
        read_rgb(tmp_path / "text.jpg")
