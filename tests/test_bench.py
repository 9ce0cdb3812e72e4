"""`python -m bionic bench` (what `make bench` calls) runs on a tiny budget and writes bench.json.

No speed is asserted (numbers from a shared CI machine mean nothing), but everything derived from
the measurements is checked against the measurements, the step timer against known sleeps, and the
targets against hand-made results.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from conftest import REPO, bionic_cmd

from bionic.bench import matrix, startup
from bionic.bench.epoch import EPOCH_VARIANTS
from bionic.bench.targets import TARGETS, Target, check_targets
from bionic.bench.timers import EpochTimer, StepTimer
from bionic.errors import BionicError


def test_bench_runs_with_a_tiny_budget(fer_root, tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run(
        bionic_cmd("bench", "--data.root", str(fer_root), "--steps", "2", "--warmup", "1", "--batch-size", "16",
                   "--infer-batch", "32", "--threads", "1", "--epoch", "--epoch-threads", "1", "--out", str(out),
                   "--", "--trainer.accelerator", "cpu"),
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(out.read_text())
    for key in ("machine", "settings", "train", "inference", "data", "memory", "targets", "load", "device"):
        assert key in result, key
    for key in ("cpu", "cores_logical", "torch", "torch_threads", "cuda"):
        assert key in result["machine"], key
    assert result["machine"]["torch_threads"] == 1
    assert set(result["train"]) == {"baseline", "bionic", "bionic_no_plasticity"}
    gemm = result["floor"]["gemm_fp32_flops_per_s"]
    assert gemm > 0 and result["floor"]["gemm_n"] == 2048
    for name, v in result["train"].items():
        # steps 0..2 of 16-image batches (the fixture's train split holds 4 full ones): 1 warm-up, 2 measured
        assert (v["steps_measured"], v["batch_size"], v["rounds"]) == (2, 16, 1), name
        assert v["step_ms_min"] <= v["step_ms"] and v["round_step_ms"] == [pytest.approx(v["step_ms"])]
        assert v["samples_per_s"] == pytest.approx(16 / (v["step_ms"] / 1e3)), name
        assert v["plasticity_share"] == pytest.approx(v["plasticity_ms"] / v["step_ms"]), name
        assert v["loop_samples_per_s"] > 0 and v["rss_peak_mb"] > 0 and v["gpu_peak_mb"] is None
        flops_per_step = v["flops_per_sample"] * 16
        assert v["step_vs_floor"] == pytest.approx(v["step_ms"] / 1e3 / (flops_per_step / gemm)), name
    train = result["train"]
    assert train["bionic"]["hebbian"] and 0 < train["bionic"]["plasticity_ms"] < train["bionic"]["step_ms"]
    assert not train["bionic_no_plasticity"]["hebbian"] and train["bionic_no_plasticity"]["plasticity_ms"] == 0
    assert train["bionic"]["params"] == train["bionic_no_plasticity"]["params"] != train["baseline"]["params"]
    assert train["bionic"]["synapses"] > 0 and train["baseline"]["synapses"] is None
    # the same network with or without plasticity does the same arithmetic
    assert train["bionic"]["flops_per_sample"] == train["bionic_no_plasticity"]["flops_per_sample"]
    assert set(result["inference"]) == {"baseline", "bionic"}
    for v in result["inference"].values():
        assert v["batch"] == 32 and v["samples_per_s"] == pytest.approx(32 / (v["batch_ms"] / 1e3))
        assert v["latency_ms"] > 0
    data = result["data"]
    # the fixture: 12 training and 4 test images per class, 7 classes; validation carved from training
    assert (data["images"]["train"] + data["images"]["val"], data["images"]["test"]) == (84, 28)
    # samples counted as they come (an epoch's last batch is short): at most full batches' worth
    assert 0 < data["samples_per_s"] <= data["batches_per_s"] * data["batch_size"] * (1 + 1e-9)
    fastest = max(train, key=lambda n: train[n]["samples_per_s"])
    assert (data["model_consuming"], data["model_samples_per_s"]) == (fastest, train[fastest]["samples_per_s"])
    targets = result["targets"]
    assert set(targets) == {t.name for t in TARGETS}
    ratio = train["bionic"]["step_ms"] / train["baseline"]["step_ms"]
    assert targets["bionic_step_vs_baseline"]["value"] == pytest.approx(ratio)
    assert targets["bionic_step_vs_baseline"]["pass"] == (ratio <= 1.3)
    assert targets["plasticity_share"]["value"] == pytest.approx(train["bionic"]["plasticity_share"])
    assert targets["data_vs_model"]["value"] == pytest.approx(data["samples_per_s"] / train[fastest]["samples_per_s"])
    assert targets["cached_load_s"] == {"what": "cached FER-2013 load (s)", "value": data["cached_load_s"],
                                        "target": "< 2", "pass": data["cached_load_s"] < 2}
    assert result["memory"]["peak_rss_mb"] >= max(v["rss_peak_mb"] for v in train.values()) * 0.99
    epoch = result["epoch"]
    assert epoch["threads"] == 1 and epoch["gemm_fp32_flops_per_s"] > 0
    for name in EPOCH_VARIANTS:
        v = epoch[name]
        # one full epoch: every training image once, in batches of 16 (the last one short)
        assert v["samples"] == data["images"]["train"] and v["batches"] == -(-v["samples"] // 16), name
        assert v["train_s"] > 0 and v["val_s"] > 0, "validation ran, and is timed apart"
        assert v["flops"] == pytest.approx(train[name]["flops_per_sample"] * v["samples"])
        assert v["floor_s"] == pytest.approx(v["flops"] / epoch["gemm_fp32_flops_per_s"])
        assert v["vs_floor"] == pytest.approx(v["train_s"] / v["floor_s"])
        assert targets[f"{name}_epoch_vs_floor"]["value"] == pytest.approx(v["vs_floor"])
    assert targets["startup_s"]["pass"] is None and targets["matrix_parallel_speedup"]["pass"] is None
    assert result["matrix"] is None and result["startup"] is None and result["settings"]["steps"] == 2
    assert "targets" in r.stdout and "x FLOP floor" in r.stdout  # the printed table


def test_bench_times_the_chosen_variants_the_wide_front_end_among_them(fer_root, tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run(
        bionic_cmd("bench", "--data.root", str(fer_root), "--variants", "bionic", "bionic_wide", "--steps", "1",
                   "--warmup", "1", "--batch-size", "16", "--infer-batch", "8", "--threads", "1", "--out", str(out),
                   "--", "--trainer.accelerator", "cpu"),
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(out.read_text())
    train = result["train"]
    assert list(train) == ["bionic", "bionic_wide"] == result["settings"]["variants"]
    assert result["settings"]["configs"] == {"bionic": ["configs/bionic.yaml"],
                                             "bionic_wide": ["configs/bionic_wide.yaml"]}
    assert set(result["inference"]) == {"bionic", "bionic_wide"}
    wide, bionic = train["bionic_wide"], train["bionic"]
    # built from configs/bionic_wide.yaml: the same column, a larger front end on 48x48 maps
    assert wide["synapses"] == bionic["synapses"] > 0 and wide["hebbian"] and wide["plasticity_ms"] > 0
    assert wide["params"] > bionic["params"] and wide["flops_per_sample"] > 3 * bionic["flops_per_sample"]
    assert result["data"]["pipeline_variant"] == "bionic"
    targets = result["targets"]
    assert targets["bionic_step_vs_baseline"]["pass"] is None, "no baseline timed: not measured, not failed"
    assert targets["plasticity_share"]["value"] == pytest.approx(bionic["plasticity_share"])


def test_an_unknown_bench_variant_is_refused_by_name(tmp_path):
    r = subprocess.run(bionic_cmd("bench", "--variants", "wide", "--out", str(tmp_path / "bench.json")),
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "invalid choice: 'wide'" in r.stderr and "bionic_wide" in r.stderr
    assert not (tmp_path / "bench.json").exists()


def test_targets_table_by_hand():
    result = {"train": {"bionic": {"step_ms": 13.0, "plasticity_share": 0.11}, "baseline": {"step_ms": 10.0}},
              "data": {"samples_per_s": 500.0, "model_samples_per_s": 100.0, "cached_load_s": 2.0}}
    checked = check_targets(result)
    assert {k: (round(v["value"], 9), v["target"], v["pass"]) for k, v in checked.items() if v["value"] is not None} == {
        "bionic_step_vs_baseline": (1.3, "<= 1.3", True),  # at the limit passes
        "plasticity_share": (0.11, "<= 0.1", False),
        "data_vs_model": (5.0, ">= 5", True),
        "cached_load_s": (2.0, "< 2", False),  # strictly below
    }
    later = Target("startup_s", "fit start to first step (s)", lambda r: None, "<=", 5.0)
    assert check_targets(result, [later])["startup_s"]["pass"] is None, "not measured is neither pass nor fail"


def test_issue_13_targets_read_their_figures():
    result = {"train": {"bionic": {"step_ms": 13.0, "plasticity_share": 0.05}, "baseline": {"step_ms": 10.0}},
              "data": {"samples_per_s": 500.0, "model_samples_per_s": 100.0, "cached_load_s": 0.5},
              "epoch": {"bionic": {"vs_floor": 2.5}, "baseline": {"vs_floor": 2.6}},
              "matrix": {"speedup": 1.69}, "startup": {"startup_s": 4.0}}
    checked = check_targets(result)
    assert {k: (v["value"], v["pass"]) for k, v in checked.items() if k in (
        "bionic_epoch_vs_floor", "baseline_epoch_vs_floor", "matrix_parallel_speedup", "startup_s")} == {
        "bionic_epoch_vs_floor": (2.5, True), "baseline_epoch_vs_floor": (2.6, False),
        "matrix_parallel_speedup": (1.69, False), "startup_s": (4.0, True)}
    unmeasured = {**result, "epoch": None, "matrix": None, "startup": None}
    for name in ("bionic_epoch_vs_floor", "baseline_epoch_vs_floor", "matrix_parallel_speedup", "startup_s"):
        assert check_targets(unmeasured)[name]["pass"] is None, name
    assert check_targets({**result, "matrix": {"speedup": None}})["matrix_parallel_speedup"]["pass"] is None


def _tiny_module(train_sleep=0.0, val_sleep=0.0):
    import lightning as L
    import torch

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 2)

        def training_step(self, batch, batch_idx):
            time.sleep(train_sleep)
            return torch.nn.functional.cross_entropy(self.layer(batch[0]), batch[1])

        def validation_step(self, batch, batch_idx):
            time.sleep(val_sleep)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return Tiny()


def test_epoch_timer_counts_training_and_keeps_validation_apart():
    import lightning as L
    import torch

    data = torch.utils.data.TensorDataset(torch.randn(36, 4), torch.randint(0, 2, (36,)))
    loader = lambda: torch.utils.data.DataLoader(data, batch_size=8)  # noqa: E731 - 5 batches, the last of 4
    timer = EpochTimer()
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[timer])
    trainer.fit(_tiny_module(train_sleep=0.01, val_sleep=0.03), loader(), loader())
    assert len(timer.epochs) == 2
    for epoch in timer.epochs:
        assert (epoch["samples"], epoch["batches"]) == (36, 5)
        assert 0.05 <= epoch["train_s"] < 0.05 + 0.1, "five 10 ms steps, without the validation"
        assert 0.15 <= epoch["val_s"] < 0.15 + 0.1, "five 30 ms validation steps"


def test_startup_is_process_start_to_the_first_step(tmp_path, monkeypatch):
    """The plumbing, with a stand-in fit that takes a known time to reach its 'first step'."""
    fake = tmp_path / "fake_fit.py"
    fake.write_text(
        "import os, sys, time, pathlib\n"
        "time.sleep(0.3)\n"
        "assert '--trainer.callbacks+=bionic.bench.timers.FirstStepClock' in sys.argv\n"
        "pathlib.Path(os.environ['BIONIC_BENCH_FIRST_STEP']).write_text(repr(time.time()))\n")
    monkeypatch.setattr(startup, "FIT", [sys.executable, str(fake)])
    result = startup.time_startup(REPO, "data", runs=2, extra=["--trainer.accelerator", "cpu"])
    assert len(result["runs_s"]) == 2 and result["startup_s"] == min(result["runs_s"])
    assert all(0.3 <= t < 0.3 + 5 for t in result["runs_s"])
    fake.write_text("import sys; print('boom: no data'); sys.exit(2)\n")
    with pytest.raises(BionicError, match="before its first step: boom: no data"):
        startup.time_startup(REPO, "data", runs=1, extra=[])


def test_startup_of_a_real_fit_reaches_its_first_step(fer_root):
    result = startup.time_startup(REPO, str(fer_root), runs=1, extra=["--trainer.accelerator", "cpu"])
    assert 0 < result["startup_s"] < 300 and result["variant"] == "bionic"


def test_step_timer_times_the_step_and_only_the_timed_hooks():
    """A tiny fit with known sleeps: one in a 'plasticity' hook, one in another callback's hook."""
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import Callback

    class Plastic(Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            time.sleep(0.03)

    class Other(Callback):
        def on_train_batch_end(self, *args):
            time.sleep(0.02)

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 2)

        def training_step(self, batch, batch_idx):
            return torch.nn.functional.cross_entropy(self.layer(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.TensorDataset(torch.randn(40, 4), torch.randint(0, 2, (40,)))
    trainer = L.Trainer(max_steps=5, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[Plastic(), Other()])
    timer = StepTimer(warmup=2, timed=lambda c: isinstance(c, Plastic))
    trainer.callbacks.append(timer)  # appended last, as time_training does: it moves itself first
    trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=8))
    assert len(timer.steps) == 3 and [s["batch"] for s in timer.steps] == [8, 8, 8]
    for s in timer.steps:
        assert 0.03 <= s["plasticity_s"] < 0.03 + 0.015, "the timed hook, and only it"
        assert s["step_s"] >= s["plasticity_s"] + 0.02, "the other callback's hook is inside the step"
    assert [s["iteration_s"] is not None for s in timer.steps] == [True, True, False]
    assert all(s["iteration_s"] >= s["step_s"] for s in timer.steps[:2])


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
    monkeypatch.setattr(matrix, "ABLATIONS", [sys.executable, str(fake)])
    result = matrix.time_matrix(REPO, "data", jobs=3, epochs=1, variants=["baseline", "bionic"],
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
