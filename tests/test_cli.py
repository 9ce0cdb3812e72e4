"""The LightningCLI entry point, end to end in subprocesses, as a user runs it."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bionic import EMOTIONS
from conftest import REPO, bionic_cmd, tiny_fit_args
from helpers.wandb_records import config_and_history


def run(args, timeout=300, **kw):
    return subprocess.run(bionic_cmd(*args), cwd=REPO, capture_output=True, text=True, timeout=timeout, **kw)


def test_fast_dev_run_baseline(fer_root, tmp_path):
    r = run(["fit", "--config", "configs/baseline.yaml", "--trainer.fast_dev_run=true",
             "--data.root", str(fer_root), "--trainer.default_root_dir", str(tmp_path / "run"),
             "--wandb.mode", "disabled"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "BaselineCNN: 1,382,757 parameters" in r.stderr


def test_fit_then_test_writes_metrics(fer_root, tmp_path):
    run_dir = tmp_path / "run"
    r = run(["fit", "--config", "configs/baseline.yaml", *tiny_fit_args(fer_root, run_dir),
             "--wandb.mode", "offline", "--seed_everything", "0"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert (run_dir / "checkpoints" / "best.ckpt").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    (wandb_file,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    config, rows = config_and_history(wandb_file)
    assert json.loads(config["lr"]) == 0.003, "the hyperparameters reach the W&B run"
    val_acc = json.loads((run_dir / "history.json").read_text())[-1]["val/acc"]
    logged = [float(row["val/acc"]) for row in rows if "val/acc" in row]
    assert logged == [pytest.approx(val_acc)], "the epoch's metrics reach the W&B run"
    r = run(["test", "--config", str(run_dir / "config.yaml")])
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((run_dir / "metrics.json").read_text())
    for key in ("test/acc", "test/f1_macro", "test/auroc", "per_class", "confusion_matrix", "params", "seed",
                "best_epoch", "config", "splits", "history"):
        assert key in m, key
    assert m["seed"] == 0 and m["params"] == 1_382_757
    assert sum(map(sum, m["confusion_matrix"])) == 28  # the fixture's 7 classes x 4 PublicTest images
    assert m["splits"]["test"]["source"] == "PublicTest" and "Training" in m["splits"]["val"]["source"]
    assert set(m["per_class"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
    assert (run_dir / "confusion_matrix.png").stat().st_size > 1000
    splits = json.loads((run_dir / "splits.json").read_text())
    assert not set(splits["val"]) & set(splits["test"])


def _steps(ckpt):
    return torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"]


def _fit_until(checkpoint: Path, args, stderr) -> subprocess.Popen:
    """Start a fit and return once it has written `checkpoint` (or ended, or 240 s passed)."""
    proc = subprocess.Popen(bionic_cmd(*args), cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.time() + 240
    while not checkpoint.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    return proc


def test_killed_run_resumes_to_the_same_step_count(fer_root, tmp_path):
    args = ["fit", "--config", "configs/baseline.yaml", *tiny_fit_args(fer_root, tmp_path / "killed"),
            "--trainer.max_epochs", "6", "--trainer.callbacks", "[]"]
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    proc = _fit_until(last, args, stderr=subprocess.DEVNULL)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert last.is_file()
    r = run(args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming from" in r.stderr
    # 6 epochs x 2 batches, exactly as an uninterrupted run
    assert _steps(last) == 12
    history = json.loads((tmp_path / "killed" / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(6))


def test_sigterm_is_not_a_finished_fit(fer_root, tmp_path):
    # Lightning ends a fit on SIGTERM with exit status 0; the matrix (and any job script) would
    # then take the partial run for a finished one and test it.
    args = ["fit", "--config", "configs/baseline.yaml", *tiny_fit_args(fer_root, tmp_path / "term"),
            "--trainer.max_epochs", "50", "--trainer.callbacks", "[]"]
    log = tmp_path / "stderr.log"  # a file, not a pipe nobody reads until the end, which could fill and stall the fit
    with log.open("w") as stderr:
        last = tmp_path / "term" / "checkpoints" / "last.ckpt"
        proc = _fit_until(last, args, stderr=stderr)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    err = log.read_text()
    assert proc.returncode == 143, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "SIGTERM" in lines[0] and "resume" in lines[0]
    assert _steps(last) < 100  # it stopped early: 50 epochs x 2 batches would be 100


def test_unknown_config_key_is_refused(tmp_path):
    r = run(["fit", "--config", "configs/baseline.yaml", "--model.no_such_knob", "3"])
    assert r.returncode == 2
    assert "no_such_knob" in r.stderr


def test_missing_data_root_is_one_clear_line(tmp_path):
    r = run(["fit", "--config", "configs/baseline.yaml", *tiny_fit_args(tmp_path / "absent", tmp_path / "run")])
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "no FER-2013 data" in err[0] and "kaggle" in err[0]


def test_predict_any_size_and_colour(fer_root, tmp_path):
    run_dir = tmp_path / "run"
    assert run(["fit", "--config", "configs/baseline.yaml", *tiny_fit_args(fer_root, run_dir)]).returncode == 0
    images = tmp_path / "faces"
    images.mkdir()
    Image.new("RGB", (120, 90), (10, 200, 30)).save(images / "colour.png")
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(images / "grey64.jpg")
    r = run(["predict", "--config", str(run_dir / "config.yaml"), "--ckpt_path",
             str(run_dir / "checkpoints" / "best.ckpt"), "--data.predict_path", str(images), "--data.faces", "false"])
    assert r.returncode == 0, r.stderr[-3000:]
    # bionic.predict.PredictionWriter's table: a row per image (or per face found in it)
    rows = list(csv.DictReader((run_dir / "predictions.csv").open()))
    assert sorted({Path(row["file"]).name for row in rows}) == ["colour.png", "grey64.jpg"]
    assert len(rows) == 2, "faces off: one row per image, each image classified whole"
    for row in rows:
        probs = [float(row[f"p_{e}"]) for e in EMOTIONS]
        assert abs(sum(probs) - 1) < 1e-3 and row["emotion"] == EMOTIONS[probs.index(max(probs))]


def test_hebbian_on_the_baseline_is_refused(fer_root, tmp_path):
    r = run(["fit", "--config", "configs/baseline.yaml", *tiny_fit_args(fer_root, tmp_path / "run"),
             "--model.hebbian", "true"])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "model.hebbian needs a network with plastic synapses" in r.stderr


def test_help_names_the_projects_tools_and_each_has_its_own_help(capsys):
    from bionic.__main__ import TOOLS, main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(tool in out.splitlines()[0] for tool in TOOLS) and "{fit,validate,test,predict}" in out
    for tool in TOOLS:
        with pytest.raises(SystemExit) as exc:
            main([tool, "--help"])
        assert exc.value.code == 0, tool
        assert "usage:" in capsys.readouterr().out, tool
