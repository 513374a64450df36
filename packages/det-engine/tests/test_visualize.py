import numpy as np
import pytest
import torch
from PIL import Image

from det_engine.visualize import (
    class_color,
    draw_detections,
    read_rgb,
    save_detections,
    tile_images,
)

NAMES = ("circle", "square", "triangle")
GREY = 100


def _image(h=60, w=80):
    return np.full((h, w, 3), GREY, dtype=np.uint8)


def test_class_colors_are_fixed_and_distinct():
    colors = [class_color(i) for i in range(40)]
    assert colors == [class_color(i) for i in range(40)]
    assert len(set(colors)) == 40
    assert all(0 <= c <= 255 for color in colors for c in color)
    with pytest.raises(ValueError, match="label"):
        class_color(-1)


def test_box_edges_have_the_class_color_and_inside_stays():
    image = _image()
    result = {
        "boxes": torch.tensor([[20.0, 25.0, 60.0, 50.0]]),
        "scores": torch.tensor([0.9]),
        "labels": torch.tensor([1]),
    }
    out = draw_detections(image, result, NAMES, line_width=2)
    color = class_color(1)
    assert out.shape == image.shape and out.dtype == np.uint8
    # left, right and bottom edges (the caption strip sits above the top edge)
    for y, x in [(40, 20), (40, 21), (40, 60), (40, 59), (50, 40), (49, 40)]:
        assert tuple(out[y, x]) == color, (y, x)
    assert tuple(out[40, 40]) == (GREY,) * 3  # the box's inside
    assert tuple(out[40, 5]) == (GREY,) * 3  # outside
    # the caption: a strip of the class colour right above the box, with text in it
    strip = out[10:25, 20:40]
    assert (strip == color).all(axis=2).mean() > 0.4
    assert (strip != color).any(axis=2).any()  # the letters
    np.testing.assert_array_equal(image, _image())  # the input is not changed


def test_nothing_is_drawn_below_the_score_threshold():
    image = _image()
    result = {
        "boxes": np.array([[10.0, 10.0, 30.0, 30.0], [40.0, 20.0, 70.0, 55.0]]),
        "scores": np.array([0.29, 0.31]),
        "labels": np.array([0, 2]),
    }
    out = draw_detections(image, result, NAMES, score_thr=0.3)
    assert tuple(out[20, 10]) == (GREY,) * 3  # the 0.29 box is not drawn
    assert tuple(out[40, 40]) == class_color(2)
    changed = (out != GREY).any(axis=2)
    assert not changed[:, :39].any()
    assert (draw_detections(image, result, NAMES, score_thr=0.5) == image).all()


def test_masks_tint_only_masked_pixels():
    image = _image()
    mask = torch.zeros(1, 60, 80, dtype=torch.uint8)
    mask[0, 30:40, 30:45] = 1
    result = {
        "boxes": torch.tensor([[10.0, 10.0, 70.0, 55.0]]),
        "scores": torch.tensor([0.8]),
        "labels": torch.tensor([0]),
        "masks": mask,
    }
    out = draw_detections(image, result, NAMES, mask_alpha=0.5)
    expected = np.floor(0.5 * GREY + 0.5 * np.array(class_color(0)) + 0.5).astype(np.uint8)
    assert (out[30:40, 30:45] == expected).all()
    interior = out[15:50, 15:65].copy()
    interior[15:25, 15:30] = GREY  # blank out the mask: the rest of the inside is untouched
    assert (interior == GREY).all()


def test_proposals_without_labels_or_scores():
    result = {"boxes": np.array([[5.0, 5.0, 20.0, 20.0]])}
    out = draw_detections(_image(), result, [])
    assert tuple(out[12, 5]) == class_color(0)


def test_boxes_on_or_past_an_edge_draw_along_it():
    # An untrained model's boxes can lie on the border or past it (h 60, w 80).
    result = {"boxes": np.array([[10.0, 60.0, 30.0, 60.4], [80.0, 10.0, 85.0, 20.0]])}
    out = draw_detections(_image(), result, NAMES, line_width=1)
    changed = (out != GREY).any(axis=2)
    assert changed[59, 10:31].all() and changed[10:21, 79].all()
    changed[59, 10:31] = False
    changed[10:21, 79] = False
    assert not changed.any()


def test_bad_arguments_name_what_is_wrong():
    good = {"boxes": np.zeros((1, 4)), "scores": np.ones(1), "labels": np.zeros(1)}
    with pytest.raises(ValueError, match=r"image must be an \[H, W, 3\].*\(60, 80\)"):
        draw_detections(np.zeros((60, 80), np.uint8), good, NAMES)
    with pytest.raises(ValueError, match="image must have dtype uint8, got float32"):
        draw_detections(np.zeros((6, 8, 3), np.float32), good, NAMES)
    with pytest.raises(TypeError, match="image must be a numpy"):
        draw_detections(torch.zeros(6, 8, 3, dtype=torch.uint8), good, NAMES)
    with pytest.raises(ValueError, match=r"result\['boxes'\] must be \[N, 4\]"):
        draw_detections(_image(), {"boxes": np.zeros((2, 5))}, NAMES)
    with pytest.raises(ValueError, match=r"result\['scores'\] has 2 entries, 'boxes' has 1"):
        draw_detections(_image(), {**good, "scores": np.ones(2)}, NAMES)
    with pytest.raises(ValueError, match="label 3 but class_names has 3 names"):
        draw_detections(_image(), {**good, "labels": np.array([3])}, NAMES)
    with pytest.raises(ValueError, match=r"result\['masks'\] must be \[N, H, W\] = \[1, 60, 80\]"):
        draw_detections(_image(), {**good, "masks": np.zeros((1, 30, 40))}, NAMES)
    with pytest.raises(TypeError, match="class_names"):
        draw_detections(_image(), good, "circle")


def test_tile_and_save(tmp_path):
    a = np.zeros((20, 30, 3), np.uint8)
    b = np.full((10, 40, 3), 7, np.uint8)
    grid = tile_images([a, b, a], columns=2, gap=2)
    assert grid.shape == (2 * 20 + 2, 2 * 40 + 2, 3)
    assert (grid[:20, :30] == 0).all() and (grid[:20, 30:40] == 255).all()
    assert (grid[:10, 42:82] == 7).all() and (grid[10:20, 42:82] == 255).all()
    assert (grid[22:42, :30] == 0).all() and (grid[22:, 42:] == 255).all()
    with pytest.raises(ValueError, match=r"images\[1\] must be an \[H, W, 3\]"):
        tile_images([a, np.zeros((3, 3), np.uint8)])

    result = {"boxes": np.array([[2.0, 2.0, 20.0, 15.0]]), "scores": [0.9], "labels": [2]}
    path = save_detections(tmp_path / "out" / "det.png", _image(), result, NAMES)
    assert path == tmp_path / "out" / "det.png"
    with Image.open(path) as img:
        assert img.size == (80, 60) and img.format == "PNG"
    assert tuple(read_rgb(path)[10, 2]) == class_color(2)
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        read_rgb(tmp_path / "missing.png")
