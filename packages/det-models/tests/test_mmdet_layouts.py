"""from_mmdet against the real state-dict layouts of the 2019 zoo's checkpoints.

data/mmdet_v060_layouts.json holds, for every zoo row, the keys and shapes of
model.state_dict() of mmdetection v0.6.0's own model classes built from its configs: facts
about the checkpoint files, recorded once, independent of our converter and of the test helper
mmdet_layout.to_mmdet (our own inverse of the converter, checked here against the same facts).
"""

import json
from pathlib import Path

import pytest
import torch
from mmdet_layout import to_mmdet

from det_models import zoo
from det_models.convert import from_mmdet
from det_models.zoo.rows import ALL

_DATA = json.loads((Path(__file__).parent / "data" / "mmdet_v060_layouts.json").read_text())

# Source keys with no place in our models, each with the reason. None so far: every tensor of
# every 2019 layout is loaded.
NO_PLACE: dict[str, str] = {}


def _layout(layout: dict) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for part in layout["parts"]:
        shapes.update({k: tuple(v) for k, v in _DATA["parts"][part].items()})
    return shapes


LAYOUTS = {tuple(row): layout for layout in _DATA["layouts"] for row in layout["rows"]}


def _one_row_per_variant() -> list[tuple]:
    """The first row of each layout and variant (gn and gn-contrib share one layout).

    A layout's other rows differ from it in schedule only, or in caffe/pytorch style (strides,
    not parameters; the caffe rows have no released checkpoints).
    """
    rows: dict[tuple, tuple] = {}
    for i, layout in enumerate(_DATA["layouts"]):
        for row in map(tuple, layout["rows"]):
            rows.setdefault((i, row[3]), row)
    return list(rows.values())


ROWS = _one_row_per_variant()


def _meta_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Tensors without storage: shapes are all a key check needs, and r101/x101 stay cheap."""
    return {
        k: torch.empty(s, device="meta", dtype=torch.long if "num_batches" in k else torch.float)
        for k, s in shapes.items()
    }


def test_every_zoo_row_has_its_2019_layout():
    assert set(LAYOUTS) == {row.key for row in ALL}


@pytest.mark.parametrize("key", ROWS, ids=lambda k: "-".join(map(str, k)))
def test_2019_layout_converts_to_our_model(key):
    source = _layout(LAYOUTS[key])
    converted = from_mmdet({"state_dict": _meta_state(source), "meta": {}}, zoo.entry(*key))
    assert sorted(converted.unused) == sorted(k for k in NO_PLACE if k in source)
    with torch.device("meta"):
        ours = zoo.build(*key).state_dict()
    expected = {k: tuple(v.shape) for k, v in ours.items()}
    got = {k: tuple(v.shape) for k, v in converted.state_dict.items()}
    assert sorted(set(expected) - set(got)) == [], "missing"
    assert sorted(set(got) - set(expected)) == [], "unexpected"
    assert {k: s for k, s in got.items() if expected[k] != s} == {}, "shapes"
    # to_mmdet, the inverse that test_convert's value checks use, writes exactly this layout.
    written = {k: tuple(v.shape) for k, v in to_mmdet(ours, key).items()}
    assert written == {k: s for k, s in source.items() if "num_batches" not in k}


@pytest.mark.parametrize(
    "key",
    [
        ("retinanet", "r50", "1x", None),
        ("mask_rcnn", "r50", "2x", "gn"),
        ("ssd300", "vgg16", "240e", "voc"),
    ],
    ids=lambda k: "-".join(map(str, k)),
)
def test_2019_layout_of_zeros_loads_strictly(key):
    source = {
        k: torch.zeros(s, dtype=torch.long if "num_batches" in k else torch.float)
        for k, s in _layout(LAYOUTS[key]).items()
    }
    converted = from_mmdet(source, zoo.entry(*key))
    assert converted.unused == []
    result = zoo.build(*key).load_state_dict(converted.state_dict, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
