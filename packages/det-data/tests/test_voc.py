import numpy as np
import pytest
import torch
from PIL import Image

from det_data.voc import VOC_CLASSES, VOCDataset

XML = """<annotation><size><width>{w}</width><height>{h}</height><depth>3</depth></size>
{objects}</annotation>"""
OBJ = """<object><name>{name}</name><difficult>{difficult}</difficult>
<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox>
</object>"""


def _write_voc(root, images):
    base = root / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (base / sub).mkdir(parents=True)
    for image_id, (w, h, objects) in images.items():
        objs = "".join(OBJ.format(name=n, difficult=d, b=b) for n, d, b in objects)
        (base / "Annotations" / f"{image_id}.xml").write_text(XML.format(w=w, h=h, objects=objs))
        Image.fromarray(np.zeros((h, w, 3), dtype=np.uint8)).save(
            base / "JPEGImages" / f"{image_id}.jpg"
        )
    (base / "ImageSets" / "Main" / "trainval.txt").write_text("\n".join(images) + "\n")


@pytest.fixture
def voc_root(tmp_path):
    _write_voc(
        tmp_path,
        {
            "000005": (60, 40, [("dog", 0, (11, 6, 30, 25)), ("chair", 1, (1, 1, 10, 10))]),
            "000007": (50, 50, [("person", 1, (5, 5, 20, 20))]),  # difficult only
            "000009": (50, 50, [("tvmonitor", 0, (2, 3, 49, 50))]),
        },
    )
    return tmp_path


def test_voc_boxes_labels_and_difficult(voc_root):
    ds = VOCDataset(voc_root, "trainval", 2007)
    assert len(VOC_CLASSES) == 20 and ds.num_classes == 20
    assert [r.image_id for r in ds.records] == [5, 9]  # 7 has only a difficult object
    assert len(VOCDataset(voc_root, train=False)) == 3
    image, meta, target = ds[0]
    assert image.shape == (3, 40, 60) and meta["image_id"] == 5
    torch.testing.assert_close(target["boxes"], torch.tensor([[10.0, 5.0, 30.0, 25.0]]))
    assert target["labels"].tolist() == [VOC_CLASSES.index("dog")] == [11]
    torch.testing.assert_close(target["ignore_boxes"], torch.tensor([[0.0, 0.0, 10.0, 10.0]]))
    assert ds.records[0].extra["ignore_labels"].tolist() == [VOC_CLASSES.index("chair")]
    assert ds.records[1].extra["ignore_labels"].tolist() == []
    assert "masks" not in target


def test_voc_errors_name_the_file(voc_root, tmp_path):
    xml = voc_root / "VOC2007" / "Annotations" / "000009.xml"
    xml.write_text(xml.read_text().replace("tvmonitor", "tv"))
    with pytest.raises(ValueError, match=r"000009\.xml: object #0 has unknown class 'tv'"):
        VOCDataset(voc_root)
    xml.write_text("<annotation><size>")
    with pytest.raises(ValueError, match=r"000009\.xml is malformed"):
        VOCDataset(voc_root)
    with pytest.raises(FileNotFoundError, match=r"VOC2012.*trainval\.txt does not exist"):
        VOCDataset(voc_root, year=2012)
