"""`python -m bionic keep`: a finished run into results/, its checkpoint weights only, still scoring
what its metrics.json says; nothing already kept is overwritten."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from bionic import keep
from conftest import REPO
from test_bad_input import bionic, one_error


def test_a_finished_run_is_kept_with_weights_only_and_scores_its_accuracy(fitted_runs, tmp_path, capsys):
    src, root = fitted_runs
    dest = tmp_path / "results"
    assert keep.main([str(src), str(dest)]) == 0
    out = capsys.readouterr().out
    kept = dest / "baseline" / "seed_0"
    assert f"kept {src / 'baseline/seed_0'} -> {kept}" in out
    assert not (dest / "baseline" / "seed_1").exists(), "a fit without metrics.json is not finished"
    for name in ("metrics.json", "history.json", "config.yaml", "best.ckpt"):
        assert (kept / name).is_file(), name

    full = torch.load(src / "baseline/seed_0/checkpoints/best.ckpt", map_location="cpu", weights_only=True)
    lean = torch.load(kept / "best.ckpt", map_location="cpu", weights_only=True)
    assert {"optimizer_states", "lr_schedulers"} <= set(full)
    assert not {"optimizer_states", "lr_schedulers"} & set(lean)
    assert lean["state_dict"].keys() == full["state_dict"].keys()
    assert all(torch.equal(lean["state_dict"][k], full["state_dict"][k]) for k in full["state_dict"])
    assert (kept / "best.ckpt").stat().st_size < (src / "baseline/seed_0/checkpoints/best.ckpt").stat().st_size

    rescore = tmp_path / "rescore"
    code, _, err = bionic(capsys, "test", "--config", str(kept / "config.yaml"), "--ckpt_path", str(kept / "best.ckpt"),
                          "--data.root", str(root), "--trainer.default_root_dir", str(rescore), "--wandb.mode", "disabled")
    assert code == 0, err[-3000:]
    recorded = json.loads((kept / "metrics.json").read_text())["test/acc"]
    assert json.loads((rescore / "metrics.json").read_text())["test/acc"] == pytest.approx(recorded)


def test_a_kept_run_is_never_overwritten(fitted_runs, tmp_path, capsys):
    src, _ = fitted_runs
    dest = tmp_path / "results"
    keep.main([str(src), str(dest)])
    kept = dest / "baseline" / "seed_0" / "metrics.json"
    before = kept.stat().st_mtime_ns
    capsys.readouterr()

    assert keep.main([str(src), str(dest)]) == 0
    assert f"already kept: {kept.parent}\n" in capsys.readouterr().out
    assert kept.stat().st_mtime_ns == before

    # the same run trained again elsewhere: flagged, and still left as is
    other = tmp_path / "other"
    shutil.copytree(src, other)
    metrics = json.loads((other / "baseline/seed_0/metrics.json").read_text())
    (other / "baseline/seed_0/metrics.json").write_text(json.dumps({**metrics, "test/acc": 0.5}))
    assert keep.main([str(other), str(dest)]) == 0
    assert "its metrics.json differs" in capsys.readouterr().out
    assert kept.stat().st_mtime_ns == before


def test_no_checkpoints_keeps_the_record_alone(fitted_runs, tmp_path, capsys):
    src, _ = fitted_runs
    assert keep.main([str(src), str(tmp_path / "results"), "--no-checkpoints"]) == 0
    kept = tmp_path / "results" / "baseline" / "seed_0"
    assert sorted(p.name for p in kept.iterdir()) == ["config.yaml", "confusion_matrix.png", "history.json", "metrics.json"]
    assert "no checkpoints/best.ckpt" not in capsys.readouterr().out


@pytest.mark.parametrize("where", ["missing", "empty"])
def test_no_finished_run_is_one_line(tmp_path, capsys, where):
    runs = tmp_path / "runs"
    if where == "empty":
        (runs / "baseline" / "seed_0").mkdir(parents=True)
    assert keep.main([str(runs), str(tmp_path / "results")]) == 2
    line = one_error(2, capsys.readouterr().err)
    assert str(runs) in line and ("no runs folder" if where == "missing" else "no finished run") in line
    assert not (tmp_path / "results").exists()


def test_gpu_collect_keeps_what_a_lease_brought_back(fitted_runs, tmp_path):
    """scripts/gpu.sh collect: the runs.tar.gz and flat ckpt_<root>_<variant>_seed_<s>.ckpt files of
    `bring_back` -> results/<root>/runs/<variant>/seed_<s>/ through `bionic keep`."""
    src, _ = fitted_runs
    repo = tmp_path / "repo"  # collect works in the repository of its script
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "gpu.sh", repo / "scripts" / "gpu.sh")
    work, at = tmp_path / "work", tmp_path / "files_at"  # the device's WORK folder, the returned files
    at.mkdir()
    for root in ("tuning/e40", "headline"):
        for seed in ("seed_0", "seed_1"):
            run = work / root / "baseline" / seed
            run.mkdir(parents=True)
            for name in ("metrics.json", "history.json", "config.yaml"):
                if (src / "baseline" / seed / name).is_file():
                    shutil.copy(src / "baseline" / seed / name, run / name)
    (work / "logs").mkdir()
    (work / "logs" / "metrics.json").write_text("{}")  # logs/ is never a run
    # only tuning/e40's finished run came back with its checkpoint (bring_back's room ran out)
    keep.weights_only(src / "baseline/seed_0/checkpoints/best.ckpt", at / "ckpt_tuning_e40_baseline_seed_0.ckpt")
    subprocess.run(["tar", "-czf", str(at / "runs.tar.gz"), "-C", str(work), "."], check=True)

    def collect():
        done = subprocess.run(["bash", str(repo / "scripts" / "gpu.sh"), "collect", str(at)], capture_output=True,
                              text=True, env={**os.environ, "LOCAL_PYTHON": sys.executable})
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = collect()
    results = repo / "results"
    with_ckpt, without = results / "tuning/e40/runs/baseline/seed_0", results / "headline/runs/baseline/seed_0"
    assert "-> results/tuning/e40/runs/baseline/seed_0\n" in out
    assert "-> results/headline/runs/baseline/seed_0 (no checkpoints/best.ckpt to keep)" in out
    assert (with_ckpt / "metrics.json").read_bytes() == (src / "baseline/seed_0/metrics.json").read_bytes()
    lean = torch.load(with_ckpt / "best.ckpt", map_location="cpu", weights_only=True)
    full = torch.load(src / "baseline/seed_0/checkpoints/best.ckpt", map_location="cpu", weights_only=True)
    assert all(torch.equal(lean["state_dict"][k], v) for k, v in full["state_dict"].items())
    assert not (without / "best.ckpt").exists()
    assert not (results / "tuning/e40/runs/baseline/seed_1").exists(), "an unfinished run is not kept"
    assert not (results / "logs").exists()

    assert "already kept: results/tuning/e40/runs/baseline/seed_0\n" in collect()  # a second collect of the same files changes nothing


def test_gpu_bring_back_then_collect_keeps_the_finished_runs(fitted_runs, tmp_path):
    """scripts/gpu.sh bring_back on the device's WORK layout, then collect here: the two sides of
    one protocol (the flat checkpoint names, the records' tarball) agree."""
    src, _ = fitted_runs
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "gpu.sh", repo / "scripts" / "gpu.sh")
    work, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    (work / "logs").mkdir(parents=True)
    (work / "plan.txt").write_text("headline baseline 0\nheadline baseline 1\n")
    pids = []
    for seed in ("seed_0", "seed_1"):  # seed_1 fitted, never tested: unfinished
        run = work / "headline" / "baseline" / seed
        shutil.copytree(src / "baseline" / seed, run)
        pids.append(f"999999 {run}")
    (work / "pids.txt").write_text("\n".join(pids) + "\n")
    env = {**os.environ, "WORK": str(work), "PYTHON": sys.executable, "LOCAL_PYTHON": sys.executable}

    done = subprocess.run(["bash", str(repo / "scripts/gpu.sh"), "bring_back", str(out)], capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["ckpt_headline_baseline_seed_0.ckpt", "runs.tar.gz"]
    done = subprocess.run(["bash", str(repo / "scripts/gpu.sh"), "collect", str(out)], capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stderr

    kept = repo / "results/headline/runs/baseline"
    assert [p.name for p in kept.iterdir()] == ["seed_0"], "only the finished run is kept"
    assert (kept / "seed_0/metrics.json").read_bytes() == (src / "baseline/seed_0/metrics.json").read_bytes()
    lean = torch.load(kept / "seed_0/best.ckpt", map_location="cpu", weights_only=True)
    full = torch.load(src / "baseline/seed_0/checkpoints/best.ckpt", map_location="cpu", weights_only=True)
    assert "optimizer_states" not in lean
    assert all(torch.equal(lean["state_dict"][k], v) for k, v in full["state_dict"].items())
