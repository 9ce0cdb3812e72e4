"""predict on photos: one CSV row per face, a row for a photo without one, annotated copies.

The writer runs under a plain ``lightning.Trainer.predict`` with the FER-2013 DataModule and a small
randomly initialised baseline: these tests are about rows, boxes and files, not about emotions
(which a trained model decides). The command-line wiring of the writer belongs to bionic.cli;
the error lines are checked through ``bionic.cli.run_cli`` as well.
"""

from __future__ import annotations

import csv

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from bionic import EMOTIONS
from bionic.data import FER2013DataModule
from bionic.errors import BionicError
from bionic.modules import EmotionClassifier
from bionic.nets import BaselineCNN
from bionic.predict import COLUMNS, PredictionWriter
from conftest import tiny_fit_args

pytest.importorskip("skimage.data")
from skimage import data as skimage_data  # noqa: E402
from test_faces import astronaut_canvas, overlap  # noqa: E402


@pytest.fixture
def photos(tmp_path):
    """A folder with a three-face photo, a cat, a FER-2013-style crop and a broken file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    canvas, faces = astronaut_canvas()
    canvas.save(folder / "group.png")
    Image.fromarray(skimage_data.chelsea()).save(folder / "cat.jpg")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)).save(folder / "crop.png")
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    return folder, faces


def predict(tmp_path, predict_path, **dm_args):
    torch.manual_seed(0)
    model = EmotionClassifier(BaselineCNN(conv_channels=[4], hidden=[16]))
    run_dir = tmp_path / "run"
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[PredictionWriter(run_dir)])
    dm = FER2013DataModule(predict_path=str(predict_path), eval_batch_size=2, progress=False, **dm_args)
    trainer.predict(model, datamodule=dm)
    with open(run_dir / "predictions.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == COLUMNS
        return run_dir, list(reader)


def test_one_row_per_face_and_one_for_each_photo_without(photos, tmp_path, capsys):
    folder, faces = photos
    run_dir, rows = predict(tmp_path, folder)
    by_file = {}
    for row in rows:
        by_file.setdefault(row["file"].rsplit("/", 1)[-1], []).append(row)
    assert sorted(by_file) == ["broken.jpg", "cat.jpg", "crop.png", "group.png"]

    group = by_file["group.png"]
    assert [r["face"] for r in group] == ["0", "1", "2"]
    for row, face in zip(group, sorted(faces)):
        x, y, w, h = (int(row[k]) for k in "xywh")
        assert overlap((x, y, x + w, y + h), face) > 0.8
        probs = [float(row[f"p_{e}"]) for e in EMOTIONS]
        assert abs(sum(probs) - 1) < 1e-3 and row["emotion"] == EMOTIONS[int(np.argmax(probs))]

    (cat,) = by_file["cat.jpg"]
    assert cat["emotion"] == "no_face" and cat["face"] == cat["x"] == cat["p_happy"] == ""
    (crop,) = by_file["crop.png"]  # already a 48x48 grey face: classified whole
    assert (crop["face"], crop["x"], crop["y"], crop["w"], crop["h"]) == ("0", "0", "0", "48", "48")
    (broken,) = by_file["broken.jpg"]
    assert broken["emotion"] == "unreadable"
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "broken.jpg" in line][0].startswith("warning: cannot read")

    annotated = sorted(p.name for p in (run_dir / "predictions").iterdir())
    assert annotated == ["cat.jpg", "crop.png", "group.png"]
    with Image.open(run_dir / "predictions" / "group.png") as img:
        assert img.size == (1000, 600)
        original = np.asarray(Image.open(folder / "group.png").convert("RGB"), dtype=int)
        drawn = np.abs(np.asarray(img.convert("RGB"), dtype=int) - original).sum(-1) > 0
    x, y, w, h = (int(group[0][k]) for k in "xywh")
    assert drawn[y + h // 2, x]  # the box's left edge is drawn
    assert not drawn[y + h // 2, x + w // 2]  # the face itself is left visible


def test_faces_off_classifies_each_whole_image(photos, tmp_path):
    folder, _ = photos
    (folder / "broken.jpg").unlink()
    _, rows = predict(tmp_path, folder, faces=False)
    sizes = {r["file"].rsplit("/", 1)[-1]: (r["face"], r["x"], r["y"], r["w"], r["h"]) for r in rows}
    assert len(rows) == 3
    assert sizes == {"cat.jpg": ("0", "0", "0", "451", "300"), "crop.png": ("0", "0", "0", "48", "48"),
                     "group.png": ("0", "0", "0", "1000", "600")}


def test_no_face_anywhere_still_writes_its_rows(tmp_path):
    Image.fromarray(skimage_data.coffee()).save(tmp_path / "coffee.png")
    run_dir, rows = predict(tmp_path, tmp_path / "coffee.png")
    assert [r["emotion"] for r in rows] == ["no_face"]
    assert (run_dir / "predictions" / "coffee.png").is_file()


def test_an_earlier_prediction_is_kept_not_overwritten(photos, tmp_path, capsys):
    folder, _ = photos
    run_dir, first = predict(tmp_path, folder)
    (folder / "cat.jpg").unlink()
    _, second = predict(tmp_path, folder)
    assert len(second) == len(first) - 1
    kept = run_dir / "predictions.1.csv"
    assert kept.is_file() and len(kept.read_text().splitlines()) == len(first) + 1
    assert (run_dir / "predictions.1" / "cat.jpg").is_file() and not (run_dir / "predictions" / "cat.jpg").exists()
    assert f"as {kept}" in capsys.readouterr().err


def test_nothing_readable_is_one_clear_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"garbage")
    (tmp_path / "b.png").write_bytes(b"")
    dm = FER2013DataModule(predict_path=str(tmp_path))
    with pytest.raises(BionicError, match=r"cannot read .*a.jpg \(and 1 more\) as an image"):
        dm.setup("predict")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, fer_root):
    from bionic.cli import run_cli

    run_dir = tmp_path_factory.mktemp("fitted") / "run"
    run_cli(["fit", "--config", "configs/baseline.yaml", *tiny_fit_args(fer_root, run_dir)])
    return run_dir


@pytest.mark.parametrize("extra, message", [
    ([], "error: predict needs --data.predict_path: a photo, or a folder of photos"),
    (["--data.predict_path", "no/such/photo.jpg"], "error: --data.predict_path no/such/photo.jpg does not exist"),
])
def test_predict_path_errors_are_one_line(fitted, capsys, extra, message):
    from bionic.cli import run_cli

    with pytest.raises(SystemExit) as exc:
        run_cli(["predict", "--config", str(fitted / "config.yaml"),
                 "--ckpt_path", str(fitted / "checkpoints" / "best.ckpt"), *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        line for line in err.splitlines() if line.startswith(message)]
    assert message in err
