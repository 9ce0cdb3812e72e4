"""The run directory through the real entry point: one config per folder, trained weights only,
and every fit keeps its work (also without validation, also when it trains further)."""

from __future__ import annotations

import json
import re

import pytest
import torch

from conftest import tiny_fit_args
from test_bad_input import BASELINE, bionic, one_error

BIONIC = ["--config", "configs/bionic.yaml"]


def fit(capsys, run_dir, root, *extra, config=BASELINE):
    return bionic(capsys, "fit", *config, *tiny_fit_args(root, run_dir), *extra)


def files(run_dir) -> dict:
    """Every file under the run directory with its bytes and modification time."""
    return {p.relative_to(run_dir): (p.stat().st_mtime_ns, p.read_bytes()) for p in run_dir.rglob("*") if p.is_file()}


def ckpt(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------- one folder, one config
def test_another_config_is_refused_before_anything_is_written(capsys, tmp_path, fer_root):
    run_dir = tmp_path / "bionic"
    code, _, err = fit(capsys, run_dir, fer_root, config=BIONIC)
    assert code == 0, err[-3000:]
    assert json.loads((run_dir / "identity.json").read_text())["settings"]["model.net.class_path"] == "bionic.nets.BioNIC"
    [row] = json.loads((run_dir / "history.json").read_text())  # plasticity's cell activity is in the epoch's row
    assert all(0 < row[f"plasticity/{g}/rate"] < 1 and 0 <= row[f"plasticity/{g}/silent"] <= 1 for g in "ABCD")
    before = files(run_dir)

    # the baseline into the BioNIC folder
    line = one_error(*fit(capsys, run_dir, fer_root)[::2])
    assert "model.net.class_path: bionic.nets.BioNIC -> bionic.nets.BaselineCNN" in line
    assert f"delete {run_dir}" in line and "--trainer.default_root_dir" in line
    # an ablation into the full model's folder
    line = one_error(*fit(capsys, run_dir, fer_root, config=[*BIONIC, "--config", "ablations/no_mask.yaml"])[::2])
    assert "model.net.init_args.mask: connectome -> dense" in line
    assert files(run_dir) == before

    # a folder fitted before identity.json existed is known by its config.yaml
    (run_dir / "identity.json").unlink()
    line = one_error(*fit(capsys, run_dir, fer_root, "--model.hebbian", "false", config=BIONIC)[::2])
    assert "model.hebbian: True -> False" in line


def test_settings_that_may_change_on_resume_do_not_change_the_identity(capsys, tmp_path, fer_root):
    run_dir = tmp_path / "run"
    assert fit(capsys, run_dir, fer_root, "--model.scheduler", "cosine")[0] == 0
    code, _, err = fit(capsys, run_dir, fer_root, "--model.scheduler", "cosine", "--trainer.max_epochs", "2",
                       "--trainer.limit_val_batches", "2", "--trainer.enable_progress_bar", "true",
                       "--wandb.mode", "offline", "--data.num_workers", "0", "--trainer.callbacks.patience", "7")
    assert code == 0, err[-3000:]
    assert "resuming from" in err
    # Lightning restores EarlyStopping's patience from the checkpoint, so a longer patience on
    # resume (a run stopped before its schedule ended) would silently be the old one.
    [state] = [v for k, v in ckpt(run_dir / "checkpoints" / "last.ckpt")["callbacks"].items()
               if k.startswith("EarlyStopping")]
    assert state["patience"] == 7


# ---------------------------------------------------------------------------- training further
def _params(path) -> dict:
    return {k: v for k, v in ckpt(path)["state_dict"].items() if "running_" not in k and "num_batches" not in k}


def test_a_finished_cosine_run_trains_further(capsys, tmp_path, fer_root):
    run_dir, last = tmp_path / "run", tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert fit(capsys, run_dir, fer_root, "--model.scheduler", "cosine")[0] == 0
    first = _params(last)
    assert ckpt(last)["lr_schedulers"][0]["T_max"] == 2
    code, _, err = fit(capsys, run_dir, fer_root, "--model.scheduler", "cosine", "--trainer.max_epochs", "2")
    assert code == 0, err[-3000:]
    resumed = ckpt(last)
    assert resumed["global_step"] == 4
    # the schedule was re-planned for 4 steps and has ended there, having trained on the way
    assert resumed["lr_schedulers"][0]["T_max"] == 4
    assert resumed["lr_schedulers"][0]["_last_lr"][0] == pytest.approx(0.0, abs=1e-9)
    assert any(not torch.equal(first[k], v) for k, v in _params(last).items())
    assert [h["epoch"] for h in json.loads((run_dir / "history.json").read_text())] == [0, 1]


def test_a_finished_onecycle_run_is_not_stretched(capsys, tmp_path, fer_root):
    run_dir = tmp_path / "run"
    assert fit(capsys, run_dir, fer_root)[0] == 0
    kept = {p: files(run_dir)[p] for p in files(run_dir) if p.suffix == ".ckpt" or p.name == "history.json"}
    line = one_error(*fit(capsys, run_dir, fer_root, "--trainer.max_epochs", "3")[::2])
    assert "one-cycle" in line and "--trainer.default_root_dir" in line
    assert {p: files(run_dir)[p] for p in kept} == kept


# ---------------------------------------------------------------------------- fits without validation
@pytest.mark.parametrize("no_val", [["--trainer.limit_val_batches", "0"], ["--trainer.max_steps", "1"],
                                    ["--data.val_fraction", "0"]], ids=["limit_val_0", "max_steps_1", "val_fraction_0"])
def test_a_fit_without_validation_keeps_its_work(capsys, tmp_path, fer_root, no_val):
    run_dir = tmp_path / "run"
    code, _, err = fit(capsys, run_dir, fer_root, *no_val)
    assert code == 0, err[-3000:]
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history) == 1 and history[0]["train/loss"] > 0
    code, _, err = bionic(capsys, "test", "--config", str(run_dir / "config.yaml"))
    assert code == 0, err[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 1
    # Where it ran: a matrix gathered from a CPU and a GPU says which epoch times are which.
    assert metrics["machine"]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert metrics["machine"]["torch"] == torch.__version__


# ---------------------------------------------------------------------------- scoring trained weights only
def test_validate_and_predict_use_the_runs_best_checkpoint(capsys, tmp_path, fer_root):
    from PIL import Image

    run_dir = tmp_path / "run"
    assert fit(capsys, run_dir, fer_root)[0] == 0
    best = run_dir / "checkpoints" / "best.ckpt"
    code, out, err = bionic(capsys, "validate", "--config", str(run_dir / "config.yaml"))
    assert code == 0, err[-3000:]
    assert f"validate: using {best}" in err
    # the trained weights score what the fit measured on the same validation batch
    fit_acc = json.loads((run_dir / "history.json").read_text())[0]["val/acc"]
    assert float(re.search(r"val/acc\W+([0-9.]+)", out).group(1)) == pytest.approx(fit_acc, abs=1e-4)

    images = tmp_path / "faces"
    images.mkdir()
    Image.new("L", (48, 48), 90).save(images / "a, b.png")  # a comma in a file name is one CSV field
    code, out, err = bionic(capsys, "predict", "--config", str(run_dir / "config.yaml"),
                            "--data.predict_path", str(images))
    assert code == 0, err[-3000:]
    assert f"predict: using {best}" in err
    import csv

    rows = list(csv.DictReader((run_dir / "predictions.csv").open()))
    assert [r["file"].rsplit("/", 1)[-1] for r in rows] == ["a, b.png"]


@pytest.mark.parametrize("sub", ["validate", "test", "predict"])
def test_nothing_trained_to_score_is_one_line(capsys, tmp_path, fer_root, sub):
    images = tmp_path / "faces"
    images.mkdir()
    line = one_error(*bionic(capsys, sub, *BASELINE, *tiny_fit_args(fer_root, tmp_path / "empty"),
                             "--data.predict_path", str(images))[::2])
    assert f"no checkpoint to {sub}" in line and "--ckpt_path" in line


def test_scoring_a_folder_with_another_network_config_is_refused(capsys, tmp_path, fer_root):
    run_dir = tmp_path / "run"
    assert fit(capsys, run_dir, fer_root)[0] == 0
    # the run's own config, with test-time settings changed, is fine
    code, _, err = bionic(capsys, "test", "--config", str(run_dir / "config.yaml"), "--trainer.limit_test_batches", "1",
                          "--data.batch_size", "8")
    assert code == 0, err[-3000:]
    # a config that describes another model would label the scores wrongly
    line = one_error(*bionic(capsys, "test", "--config", str(run_dir / "config.yaml"), "--model.lr", "0.01")[::2])
    assert "model.lr: 0.003 -> 0.01" in line and f"--config {run_dir / 'config.yaml'}" in line
