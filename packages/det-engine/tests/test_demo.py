"""``python -m det_engine.demo`` on a RetinaNet checkpoint saved the way the trainer saves it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from det_engine import checkpoint as ckpt
from det_engine.apps import demo
from det_engine.visualize import class_color

NAMES = ["circle", "square", "triangle"]


def _run(model_config, **fields):
    """The run record of a 3-class RetinaNet trained at (96, 64) on shapes."""
    import dataclasses

    from det_models import RunConfig, zoo

    row = zoo.get("retinanet", "r50", "1x")
    return RunConfig(
        name="retinanet_r50_1x",
        model=dataclasses.replace(model_config, num_classes=3),
        data=dataclasses.replace(row.data, img_scale=(96, 64)),
        schedule=row.schedule,
        key=row.key,
        dataset="shapes",
        class_names=tuple(NAMES),
        **fields,
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """RetinaNet r50 for 3 classes whose classifier says "square" everywhere (score ~0.99)."""
    from det_models import zoo

    torch.manual_seed(0)
    model = zoo.build("retinanet", "r50", "1x", num_classes=3)
    with torch.no_grad():
        model.head.cls.bias.copy_(torch.tensor([-9.0, 5.0, -9.0]).repeat(9))
    run = _run(model_config=zoo.get("retinanet", "r50", "1x").model)
    path = tmp_path_factory.mktemp("ckpt") / "iter_00000001.pth"
    return ckpt.save(path, model=model, epoch=0, iteration=1, run=run)


def _image(path, seed):
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def test_demo_draws_one_png_per_image(checkpoint, tmp_path, capsys):
    a = _image(tmp_path / "a.png", 0)
    (tmp_path / "other").mkdir()
    b = _image(tmp_path / "other" / "a.jpg", 1)
    out = tmp_path / "out"
    rc = demo.main(
        [str(tmp_path / "a.png"), str(tmp_path / "other" / "a.jpg"), "--ckpt", str(checkpoint),
         "--out", str(out), "--device", "cpu"]
    )  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "a.png"), str(out / "a_1.png")]
    square = np.array(class_color(NAMES.index("square")))
    for path, source in zip(printed, (a, b), strict=True):
        with Image.open(path) as img:
            assert img.format == "PNG" and img.size == (64, 48)
            drawn = np.asarray(img.convert("RGB"))
        is_square = (drawn == square).all(axis=2)
        assert is_square.sum() > 100  # boxes and captions of the "square" class
        others = [(drawn == np.array(class_color(i))).all(axis=2).sum() for i in (0, 2)]
        assert others == [0, 0]
        assert not np.array_equal(drawn, source)

    # above every score nothing is drawn: the PNG is the image (a lossless PNG input)
    args = [str(tmp_path / "a.png"), "--ckpt", str(checkpoint), "--out", str(out)]
    assert demo.main([*args, "--score-thr", "1.1"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(out / "a.png").convert("RGB")), a)


def test_detector_of_the_checkpoint_uses_its_config(checkpoint):
    detector, names, run = demo.load_detector(checkpoint)
    assert (
        names == NAMES
        and run.model.num_classes == 3
        and run.key == ("retinanet", "r50", "1x", None)
    )
    assert detector.data_config.img_scale == (96, 64)
    result = detector.predict(np.zeros((48, 64, 3), np.uint8))
    assert len(result["boxes"]) > 0 and set(result["labels"].tolist()) == {1}
    assert float(result["scores"].min()) > 0.9


def test_missing_image_or_bad_checkpoint_exit_2_naming_the_file(checkpoint, tmp_path, capsys):
    _image(tmp_path / "a.png", 0)
    rc = demo.main([str(tmp_path / "nope.jpg"), "--ckpt", str(checkpoint), "--out", str(tmp_path)])
    assert rc == 2
    assert f"no such image file: {tmp_path / 'nope.jpg'}" in capsys.readouterr().err

    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    rc = demo.main([str(tmp_path / "a.png"), "--ckpt", str(broken), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert f"checkpoint {broken} cannot be read" in capsys.readouterr().err

    rc = demo.main([str(tmp_path / "a.png"), "--ckpt", str(tmp_path / "x.pth"), "--out", "o"])
    assert rc == 2
    assert f"checkpoint {tmp_path / 'x.pth'} does not exist" in capsys.readouterr().err

    not_image = tmp_path / "notes.jpg"
    not_image.write_text("hello")
    rc = demo.main([str(not_image), "--ckpt", str(checkpoint), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert f"cannot decode image file {not_image}" in capsys.readouterr().err


def test_checkpoint_without_a_run_record_or_with_other_weights_is_a_clear_error(tmp_path, capsys):
    from det_models import zoo

    model = zoo.build("retinanet", "r50", "1x", num_classes=2)
    _image(tmp_path / "a.png", 0)
    bare = ckpt.save(tmp_path / "bare.pth", model=model, epoch=0, iteration=0)
    args = [str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--ckpt"]
    assert demo.main([*args, str(bare)]) == 2
    assert f"checkpoint {bare} holds no run record" in capsys.readouterr().err
    # 2-class weights under the record of a 3-class run
    run = _run(model_config=zoo.get("retinanet", "r50", "1x").model)
    wrong = ckpt.save(tmp_path / "wrong.pth", model=model, epoch=0, iteration=0, run=run)
    assert demo.main([*args, str(wrong)]) == 2
    err = capsys.readouterr().err
    assert f"the weights in {wrong} do not fit its run retinanet_r50_1x" in err
    assert "head.cls.weight" in err
