import copy
import math

import pytest
import torch

from det_heads.anchors import AnchorGenerator, RetinaAnchorGenerator, SSDAnchorGenerator


def test_fpn_anchor_counts_and_positions_hand_computed():
    gen = AnchorGenerator(strides=(4, 8), scales=(8,), ratios=(0.5, 1.0, 2.0))
    level0, level1 = gen.grid_anchors([(2, 3), (1, 2)])
    assert gen.num_anchors == [3, 3]
    assert level0.shape == (2 * 3 * 3, 4) and level1.shape == (1 * 2 * 3, 4)
    # stride 4, scale 8: base 32; ratio 0.5 (h/w): w = 32 / sqrt(.5) = 45.25, h = 22.63
    w, h = 32 / math.sqrt(0.5), 32 * math.sqrt(0.5)
    torch.testing.assert_close(level0[0], torch.tensor([-w / 2, -h / 2, w / 2, h / 2]))
    torch.testing.assert_close(level0[1], torch.tensor([-16.0, -16.0, 16.0, 16.0]))
    # location (y=1, x=2) is the 6th location; its ratio-1 anchor is centred at (8, 4).
    torch.testing.assert_close(level0[5 * 3 + 1], torch.tensor([8 - 16.0, 4 - 16.0, 24.0, 20.0]))
    # stride 8: square anchor of 64 at x = 8.
    torch.testing.assert_close(level1[3 + 1], torch.tensor([8 - 32.0, -32.0, 40.0, 32.0]))


def test_fpn_default_areas_are_32_to_512_squared():
    gen = AnchorGenerator()
    areas = [float((b[1, 2] - b[1, 0]) * (b[1, 3] - b[1, 1])) for b in gen.base_anchors]
    assert areas == pytest.approx([32.0**2, 64.0**2, 128.0**2, 256.0**2, 512.0**2])
    for base in gen.base_anchors:
        w, h = base[:, 2] - base[:, 0], base[:, 3] - base[:, 1]
        torch.testing.assert_close(h / w, torch.tensor([0.5, 1.0, 2.0]))


def test_center_offset_moves_anchor_centres():
    gen = AnchorGenerator(strides=(16,), scales=(1,), ratios=(1,), center_offset=0.5)
    (anchors,) = gen.grid_anchors([(1, 2)])
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    torch.testing.assert_close(centres, torch.tensor([[8.0, 8.0], [24.0, 8.0]]))


def test_retina_octave_scales():
    gen = RetinaAnchorGenerator()
    assert gen.num_anchors == [9] * 5 and gen.strides == (8, 16, 32, 64, 128)
    base = gen.base_anchors[0]
    square = base[3:6]  # ratio 1, three scales
    sides = square[:, 2] - square[:, 0]
    torch.testing.assert_close(sides, torch.tensor([32.0, 32 * 2 ** (1 / 3), 32 * 2 ** (2 / 3)]))


def test_ssd300_sizes_and_anchor_counts():
    gen = SSDAnchorGenerator(300)
    assert gen.min_sizes == (21, 45, 99, 153, 207, 261)
    assert gen.max_sizes == (45, 99, 153, 207, 261, 315)
    assert gen.num_anchors == [4, 6, 6, 6, 4, 4]
    sizes = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
    total = sum(a.shape[0] for a in gen.grid_anchors(sizes))
    assert total == 8732  # the SSD paper's count
    level0 = gen.base_anchors[0]
    wh = torch.stack([level0[:, 2] - level0[:, 0], level0[:, 3] - level0[:, 1]], 1)
    big = math.sqrt(21 * 45)
    r2 = math.sqrt(2)
    expected = torch.tensor([[21, 21], [big, big], [21 * r2, 21 / r2], [21 / r2, 21 * r2]])
    torch.testing.assert_close(wh, expected.float())
    last = gen.grid_anchors(sizes)[-1]
    torch.testing.assert_close((last[:, :2] + last[:, 2:]) / 2, torch.full((4, 2), 150.0))


def test_ssd512_sizes():
    gen = SSDAnchorGenerator(512)
    assert gen.min_sizes == (20, 51, 133, 215, 296, 378, 460)
    assert gen.max_sizes == (51, 133, 215, 296, 378, 460, 542)
    assert gen.num_anchors == [4, 6, 6, 6, 6, 4, 4]


def test_valid_flags_padding_and_border():
    gen = AnchorGenerator(strides=(8,), scales=(2,), ratios=(1,))
    # image 16x20 padded to 32x32; 4x4 feature map; 16 px anchors centred at 8 * x
    (flags,) = gen.valid_flags([(4, 4)], pad_shape=(24, 24), img_shape=(16, 20))
    grid = flags.reshape(4, 4)
    assert grid[:3, :3].all() and not grid[3].any() and not grid[:, 3].any()
    (flags,) = gen.valid_flags([(4, 4)], pad_shape=(24, 24), img_shape=(16, 20), allowed_border=0)
    grid = flags.reshape(4, 4)
    # x1 = 8x - 8 >= 0 needs x >= 1; x2 = 8x + 8 < 20 needs x <= 1; y likewise with 16: y < 1
    expected = torch.zeros(4, 4, dtype=torch.bool)
    assert torch.equal(grid, expected)
    (flags,) = gen.valid_flags([(4, 4)], pad_shape=(24, 24), img_shape=(16, 20), allowed_border=8)
    grid = flags.reshape(4, 4)
    expected[0:2, 0:3] = True  # x1 >= -8 always; x2 < 28 -> x <= 2; y2 < 24 -> y <= 1
    assert torch.equal(grid, expected)


def test_wrong_number_of_levels_raises():
    with pytest.raises(ValueError, match="feature sizes"):
        AnchorGenerator().grid_anchors([(4, 4)])


def test_anchors_and_flags_are_made_once_per_feature_size():
    gen = AnchorGenerator(strides=(4, 8))
    first = gen.grid_anchors([(4, 6), (2, 3)])
    again = gen.grid_anchors([(4, 6), (2, 3)])
    assert all(a is b for a, b in zip(first, again, strict=True))
    other = gen.grid_anchors([(5, 6), (3, 3)])
    assert other[0].shape[0] == 5 * 6 * 3
    flags = gen.valid_flags([(4, 6), (2, 3)], (16, 24), (16, 20), 0)
    assert flags[0] is gen.valid_flags([(4, 6), (2, 3)], (16, 24), (16, 20), 0)[0]
    copied = copy.deepcopy(gen)  # a copy starts with nothing cached
    assert torch.equal(copied.grid_anchors([(4, 6), (2, 3)])[0], first[0])
