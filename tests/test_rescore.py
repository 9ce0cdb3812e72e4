"""`python -m bionic rescore`: a kept run tested again from its checkpoint must score what its
metrics.json records; `--flip` adds the flip-averaged block and changes nothing else."""

from __future__ import annotations

import json
import shutil

import pytest

from bionic import keep, rescore
from test_bad_input import one_error


@pytest.fixture(scope="module")
def kept(fitted_runs, tmp_path_factory):
    """KEPT/baseline/seed_0 as `python -m bionic keep` leaves a fitted and tested run, and its data root."""
    runs, root = fitted_runs
    kept = tmp_path_factory.mktemp("rescore") / "kept"
    assert keep.main([str(runs), str(kept)]) == 0
    return kept, root


def copy_of(kept, tmp_path):
    src, root = kept
    shutil.copytree(src, tmp_path / "kept")
    return tmp_path / "kept", root, tmp_path / "kept" / "baseline" / "seed_0" / "metrics.json"


def test_flip_is_added_once_and_nothing_else_changes(kept, tmp_path, capsys):
    folder, root, metrics = copy_of(kept, tmp_path)
    before = json.loads(metrics.read_text())
    assert before["flip"] is None

    assert rescore.main([str(folder), "--data.root", str(root), "--flip"]) == 0
    out = capsys.readouterr().out
    after = json.loads(metrics.read_text())
    assert f"same {metrics.parent}" in out and "added to" in out
    assert set(after["flip"]) >= {"test/acc", "test/f1_macro", "confusion_matrix"}
    assert sum(map(sum, after["flip"]["confusion_matrix"])) == sum(map(sum, before["confusion_matrix"]))
    assert {**after, "flip": None} == before

    written = metrics.read_bytes()
    assert rescore.main([str(folder), "--data.root", str(root), "--flip"]) == 0
    assert "as recorded" in capsys.readouterr().out
    assert metrics.read_bytes() == written


@pytest.mark.parametrize("where", ["plain", "flip"])
def test_a_run_that_scores_otherwise_is_reported_and_left_alone(kept, tmp_path, capsys, where):
    folder, root, metrics = copy_of(kept, tmp_path)
    recorded = json.loads(metrics.read_text())
    if where == "plain":
        recorded["test/acc"] += 0.01
    else:  # a flip block that is not this checkpoint's
        recorded["flip"] = {key: recorded[key] for key in ("test/acc", "test/f1_macro", "confusion_matrix")}
        recorded["flip"]["confusion_matrix"] = [[0] * 7 for _ in range(7)]
    metrics.write_text(json.dumps(recorded))
    tampered = metrics.read_bytes()

    assert rescore.main([str(folder), "--data.root", str(root), "--flip"]) == 1
    out = capsys.readouterr().out
    assert f"DIFFERS {metrics.parent}" in out
    assert ("test/acc" in out) if where == "plain" else ("its flip block: the confusion matrix differs" in out)
    assert metrics.read_bytes() == tampered


def test_a_run_kept_without_checkpoint_is_skipped(kept, tmp_path, capsys):
    folder, root, metrics = copy_of(kept, tmp_path)
    (metrics.parent / keep.KEPT_CHECKPOINT).unlink()
    assert rescore.main([str(folder), "--data.root", str(root)]) == 0
    assert f"skipped {metrics.parent}: no best.ckpt kept" in capsys.readouterr().out


@pytest.mark.parametrize("what", ["data root", "kept folder"])
def test_bad_input_is_one_line(kept, tmp_path, capsys, what):
    folder, root = kept
    args = [str(folder), "--data.root", str(tmp_path / "nowhere")] if what == "data root" \
        else [str(tmp_path), "--data.root", str(root)]
    line = one_error(rescore.main(args), capsys.readouterr().err)
    assert ("no FER-2013 folder at" if what == "data root" else "holds no kept run") in line
