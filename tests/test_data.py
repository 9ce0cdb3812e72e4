"""FER-2013 readers, split rules, cache and batched augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bionic import EMOTIONS
from bionic.data import FER2013DataModule, fer2013
from bionic.data.augment import Augmentation
from bionic.data.fer2013 import read_fer2013
from bionic.errors import BionicError
from conftest import make_csv, make_folders, tiny_fit_args


def test_folders_labels_follow_standard_order(tmp_path):
    root = make_folders(tmp_path, {"train": 3, "test": 2})
    splits = read_fer2013(root, progress=False, val_fraction=0.34)
    for role in ("train", "val", "test"):
        for img, label, name in zip(splits.images[role], splits.labels[role], splits.ids[role]):
            assert name.split("/")[1] == EMOTIONS[int(label)]
            # the synthetic face's bright band sits at a row set by the label
            assert img[3 + 6 * int(label) + 2].float().mean() > 150


def test_full_kaggle_download_splits_by_prefix(tmp_path):
    root = make_folders(tmp_path, {"train": 2, "test": 4},
                        prefixes={"train": ["Training"], "test": ["PublicTest", "PrivateTest"]})
    s = read_fer2013(root, progress=False)
    assert all("Training_" in i for i in s.ids["train"])
    assert all("PublicTest_" in i for i in s.ids["val"])
    assert all("PrivateTest_" in i for i in s.ids["test"])
    assert (len(s.ids["train"]), len(s.ids["val"]), len(s.ids["test"])) == (14, 14, 14)
    assert "PrivateTest" in s.rule


def test_without_private_test_validation_is_carved_from_training(tmp_path):
    root = make_folders(tmp_path, {"train": 10, "test": 2})
    s = read_fer2013(root, progress=False, val_fraction=0.2, split_seed=3)
    assert all("Training_" in i for i in s.ids["train"] + s.ids["val"])
    assert all("PublicTest_" in i for i in s.ids["test"])
    assert not set(s.ids["train"]) & set(s.ids["val"])
    assert torch.equal(s.labels["val"].bincount(), torch.full((7,), 2))  # stratified: 20% of 10 per class
    again = read_fer2013(root, progress=False, val_fraction=0.2, split_seed=3)
    assert again.ids["val"] == s.ids["val"]
    other = read_fer2013(root, progress=False, val_fraction=0.2, split_seed=4)
    assert other.ids["val"] != s.ids["val"]


def test_folders_without_prefixes_use_test_folder(tmp_path):
    root = make_folders(tmp_path, {"train": 5, "test": 2}, prefixes={"train": [""], "test": [""]})
    s = read_fer2013(root, progress=False, val_fraction=0.2)
    assert len(s.ids["test"]) == 14 and all(i.startswith("test/") for i in s.ids["test"])
    assert len(s.ids["val"]) == 7 and all(i.startswith("train/") for i in s.ids["val"])


@pytest.mark.parametrize("icml", [False, True])
def test_csv_layouts(tmp_path, icml):
    name = "icml_face_data.csv" if icml else "fer2013.csv"
    make_csv(tmp_path / name, {"Training": 3, "PublicTest": 2, "PrivateTest": 1}, icml=icml)
    s = read_fer2013(tmp_path, progress=False)
    assert [len(s.ids[r]) for r in ("train", "val", "test")] == [21, 14, 7]
    assert s.images["train"].dtype == torch.uint8 and s.images["train"].shape[1:] == (48, 48)
    assert s.labels["test"].tolist() == list(range(7))
    assert s.layout == "csv"


def test_cache_skips_decoding_and_notices_changes(tmp_path, monkeypatch):
    root = make_folders(tmp_path / "fer", {"train": 2, "test": 1})
    first = read_fer2013(root, cache_dir=tmp_path / "cache", progress=False)

    def boom(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(fer2013, "read_folders", boom)
    second = read_fer2013(root, cache_dir=tmp_path / "cache", progress=False)
    assert torch.equal(first.images["train"], second.images["train"])
    assert second.fingerprint == first.fingerprint
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(root / "train" / "angry" / "Training_new.jpg")
    with pytest.raises(AssertionError, match="decoded again"):
        read_fer2013(root, cache_dir=tmp_path / "cache", progress=False)


def test_colour_and_other_sizes_are_converted(tmp_path):
    root = make_folders(tmp_path, {"train": 2, "test": 1})
    Image.new("RGB", (100, 80), (200, 10, 10)).save(root / "train" / "happy" / "Training_colour.png")
    s = read_fer2013(root, progress=False, val_fraction=0.0)
    assert s.images["train"].shape[1:] == (48, 48)
    assert len(s.ids["train"]) == 15


def test_missing_root_says_what_was_looked_for(tmp_path):
    with pytest.raises(BionicError, match="fer2013.csv.*train/<class>.*kaggle"):
        read_fer2013(tmp_path / "nowhere", progress=False)


def test_missing_and_empty_class_folders(tmp_path):
    root = make_folders(tmp_path, {"train": 1, "test": 1})
    for f in (root / "train" / "fear").iterdir():
        f.unlink()
    with pytest.raises(BionicError, match="fear.* holds no images"):
        read_fer2013(root, progress=False)
    (root / "train" / "fear").rmdir()
    with pytest.raises(BionicError, match="no 'fear' folder"):
        read_fer2013(root, progress=False)


def test_bad_csv_row_is_named(tmp_path):
    path = make_csv(tmp_path / "fer2013.csv", {"Training": 1, "PublicTest": 1})
    lines = path.read_text().splitlines()
    lines[4] = "3,1 2 3,Training"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BionicError, match="row 5: 3 pixel values where a 48x48 image has 2304"):
        read_fer2013(tmp_path, progress=False)


def test_augmentation_is_batched_and_switchable():
    torch.manual_seed(0)
    x = torch.rand(32, 1, 48, 48)
    aug = Augmentation()
    y = aug(x)
    assert y.shape == x.shape and not torch.equal(x, y)
    assert torch.isfinite(y).all()
    off = Augmentation(crop_padding=0, hflip=False, rotation=0.0, scale=0.0, erasing=0.0)
    assert torch.allclose(off(x), x)
    flip = Augmentation(crop_padding=0, hflip=True, rotation=0.0, scale=0.0, erasing=0.0)
    out = flip(x)
    for i in range(len(x)):  # each image is either itself or its mirror image
        assert torch.allclose(out[i], x[i], atol=1e-5) or torch.allclose(out[i], x[i].flip(-1), atol=1e-5)
    erase = Augmentation(crop_padding=0, hflip=False, rotation=0.0, scale=0.0, erasing=1.0)
    assert ((erase(torch.ones(8, 1, 48, 48)) == 0).flatten(1).sum(1) > 0).all()


def test_datamodule_normalizes_with_training_statistics(fer_root):
    dm = FER2013DataModule(root=str(fer_root), batch_size=8, augment=False, progress=False)
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (8, 48, 48)
    x, y = dm.on_after_batch_transfer((dm.splits.images["train"], dm.splits.labels["train"]), 0)
    assert x.shape[1] == 1 and abs(x.mean().item()) < 1e-3 and abs(x.std().item() - 1) < 1e-2
    assert dm.state_dict()["mean"] == pytest.approx(dm.splits.images["train"].float().div(255).mean().item())


# -- nothing dropped without a word, every bad input one line -----------------------------------
def test_an_extra_class_folder_is_named_with_its_size(tmp_path):
    with pytest.raises(BionicError, match=r"not FER-2013 classes: contempt/ \(3 images\).*move"):
        read_fer2013(bad_data(tmp_path, "contempt folder"), progress=False)


def test_files_whose_usage_fits_no_split_are_refused(tmp_path):
    root = make_folders(tmp_path, {"train": 2, "test": 1})
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(root / "train" / "angry" / "unprefixed.jpg")
    with pytest.raises(BionicError, match=r"1 with Usage 'train' \(e.g. train/angry/unprefixed.jpg\) would be in no split"):
        read_fer2013(root, progress=False)


def _pixels(value: int = 7) -> str:
    return " ".join([str(value)] * 48 * 48)


def _misspelt(line: str) -> str:
    return line.replace(",Training", ",Trainng")


# case -> ({line index: how that line becomes bad}, what the one line must say)
BAD_CSV = {
    "unknown Usage": ({3: _misspelt, 6: _misspelt},
                      r"unknown Usage 'Trainng' in 2 row\(s\), first row 4; Usage must be one of Training, PublicTest, "
                      r"PrivateTest"),
    "no Usage field": ({5: lambda _: f"3,{_pixels()}"}, r"row 6: no Usage field .*fix or delete that row"),
    "pixel 300": ({2: lambda _: f"3,{_pixels(300)},Training"}, r"row 3: pixel value 300 is outside 0-255"),
    "pixel -1": ({4: lambda _: f"3,{_pixels(-1)},Training"}, r"row 5: pixel value -1 is outside 0-255"),
    "unterminated quote": ({3: lambda _: f'3,"{_pixels()},Training'}, r"row 4: .*unterminated quote.*fix the quoting"),
    "emotion 9": ({2: lambda _: f"9,{_pixels()},Training"}, r"row 3: emotion 9 is not one of 0-6"),
    "extra field": ({2: lambda _: f"3,{_pixels()},Training,extra"}, r"row 3: 4 fields where there should be 3"),
}


def bad_data(tmp_path, case: str):
    """A small FER-2013 with one kind of fault; returns its root."""
    if case == "contempt folder":
        root = make_folders(tmp_path / "fer", {"train": 2, "test": 1})
        extra = root / "train" / "contempt"
        extra.mkdir()
        for i in range(3):
            Image.fromarray(np.zeros((48, 48), np.uint8)).save(extra / f"Training_c{i}.jpg")
        return root
    path = make_csv(tmp_path / "fer" / "fer2013.csv", {"Training": 2, "PublicTest": 1})
    if case == "not UTF-8":
        lines = path.read_bytes().split(b"\n")
        lines[5] = lines[5].replace(b",Training", b",Tr\xe4ining")  # Latin-1, as a spreadsheet might save it
        path.write_bytes(b"\n".join(lines))
        return path.parent
    lines = path.read_text().splitlines()
    for i, edit in BAD_CSV[case][0].items():
        lines[i] = edit(lines[i])
    path.write_text("\n".join(lines) + "\n")
    return path.parent


@pytest.mark.parametrize("case", BAD_CSV)
def test_bad_csv_rows_are_one_line_each(tmp_path, case):
    root = bad_data(tmp_path, case)
    with pytest.raises(BionicError, match=BAD_CSV[case][1]) as exc:
        read_fer2013(root, progress=False)
    assert "\n" not in str(exc.value) and str(root / "fer2013.csv") in str(exc.value)


def test_a_csv_that_is_not_utf8_is_named(tmp_path):
    with pytest.raises(BionicError, match=r"row 6: not UTF-8 text.*save the file as UTF-8"):
        read_fer2013(bad_data(tmp_path, "not UTF-8"), progress=False)


@pytest.mark.parametrize("case, message", [
    ("contempt folder", "not FER-2013 classes: contempt/ (3 images)"),
    ("unknown Usage", "unknown Usage 'Trainng' in 2 row(s)"),
    ("no Usage field", "row 6: no Usage field"),
    ("pixel 300", "row 3: pixel value 300 is outside 0-255"),
    ("unterminated quote", "unterminated quote"),
    ("not UTF-8", "row 6: not UTF-8 text"),
])
def test_bad_data_through_the_cli_is_one_line_and_exit_2(tmp_path, capsys, case, message):
    from bionic.cli import run_cli

    root = bad_data(tmp_path, case)
    with pytest.raises(SystemExit) as exc:
        run_cli(["fit", "--config", "configs/baseline.yaml", *tiny_fit_args(root, tmp_path / "run")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert message in line


def test_cache_holds_no_pickle_and_never_runs_one(tmp_path):
    import os
    import pickle

    root = make_folders(tmp_path / "fer", {"train": 2, "test": 1})
    first = read_fer2013(root, cache_dir=tmp_path / "cache", progress=False)
    (entry,) = (tmp_path / "cache").iterdir()
    with np.load(entry, allow_pickle=False) as z:  # plain arrays only
        assert z["images"].dtype == np.uint8 and z["images"].shape[1:] == (48, 48)
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    entry.write_bytes(pickle.dumps({"images": Payload()}))  # a cache file someone else wrote
    again = read_fer2013(root, cache_dir=tmp_path / "cache", progress=False)
    assert not marker.exists()
    assert torch.equal(again.images["train"], first.images["train"])


def test_a_new_decoder_version_decodes_again(tmp_path, monkeypatch):
    from bionic.data import cache

    root = make_folders(tmp_path / "fer", {"train": 2, "test": 1})
    read_fer2013(root, cache_dir=tmp_path / "cache", progress=False)
    monkeypatch.setattr(cache, "DECODER_VERSION", cache.DECODER_VERSION + 1)

    def boom(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(fer2013, "read_folders", boom)
    with pytest.raises(AssertionError, match="decoded again"):
        read_fer2013(root, cache_dir=tmp_path / "cache", progress=False)


def test_an_unwritable_cache_warns_and_goes_on(tmp_path, capsys):
    root = make_folders(tmp_path / "fer", {"train": 2, "test": 1})
    (tmp_path / "a_file").write_text("")
    s = read_fer2013(root, cache_dir=tmp_path / "a_file" / "cache", progress=False)
    assert len(s.ids["train"]) + len(s.ids["val"]) == 14
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if "cache" in ln]
    assert line.startswith("warning: cannot write the data cache") and "going on without it" in line


@pytest.mark.parametrize("option, value", [("batch_size", "0"), ("eval_batch_size", "-1"), ("num_workers", "-1"),
                                           ("val_fraction", "1"), ("val_fraction", "-0.1")])
def test_bad_sizes_are_refused_before_any_data_loads(tmp_path, capsys, option, value):
    from bionic.cli import run_cli

    with pytest.raises(SystemExit) as exc:
        run_cli(["fit", "--config", "configs/baseline.yaml", "--data.root", str(tmp_path / "absent"),
                 f"--data.{option}", value, "--trainer.default_root_dir", str(tmp_path / "run"),
                 "--wandb.mode", "disabled"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert f'"data.{option}"' in err and "no FER-2013 data" not in err
    assert not (tmp_path / "run").exists()


def test_no_validation_split_is_still_allowed(tmp_path, capsys):
    from bionic.cli import run_cli

    with pytest.raises(SystemExit):  # parsing passes; then the (absent) data is looked for
        run_cli(["fit", "--config", "configs/baseline.yaml", "--data.root", str(tmp_path / "absent"),
                 "--data.val_fraction", "0", "--trainer.default_root_dir", str(tmp_path / "run"),
                 "--wandb.mode", "disabled"])
    assert "no FER-2013 data" in capsys.readouterr().err
    with pytest.raises(BionicError, match="batch_size must be a positive integer"):
        FER2013DataModule(batch_size=0)
