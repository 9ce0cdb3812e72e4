"""`python -m bionic bench` (what `make bench` calls) runs on a tiny budget and writes bench.json.

No timing is asserted: numbers from a shared CI machine mean nothing; only the shape of the output.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO, bionic_cmd

from bionic import bench


def test_bench_runs_with_a_tiny_budget(fer_root, tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run(
        bionic_cmd("bench", "--data.root", str(fer_root), "--steps", "2", "--warmup", "1", "--batch-size", "16",
                   "--infer-batch", "32", "--threads", "1", "--out", str(out), "--", "--trainer.accelerator", "cpu"),
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(out.read_text())
    for key in ("machine", "settings", "train", "inference", "data", "memory", "targets", "load", "device"):
        assert key in result, key
    for key in ("cpu", "cores_logical", "torch", "torch_threads", "cuda"):
        assert key in result["machine"], key
    assert result["machine"]["torch_threads"] == 1
    assert set(result["train"]) == {"baseline", "bionic", "bionic_no_plasticity"}
    for name, v in result["train"].items():
        assert v["samples_per_s"] > 0 and v["step_ms"] > 0 and v["steps_measured"] >= 1, name
        assert v["batch_size"] == 16
    assert result["train"]["bionic"]["hebbian"] and result["train"]["bionic"]["plasticity_ms"] > 0
    assert not result["train"]["bionic_no_plasticity"]["hebbian"]
    assert result["train"]["bionic_no_plasticity"]["plasticity_ms"] == 0
    assert set(result["inference"]) == {"baseline", "bionic"}
    for v in result["inference"].values():
        assert v["latency_ms"] > 0 and v["samples_per_s"] > 0 and v["batch"] == 32
    for key in ("first_load_s", "cached_load_s", "batches_per_s", "samples_per_s", "model_samples_per_s"):
        assert result["data"][key] > 0, key
    assert result["data"]["images"]["train"] > 0
    assert set(result["targets"]) == set(bench.TARGETS)
    assert all(isinstance(t["pass"], bool) for t in result["targets"].values())
    assert result["memory"]["peak_rss_mb"] > 0
    assert result["matrix"] is None
    assert "targets" in r.stdout  # the printed table


def test_matrix_times_sequential_and_parallel(tmp_path, monkeypatch):
    """The matrix is timed through the ablation runner's CLI: check the plumbing with a stand-in."""
    fake = tmp_path / "fake_ablations.py"
    fake.write_text(
        "import sys, pathlib\n"
        "a = sys.argv[1:]\n"
        "runs = pathlib.Path(a[a.index('--runs') + 1])\n"
        "for v in a[a.index('--variants') + 1:a.index('--')]:\n"
        "    d = runs / v / 'seed_0'; d.mkdir(parents=True); (d / 'metrics.json').write_text('{}')\n"
        "print('jobs', a[a.index('--jobs') + 1])\n")
    monkeypatch.setattr(bench, "ABLATIONS", [sys.executable, str(fake)])
    result = bench.time_matrix(REPO, "data", jobs=3, epochs=1, variants=["baseline", "bionic"],
                               runs_dir=tmp_path / "runs", extra=["--trainer.limit_train_batches", "1"])
    assert set(result["modes"]) == {"sequential", "parallel"}
    assert result["modes"]["sequential"]["jobs"] == 1 and result["modes"]["parallel"]["jobs"] == 3
    for mode in result["modes"].values():
        assert mode["returncode"] == 0 and mode["runs_done"] == 2 and mode["wall_s"] > 0
    assert result["modes"]["parallel"]["tail"] == ["jobs 3"]
    assert result["speedup"] > 0


def test_bad_data_root_is_one_clear_line(tmp_path):
    r = subprocess.run(bionic_cmd("bench", "--data.root", str(tmp_path / "nowhere"), "--steps", "1", "--warmup", "0",
                                  "--out", str(tmp_path / "bench.json"), "--", "--trainer.accelerator", "cpu"),
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: no FER-2013 data at")
    assert not (tmp_path / "bench.json").exists()
