"""Bad input through the real entry point: exit status 2, one `error:` line, nothing written or lost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from bionic.cli import run_cli
from conftest import REPO, tiny_fit_args

BASELINE = ["--config", "configs/baseline.yaml"]


def bionic(capsys, *args):
    """run_cli in this process, as `python -m bionic ARGS` runs it: (exit status, stdout, stderr).
    capsys None (a module fixture has none): the output is left to pytest, and read as empty."""
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        run_cli(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    finally:
        os.chdir(cwd)
    out, err = capsys.readouterr() if capsys else ("", "")
    return code, out, err


def one_error(code, err) -> str:
    """The single line a user sees: exit 2, `error: ...`, no traceback, no usage dump."""
    assert code == 2, err[-2000:]
    assert "Traceback" not in err and "usage:" not in err, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A tiny trained baseline run: its directory, data root and a folder of two images."""
    from PIL import Image

    from conftest import make_folders

    base = tmp_path_factory.mktemp("fitted")
    root = make_folders(base / "fer", {"train": 12, "test": 4})
    run_dir = base / "run"
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        run_cli(["fit", *BASELINE, *tiny_fit_args(root, run_dir), "--data.cache_dir", str(base / "cache")])
    finally:
        os.chdir(cwd)
    images = base / "faces"
    images.mkdir()
    Image.new("L", (48, 48), 128).save(images / "grey.png")
    return run_dir, root, images


# ---------------------------------------------------------------------------- parse time
def test_negative_lr_is_refused_before_any_data_loads(capsys, tmp_path):
    run_dir = tmp_path / "run"
    code, _, err = bionic(capsys, "fit", *BASELINE, *tiny_fit_args(tmp_path / "no_data_here", run_dir),
                          "--model.lr", "-0.1")
    line = one_error(code, err)
    assert "model.lr" in line and "-0.1" in line
    assert not run_dir.exists()


@pytest.mark.parametrize("key,value", [("model.weight_decay", "-1"), ("model.label_smoothing", "1.5")])
def test_other_out_of_range_recipe_values_are_refused(capsys, tmp_path, key, value):
    code, _, err = bionic(capsys, "fit", *BASELINE, *tiny_fit_args(tmp_path / "no_data_here", tmp_path / "run"),
                          f"--{key}", value)
    assert key in one_error(code, err)


def test_yaml_syntax_error_names_the_file(capsys, tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text("model:\n  lr: [0.1\n  hebbian: true\n")
    code, _, err = bionic(capsys, "fit", *BASELINE, "--config", str(bad))
    line = one_error(code, err)
    assert str(bad) in line and "line" in line


def test_unknown_option_is_one_line(capsys):
    code, _, err = bionic(capsys, "fit", *BASELINE, "--model.no_such_knob", "3")
    assert "no_such_knob" in one_error(code, err)


# ---------------------------------------------------------------------------- disk
@pytest.mark.parametrize("where", ["is_file", "under_file"])
def test_run_dir_that_is_or_lies_under_a_file(capsys, tmp_path, fer_root, where):
    blocker = tmp_path / "taken"
    blocker.write_text("a file the user keeps\n")
    run_dir = blocker if where == "is_file" else blocker / "run"
    code, _, err = bionic(capsys, "fit", *BASELINE, *tiny_fit_args(fer_root, run_dir))
    line = one_error(code, err)
    assert str(blocker) in line and "--trainer.default_root_dir" in line
    assert blocker.read_text() == "a file the user keeps\n"


def test_unwritable_run_dir(capsys, tmp_path, fer_root):
    locked = None
    if os.geteuid() == 0:  # root writes through permission bits; sysfs refuses even root
        if not os.path.isdir("/sys/kernel"):
            pytest.skip("needs a non-root user or /sys")
        run_dir = Path("/sys/kernel/bionic-test-run")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        run_dir = locked / "run"
    try:
        code, _, err = bionic(capsys, "fit", *BASELINE, *tiny_fit_args(fer_root, run_dir))
    finally:
        if locked is not None:
            locked.chmod(0o700)
    line = one_error(code, err)
    assert "cannot write the run directory" in line and str(run_dir) in line


# ---------------------------------------------------------------------------- W&B
def test_wandb_online_without_a_login(capsys, monkeypatch, tmp_path, fer_root):
    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: never logged in
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    run_dir = tmp_path / "run"
    args = [a if a != "disabled" else "online" for a in tiny_fit_args(fer_root, run_dir)]
    code, _, err = bionic(capsys, "fit", *BASELINE, *args)
    line = one_error(code, err)
    assert "wandb login" in line and "offline" in line
    assert not (run_dir / "checkpoints").exists()


# ---------------------------------------------------------------------------- checkpoints
def _truncated(path, good):
    path.write_bytes(good.read_bytes()[:2000])


def _not_a_checkpoint(path, good):
    path.write_text("these are my notes, not weights\n")


def _pickle_of_something_else(path, good):
    torch.save({"weights": torch.zeros(3)}, path)


@pytest.mark.parametrize("make", [_truncated, _not_a_checkpoint, _pickle_of_something_else])
@pytest.mark.parametrize("sub", ["test", "validate", "predict"])
def test_broken_checkpoint_is_one_line(capsys, tmp_path, fitted, make, sub):
    run_dir, root, images = fitted
    bad = tmp_path / "bad.ckpt"
    make(bad, run_dir / "checkpoints" / "best.ckpt")
    code, _, err = bionic(capsys, sub, "--config", str(run_dir / "config.yaml"), "--ckpt_path", str(bad),
                          "--data.predict_path", str(images), "--trainer.default_root_dir", str(tmp_path / "out"))
    line = one_error(code, err)
    assert str(bad) in line and "checkpoint" in line


@pytest.mark.parametrize("sub", ["test", "predict"])
def test_missing_checkpoint_path_is_one_line(capsys, tmp_path, fitted, sub):
    run_dir, root, images = fitted
    missing = tmp_path / "nope.ckpt"
    code, _, err = bionic(capsys, sub, "--config", str(run_dir / "config.yaml"), "--ckpt_path", str(missing),
                          "--data.predict_path", str(images))
    assert f"no checkpoint at {missing}" in one_error(code, err)


def test_checkpoint_of_the_other_network_is_one_line(capsys, tmp_path, fitted):
    run_dir, root, images = fitted
    best = run_dir / "checkpoints" / "best.ckpt"
    code, _, err = bionic(capsys, "test", "--config", "configs/bionic.yaml", "--ckpt_path", str(best),
                          "--data.root", str(root), "--trainer.default_root_dir", str(tmp_path / "out"),
                          "--wandb.mode", "disabled", "--data.progress", "false")
    line = one_error(code, err)
    assert "another network" in line and "BioNIC" in line
    assert not (tmp_path / "out" / "metrics.json").exists()
