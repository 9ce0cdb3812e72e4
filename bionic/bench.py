"""Speed and memory of the baseline and BioNIC, side by side in one run: `python -m bionic bench` (`make bench`).

    python -m bionic bench [--data.root DIR] [--steps N] [--warmup N] [--batch-size 64]
                           [--out bench.json] [--threads N] [--profile] [--check]
                           [--epoch [--epoch-threads N]] [--startup] [--full]
                           [--matrix [--matrix-jobs J] [--matrix-epochs 1] [--matrix-variants ...]]
                           [-- extra LightningCLI args for every model and matrix run]

Every model is built by the project's own LightningCLI parser from configs/ and trained by its own
Trainer for warm-up + N steps, so a step is what a real fit does: forward, loss, metrics, backward,
optimizer and scheduler step, plasticity. Only what would write files or need a validation set is
off (checkpoints, logger, validation, early stopping). A StepTimer callback times each step and the
plasticity hooks inside it; figures are medians over the measured steps, so a busy machine's worst
moments do not set them, and the load average is recorded beside them. TARGETS is the one table of
targets, each checked in the same run (ratios, so the machine cancels out).

--epoch times one full epoch of the baseline and of BioNIC on every core against the FLOP floor
(training FLOPs of the epoch, the masked matrices counted as dense products, / fp32 GEMM rate at
the same threads); --startup times a fit from process start to its first step; --matrix a short
ablation matrix one run at a time and --matrix-jobs at a time. --full (make bench) does all three.
"""

from __future__ import annotations

import argparse
import operator
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, NamedTuple

import torch
from lightning.pytorch.callbacks import Callback

from bionic.ablations import non_negative, positive, split_extra
from bionic.errors import BionicError
from bionic.runs import write_json

# How the matrix is run: the ablation runner's own CLI (tests swap in a fake program).
ABLATIONS = [sys.executable, "-m", "bionic", "ablations"]
# variant -> (configs relative to the repository root, extra LightningCLI overrides); the
# plasticity-free BioNIC is the matrix's no_hebbian ablation, under the key bench.json has always used.
VARIANTS = {
    "baseline": (["configs/baseline.yaml"], []),
    "bionic": (["configs/bionic.yaml"], []),
    "bionic_no_plasticity": (["configs/bionic.yaml", "ablations/no_hebbian.yaml"], []),
}
INFERENCE_VARIANTS = ("baseline", "bionic")  # no_plasticity is the same network at inference
EPOCH_VARIANTS = ("baseline", "bionic")
# How a fit is started for the start-up timing: the project's own entry point (tests swap it).
FIT = [sys.executable, "-m", "bionic", "fit"]
# The short matrix of --matrix: a few variants of both families, seed 0, capped batches, so the
# figure is the runner's parallelism (start-up, fit and test of several runs) in minutes.
SHORT_MATRIX = ("baseline", "bionic", "no_hebbian", "no_layer_norm")
SHORT_MATRIX_ARGS = ("--trainer.limit_train_batches", "60", "--trainer.limit_val_batches", "10",
                     "--trainer.limit_test_batches", "10")


class Target(NamedTuple):
    name: str  # the key in bench.json's "targets"
    what: str
    measure: Callable[[dict], float | None]  # from the result; None = not measured in this run
    op: str
    limit: float


OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge}
TARGETS = (
    Target("bionic_step_vs_baseline", "BioNIC step / baseline step (same batch size)",
           lambda r: r["train"]["bionic"]["step_ms"] / r["train"]["baseline"]["step_ms"], "<=", 1.3),
    Target("plasticity_share", "plasticity hooks / BioNIC step",
           lambda r: r["train"]["bionic"]["plasticity_share"], "<=", 0.10),
    Target("data_vs_model", "data pipeline samples/s / fastest model's training samples/s",
           lambda r: r["data"]["samples_per_s"] / r["data"]["model_samples_per_s"], ">=", 5.0),
    Target("cached_load_s", "cached FER-2013 load (s)", lambda r: r["data"]["cached_load_s"], "<", 2.0),
    Target("bionic_epoch_vs_floor", "BioNIC training epoch / its FLOP floor (all cores)",
           lambda r: _get(r, "epoch", "bionic", "vs_floor"), "<=", 2.5),
    Target("baseline_epoch_vs_floor", "baseline training epoch / its FLOP floor (all cores)",
           lambda r: _get(r, "epoch", "baseline", "vs_floor"), "<=", 2.5),
    Target("matrix_parallel_speedup", "short matrix: jobs=1 wall / jobs=2 wall",
           lambda r: _get(r, "matrix", "speedup"), ">=", 1.7),
    Target("startup_s", "fit: process start to first training step, cached data (s)",
           lambda r: _get(r, "startup", "startup_s"), "<=", 5.0),
)


def _get(result: dict, *keys):
    """result[k1][k2]..., None when any level is missing or None (that figure was not measured)."""
    for key in keys:
        if not isinstance(result, dict) or result.get(key) is None:
            return None
        result = result[key]
    return result


def check_targets(result: dict, targets=TARGETS) -> dict:
    out = {}
    for t in targets:
        value = t.measure(result)
        passed = None if value is None else bool(OPS[t.op](value, t.limit))
        out[t.name] = {"what": t.what, "value": value, "target": f"{t.op} {t.limit:g}", "pass": passed}
    return out


# ---------------------------------------------------------------------------- arguments
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bionic bench",
        description="Training, data, inference speed and memory of the baseline and BioNIC, side by side; "
                    "writes bench.json. Arguments after `--` go to every LightningCLI parse (and matrix run).")
    p.add_argument("--data.root", dest="data_root", default="data/fer2013", help="FER-2013 (either layout)")
    p.add_argument("--steps", type=positive, default=50, help="measured training steps per variant")
    p.add_argument("--warmup", type=non_negative, default=10, help="training steps discarded first")
    p.add_argument("--batch-size", type=positive, default=64, help="training batch size for every variant")
    p.add_argument("--repeats", type=positive, default=1,
                   help="rounds over the variants (interleaved); step figures are medians over all rounds")
    p.add_argument("--infer-batch", type=positive, default=512, help="batch size of the inference throughput")
    p.add_argument("--out", type=Path, default=Path("bench.json"))
    p.add_argument("--threads", type=positive, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--root", type=Path, default=None, help="repository with configs/ (default: here)")
    p.add_argument("--profile", action="store_true",
                   help="torch.profiler over the measured steps; tables go beside --out as profile_<variant>.txt")
    p.add_argument("--check", action="store_true", help="exit 1 when a ratio target is missed")
    p.add_argument("--epoch", action="store_true",
                   help="also time one full training epoch (and its validation) of the baseline and BioNIC "
                        "through the Lightning loop on --epoch-threads threads, against the FLOP floor")
    p.add_argument("--epoch-threads", type=positive, default=None,
                   help="torch threads of the epoch timing (default: every usable core)")
    p.add_argument("--startup", action="store_true",
                   help="also time a fit's start-up: `python -m bionic fit` from process start to its first "
                        "training step, data cached (best of --startup-runs)")
    p.add_argument("--startup-runs", type=positive, default=2)
    p.add_argument("--matrix", action="store_true",
                   help="also time a short ablation matrix (seed 0, --matrix-variants, capped batches) "
                        "one run at a time vs --matrix-jobs at a time")
    p.add_argument("--matrix-jobs", type=positive, default=2)
    p.add_argument("--matrix-epochs", type=positive, default=1)
    p.add_argument("--matrix-variants", nargs="+", default=list(SHORT_MATRIX),
                   help=f"variants of the timed matrix (default: {' '.join(SHORT_MATRIX)}; 'all': every variant)")
    p.add_argument("--matrix-runs", type=Path, default=None, help="where matrix runs go (default: a temp dir)")
    p.add_argument("--matrix-args", default=shlex.join(SHORT_MATRIX_ARGS),
                   help="extra LightningCLI args for the matrix runs only, one string given with '=' "
                        f"(default: '{shlex.join(SHORT_MATRIX_ARGS)}'; '' for full epochs)")
    p.add_argument("--full", action="store_true", help="--epoch --startup --matrix: every target (make bench)")
    return p


# ---------------------------------------------------------------------------- the machine
def machine_info() -> dict:
    import lightning

    info = {
        "cpu": _cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cores_physical": None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "memory_gb": None,
    }
    try:
        import psutil

        info["cores_physical"] = psutil.cpu_count(logical=False)
        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def rss_mb() -> float | None:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        return None


def peak_rss_mb() -> float:
    """The process's peak resident set so far (ru_maxrss is in KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


# ---------------------------------------------------------------------------- building
def build(root: Path, variant: str, data_root: str, batch_size: int, run_dir: Path, steps: int, extra: list[str]):
    """The variant's LightningCLI (run=False): its model, datamodule and trainer, as `fit` would build them,
    shrunk to `steps` training steps that write nothing."""
    from lightning.pytorch.callbacks import Checkpoint, EarlyStopping

    from bionic.cli import BionicCLI
    from bionic.data import FER2013DataModule
    from bionic.modules import EmotionClassifier

    configs, overrides = VARIANTS[variant]
    args = [a for c in configs for a in ("--config", str(root / c))] + overrides + [
        "--data.root", str(data_root), "--data.batch_size", str(batch_size), "--data.progress", "false",
        "--trainer.default_root_dir", str(run_dir), f"--trainer.max_steps={steps}", "--trainer.max_epochs=-1",
        "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--trainer.logger", "false", "--wandb.mode", "disabled",
        *extra,
    ]
    argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI warns when it sees both args and sys.argv
    try:
        cli = BionicCLI(EmotionClassifier, FER2013DataModule, run=False, args=args, save_config_callback=None)
    finally:
        sys.argv = argv
    # No checkpoints (nothing to keep), and no EarlyStopping: it watches val/acc, which a run
    # without validation never has. Every other callback of a real fit stays, and is timed.
    cli.trainer.callbacks = [c for c in cli.trainer.callbacks if not isinstance(c, (EarlyStopping, Checkpoint))]
    return cli


# ---------------------------------------------------------------------------- training
def is_plasticity(callback) -> bool:
    return type(callback).__module__ == "bionic.plasticity"


class _Mark(Callback):
    """A place in the callback list: Lightning runs each hook through the callbacks in list
    order, so `at(hook)` is called exactly where this mark stands."""

    def __init__(self, at: Callable[[str], None]):
        self.at = at

    def on_train_batch_start(self, *args):
        self.at("batch_start")

    def on_before_backward(self, *args):
        self.at("before_backward")

    def on_after_backward(self, *args):
        self.at("after_backward")

    def on_before_optimizer_step(self, *args):
        self.at("before_optimizer_step")

    def on_train_batch_end(self, *args):
        self.at("batch_end")


class StepTimer(Callback):
    """Per training step after `warmup`: the step's wall time (the first callback's
    on_train_batch_start to the last one's on_train_batch_end), the time spent in the hooks of
    the callbacks `timed` selects (the plasticity callbacks), the loop iteration (one batch
    start to the next, data included), and the resident memory."""

    def __init__(self, warmup: int = 0, timed: Callable = is_plasticity, profile: bool = False):
        self.warmup, self.timed, self.profile = warmup, timed, profile
        self.steps: list[dict] = []
        self.device = None
        self.gpu_peak_mb: float | None = None
        self.profiler = None
        self._n = 0
        self._step: dict | None = None
        self._opened = 0.0

    def on_fit_start(self, trainer, pl_module):
        # After configure_callbacks added the model's callbacks: the timer first, the timed
        # callbacks between two marks, one mark last (none around nothing: zero is zero).
        others = [c for c in trainer.callbacks if c is not self]
        timed = [c for c in others if self.timed(c)]
        bracket = [_Mark(self._open), *timed, _Mark(self._close)] if timed else []
        trainer.callbacks = [self, *(c for c in others if not self.timed(c)), *bracket, _Mark(self._end)]
        self.device = pl_module.device
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        start = now(self.device)
        if self._step is not None:  # the previous measured step's loop iteration ends here
            self._step["iteration_s"] = start - self._step["start"]
        if self.profile and self._n == self.warmup and self.profiler is None:
            self.profiler = start_profiler(self.device)
        self._step = {"start": start, "batch": len(batch[1]), "plasticity_s": 0.0, "iteration_s": None}

    def _open(self, hook: str) -> None:
        self._opened = now(self.device)

    def _close(self, hook: str) -> None:
        self._step["plasticity_s"] += now(self.device) - self._opened

    def _end(self, hook: str) -> None:
        if hook != "batch_end":
            return
        self._step["step_s"] = now(self.device) - self._step["start"]
        self._step["rss_mb"] = rss_mb()
        if self._n >= self.warmup:
            self.steps.append(self._step)
        else:
            self._step = None
        self._n += 1

    def on_fit_end(self, trainer, pl_module):
        if self.profiler is not None:
            self.profiler.stop()
        if self.device is not None and self.device.type == "cuda":
            self.gpu_peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20


def start_profiler(device):
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    profiler = torch.profiler.profile(activities=activities)
    profiler.start()
    return profiler


def time_training(cli, warmup: int, profile: bool) -> StepTimer:
    """Fit the CLI's model for its max_steps; the timer holds one record per measured step."""
    timer = StepTimer(warmup, profile=profile)
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return timer


def summarize_training(cli, timers: list) -> dict:
    """Medians over every measured step of every round (full batches only when there are any:
    an epoch's short last batch is faster)."""
    batch = cli.datamodule.hparams.batch_size
    records = [s for t in timers for s in t.steps]
    steps = [s for s in records if s["batch"] == batch] or records
    if not steps:
        raise BionicError("no training step was measured; raise --steps (or lower --warmup)")
    step = statistics.median(s["step_s"] for s in steps)
    iterations = [s["iteration_s"] / s["batch"] for s in steps if s["iteration_s"]]
    rss = [s["rss_mb"] for s in steps if s["rss_mb"] is not None]
    gpu = [t.gpu_peak_mb for t in timers if t.gpu_peak_mb is not None]
    plastic = statistics.median(s["plasticity_s"] for s in steps)
    return {
        "params": cli.model.n_params,
        "synapses": getattr(cli.model.net, "n_synapses", None),
        "hebbian": bool(cli.model.hparams.hebbian),
        "device": str(timers[0].device),
        "batch_size": batch,
        "steps_measured": len(steps),
        "rounds": len(timers),
        "step_ms": 1e3 * step,
        "step_ms_min": 1e3 * min(s["step_s"] for s in steps),
        "round_step_ms": [1e3 * statistics.median(s["step_s"] for s in t.steps) for t in timers if t.steps],
        "samples_per_s": batch / step,
        "loop_samples_per_s": 1 / statistics.median(iterations) if iterations else None,
        "plasticity_ms": 1e3 * plastic,
        "plasticity_share": plastic / step,
        "rss_peak_mb": max(rss) if rss else None,
        "gpu_peak_mb": max(gpu) if gpu else None,
    }


def write_profile(timer: StepTimer, path: Path) -> str | None:
    if timer.profiler is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    sort = "self_device_time_total" if timer.device.type == "cuda" else "self_cpu_time_total"
    path.write_text(timer.profiler.key_averages().table(sort_by=sort, row_limit=30) + "\n")
    return str(path)


# ---------------------------------------------------------------------------- timing
def sync(device) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def now(device) -> float:
    """The clock once the device's queued work is done."""
    sync(device)
    return time.perf_counter()


def median_s(fn, n: int, device=None, warmup: int = 1) -> float:
    """Median wall time of `n` calls of fn after `warmup` calls, the device synchronized around each."""
    times = []
    for i in range(warmup + n):
        t = now(device)
        fn()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def time_inference(model, device, reps: int, infer_batch: int) -> dict:
    model = model.to(device).eval()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    one, big = torch.randn(1, 1, 48, 48, device=device), torch.randn(infer_batch, 1, 48, 48, device=device)
    with torch.inference_mode():
        one_s = median_s(lambda: model(one), max(5, reps), device, warmup=2)
        big_s = median_s(lambda: model(big), max(2, reps // 4), device, warmup=2)
    return {
        "latency_ms": 1e3 * one_s,
        "batch": infer_batch,
        "batch_ms": 1e3 * big_s,
        "samples_per_s": infer_batch / big_s,
        "gpu_peak_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }


def training_flops(net, batch_size: int, device) -> int:
    """FLOPs of one forward and backward pass at this batch size (torch's FlopCounterMode), the
    masked matrices counted as the dense products they are computed as."""
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch_size, 1, 48, 48, device=device)
    y = torch.zeros(batch_size, dtype=torch.long, device=device)
    net.train()
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(net(x), y).backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def gemm_flops_per_s(device, n: int = 2048) -> float:
    """fp32 matrix-multiply throughput with this process's threads: the FLOP floor's rate."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n**3 / median_s(lambda: torch.mm(a, b), 5, device)


def time_loading(dm) -> dict:
    """FER-2013 load through read_fer2013: the first call decodes when nothing is cached."""
    from bionic.data import read_fer2013

    hp = dm.hparams

    def load():
        return read_fer2013(hp.root, hp.cache_dir, hp.val_fraction, hp.split_seed, progress=False)

    t = time.perf_counter()
    splits = load()
    first = time.perf_counter() - t
    return {"first_load_s": first, "cached_load_s": median_s(load, 3, warmup=0),
            "images": {role: len(splits.labels[role]) for role in ("train", "val", "test")}}


def time_pipeline(dm, device, n_batches: int) -> dict:
    """Batches/s of the DataModule's train loader, moved to the device and augmented there
    (on_after_batch_transfer), as the Trainer does before each step."""
    dm.setup("fit")
    trainer = dm.trainer
    dm.trainer = SimpleNamespace(training=True)  # what on_after_batch_transfer asks before augmenting
    try:
        warm, samples, done = 2, 0, 0
        if len(dm.train_dataloader()) == 0:
            raise BionicError(f"the training split under {dm.hparams.root} is empty; check --data.root")
        while done < n_batches + warm:
            for images, labels in dm.train_dataloader():
                if done == warm:
                    sync(device)
                    start = time.perf_counter()
                batch = (images.to(device, non_blocking=True), labels.to(device, non_blocking=True))
                x, _ = dm.on_after_batch_transfer(batch, 0)
                if done >= warm:
                    samples += len(labels)
                done += 1
                if done >= n_batches + warm:
                    break
        sync(device)
        elapsed = time.perf_counter() - start
    finally:
        dm.trainer = trainer
    return {"batches": n_batches, "batch_size": dm.hparams.batch_size, "augment": bool(dm.hparams.augment),
            "batches_per_s": n_batches / elapsed, "samples_per_s": samples / elapsed}


# ---------------------------------------------------------------------------- a full epoch
class EpochTimer(Callback):
    """Wall time of each training epoch without its validation: epoch start to epoch end, minus
    the validation runs that fall inside (Lightning validates before on_train_epoch_end)."""

    def __init__(self):
        self.epochs: list[dict] = []
        self.device = None
        self._start = self._val_start = None
        self._val_s, self._samples, self._batches = 0.0, 0, 0

    def on_fit_start(self, trainer, pl_module):
        self.device = pl_module.device

    def on_train_epoch_start(self, trainer, pl_module):
        self._start, self._val_s, self._samples, self._batches = now(self.device), 0.0, 0, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._samples += len(batch[1])
        self._batches += 1

    def on_validation_start(self, trainer, pl_module):
        self._val_start = now(self.device)

    def on_validation_end(self, trainer, pl_module):
        if self._val_start is not None:
            self._val_s += now(self.device) - self._val_start
            self._val_start = None

    def on_train_epoch_end(self, trainer, pl_module):
        wall = now(self.device) - self._start
        self.epochs.append({"train_s": wall - self._val_s, "val_s": self._val_s, "samples": self._samples,
                            "batches": self._batches})


def time_epoch(root: Path, variant: str, data_root: str, batch_size: int, run_dir: Path, extra: list[str]) -> dict:
    """One full training epoch of the variant through its own Lightning loop (data, augmentation,
    forward, backward, optimizer, scheduler, plasticity, logging), validation on and timed apart."""
    cli = build(root, variant, data_root, batch_size, run_dir, 1, [
        "--trainer.max_steps=-1", "--trainer.max_epochs=1", "--trainer.limit_val_batches=1.0", *extra])
    timer = EpochTimer()
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if not timer.epochs:
        raise BionicError(f"the {variant} epoch ran no training batch; check --data.root")
    epoch = timer.epochs[-1]
    return {**epoch, "samples_per_s": epoch["samples"] / epoch["train_s"], "threads": torch.get_num_threads(),
            "net": cli.model.net}


def epoch_figures(root: Path, args, extra: list[str], scratch: Path, device) -> dict:
    """--epoch: each EPOCH_VARIANTS epoch and the fp32 GEMM rate at --epoch-threads (default: all cores),
    and epoch / floor, floor = training FLOPs of the epoch's samples / that GEMM rate."""
    before = torch.get_num_threads()
    threads = args.epoch_threads or machine_info()["cores_usable"] or before
    torch.set_num_threads(threads)
    try:
        out = {"threads": threads, "gemm_fp32_flops_per_s": gemm_flops_per_s(device)}
        for name in EPOCH_VARIANTS:
            print(f"bench: one {name} epoch on {threads} thread(s) ...", file=sys.stderr, flush=True)
            v = time_epoch(root, name, args.data_root, args.batch_size, scratch / f"epoch_{name}", extra)
            net = v.pop("net")
            flops = training_flops(net, args.batch_size, device) / args.batch_size * v["samples"]
            v["flops"] = flops
            v["floor_s"] = flops / out["gemm_fp32_flops_per_s"]
            v["vs_floor"] = v["train_s"] / v["floor_s"]
            out[name] = v
    finally:
        torch.set_num_threads(before)
    return out


# ---------------------------------------------------------------------------- start-up
FIRST_STEP_ENV = "BIONIC_BENCH_FIRST_STEP"


class FirstStepClock(Callback):
    """For the start-up timing only: at the first training batch, write the wall clock to the file
    named by $BIONIC_BENCH_FIRST_STEP and end the process at once (the fit was only started to be
    timed; nothing of it is kept)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        Path(os.environ[FIRST_STEP_ENV]).write_text(repr(time.time()))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def time_startup(root: Path, data_root: str, runs: int, extra: list[str], variant: str = "bionic") -> dict:
    """`python -m bionic fit` of the variant's configs as a user starts it (its W&B mode included),
    from just before the process starts to its first training step; best of `runs` (the data is
    cached by then: the bench loaded it first)."""
    configs, overrides = VARIANTS[variant]
    base = Path(tempfile.mkdtemp(prefix="bionic-bench-startup-"))
    times, tails = [], []
    try:
        for i in range(runs):
            stamp = base / f"first_step_{i}"
            cmd = [*FIT, *(a for c in configs for a in ("--config", str(root / c))), *overrides,
                   "--data.root", str(data_root), "--trainer.default_root_dir", str(base / f"run_{i}"),
                   "--trainer.callbacks+=bionic.bench.FirstStepClock", *extra]
            env = dict(os.environ, **{FIRST_STEP_ENV: str(stamp)})
            start = time.time()
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                  cwd=root)
            if not stamp.is_file():
                tail = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
                raise BionicError(f"the start-up fit ended (exit {proc.returncode}) before its first step: "
                                  f"{tail[0] if tail else 'no output'}")
            times.append(float(stamp.read_text()) - start)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return {"variant": variant, "runs_s": times, "startup_s": min(times), "extra_args": list(extra)}


# ---------------------------------------------------------------------------- the matrix
def time_matrix(root: Path, data_root: str, jobs: int, epochs: int, variants: list[str] | None,
                runs_dir: Path | None, extra: list[str]) -> dict:
    """The ablation matrix (seed 0; `variants`, None = all) through `python -m bionic ablations`, one
    run after another, then `jobs` at a time, each into fresh run directories (so nothing is skipped)."""
    base = runs_dir or Path(tempfile.mkdtemp(prefix="bionic-bench-matrix-"))
    out = {"seeds": [0], "epochs": epochs, "variants": variants or "all", "extra_args": list(extra), "modes": {}}
    try:
        for label, j in (("sequential", 1), ("parallel", jobs)):
            runs = base / f"jobs_{j}"
            if runs.exists():
                shutil.rmtree(runs)
            cmd = [*ABLATIONS, "--seeds", "0", "--epochs", str(epochs), "--runs", str(runs), "--jobs", str(j),
                   "--root", str(root)]
            if variants:
                cmd += ["--variants", *variants]
            cmd += ["--", "--data.root", str(data_root), *extra]
            print(f"matrix ({label}, jobs={j}): {' '.join(cmd)}", file=sys.stderr, flush=True)
            t = time.perf_counter()
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            wall = time.perf_counter() - t
            out["modes"][label] = {"jobs": j, "wall_s": wall, "returncode": proc.returncode,
                                   "runs_done": sum(1 for _ in runs.glob("*/seed_0/metrics.json")),
                                   "tail": proc.stdout.strip().splitlines()[-3:]}
    finally:
        if runs_dir is None:
            shutil.rmtree(base, ignore_errors=True)
    seq, par = out["modes"]["sequential"]["wall_s"], out["modes"]["parallel"]["wall_s"]
    out["speedup"] = seq / par if par > 0 else None
    return out


# ---------------------------------------------------------------------------- report
def print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # a log file: wide enough that the tables do not wrap
        console = Console(width=120)
    m = result["machine"]
    console.print(f"[bold]bench[/bold]: {m['cpu']}, {m['cores_usable']} cores, torch {m['torch']} "
                  f"({m['torch_threads']} threads), device {result['device']}"
                  + (f" ({m['gpu']})" if m["gpu"] else "")
                  + f"; load average {result['load']['start']} -> {result['load']['end']}")
    t = Table(title=f"training, batch {result['settings']['batch_size']} "
                    f"(median of {result['settings']['steps']} steps after {result['settings']['warmup']}"
                    f" x {result['settings']['repeats']} round(s))")
    for col in ("variant", "params", "step ms", "samples/s", "loop samples/s", "plasticity ms", "x FLOP floor",
                "peak RSS MB", "GPU MB"):
        t.add_column(col, justify="left" if col == "variant" else "right")
    for name, v in result["train"].items():
        t.add_row(name, f"{v['params']:,}", f"{v['step_ms']:.1f}", f"{v['samples_per_s']:.0f}",
                  _fmt(v["loop_samples_per_s"], ".0f"), f"{v['plasticity_ms']:.2f}", _fmt(v["step_vs_floor"], ".1f"),
                  _fmt(v["rss_peak_mb"], ".0f"), _fmt(v["gpu_peak_mb"], ".0f"))
    console.print(t)
    t = Table(title="inference")
    for col in ("variant", "1 image ms", f"samples/s at {result['settings']['infer_batch']}", "GPU MB"):
        t.add_column(col, justify="left" if col == "variant" else "right")
    for name, v in result["inference"].items():
        t.add_row(name, f"{v['latency_ms']:.2f}", f"{v['samples_per_s']:.0f}", _fmt(v["gpu_peak_mb"], ".0f"))
    console.print(t)
    d = result["data"]
    console.print(f"data: first load {d['first_load_s']:.2f} s, cached load {d['cached_load_s']:.2f} s, "
                  f"{d['batches_per_s']:.0f} batches/s = {d['samples_per_s']:.0f} samples/s with augmentation; "
                  f"process peak RSS {result['memory']['peak_rss_mb']:.0f} MB; fp32 GEMM "
                  f"{result['floor']['gemm_fp32_flops_per_s'] / 1e9:.0f} GFLOP/s (the FLOP floor's rate)")
    t = Table(title="targets")
    for col in ("target", "value", "limit", ""):
        t.add_column(col)
    for v in result["targets"].values():
        verdict = {True: "[green]pass[/green]", False: "[red]FAIL[/red]", None: "not measured"}[v["pass"]]
        t.add_row(v["what"], _fmt(v["value"], ".3g"), v["target"], verdict)
    console.print(t)
    if result.get("epoch"):
        ep = result["epoch"]
        t = Table(title=f"one training epoch, {ep['threads']} thread(s) (fp32 GEMM "
                        f"{ep['gemm_fp32_flops_per_s'] / 1e9:.0f} GFLOP/s)")
        for col in ("variant", "samples", "train s", "validation s", "FLOP floor s", "x floor"):
            t.add_column(col, justify="left" if col == "variant" else "right")
        for name in EPOCH_VARIANTS:
            v = ep[name]
            t.add_row(name, f"{v['samples']:,}", f"{v['train_s']:.1f}", f"{v['val_s']:.1f}", f"{v['floor_s']:.2f}",
                      f"{v['vs_floor']:.2f}")
        console.print(t)
    if result.get("startup"):
        st = result["startup"]
        console.print(f"start-up ({st['variant']} fit to its first step): "
                      + ", ".join(f"{x:.1f} s" for x in st["runs_s"]) + f"; best {st['startup_s']:.1f} s")
    if result.get("matrix"):
        mx = result["matrix"]
        for label, v in mx["modes"].items():
            console.print(f"matrix {label} (jobs={v['jobs']}): {v['wall_s']:.0f} s, {v['runs_done']} runs done, "
                          f"exit {v['returncode']}")
        if mx.get("speedup"):
            console.print(f"matrix speedup: {mx['speedup']:.2f}x")


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


# ---------------------------------------------------------------------------- entry point
def run(args, extra: list[str]) -> dict:
    from bionic.ablations import default_root

    if args.threads:
        torch.set_num_threads(args.threads)
    root = (args.root or default_root()).resolve()
    result = {
        "machine": machine_info(),
        "load": {"start": load_average()},
        "settings": {"data_root": str(args.data_root), "steps": args.steps, "warmup": args.warmup,
                     "batch_size": args.batch_size, "repeats": args.repeats, "infer_batch": args.infer_batch,
                     "threads": torch.get_num_threads(), "extra_args": extra,
                     "configs": {k: v[0] + v[1] for k, v in VARIANTS.items()}},
        "train": {}, "inference": {}, "profiles": {},
    }
    scratch = Path(tempfile.mkdtemp(prefix="bionic-bench-"))
    timers: dict[str, list] = {name: [] for name in VARIANTS}
    nets = {}
    try:
        data = None
        # Rounds interleave the variants, so a change in the machine's load hits all of them alike.
        for rnd in range(args.repeats):
            for name in VARIANTS:
                print(f"bench: {name} (round {rnd + 1}/{args.repeats}) ...", file=sys.stderr, flush=True)
                cli = build(root, name, args.data_root, args.batch_size, scratch / f"{name}_{rnd}",
                            args.warmup + args.steps, extra)
                if data is None:  # before any fit, so the first load shows a cold cache when there is one
                    data = time_loading(cli.datamodule)
                timer = time_training(cli, args.warmup, args.profile and rnd == 0)
                timers[name].append(timer)
                device = timer.device
                result["train"][name] = summarize_training(cli, timers[name])
                if rnd > 0:
                    continue
                nets[name] = cli.model.net
                if args.profile:
                    result["profiles"][name] = write_profile(timer, args.out.parent / f"profile_{name}.txt")
                if name in INFERENCE_VARIANTS:
                    result["inference"][name] = time_inference(cli.model, device, args.steps, args.infer_batch)
                if name == "bionic":
                    data.update(time_pipeline(cli.datamodule, device, max(args.steps, 5)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    fastest = max(result["train"].items(), key=lambda kv: kv[1]["samples_per_s"])
    data["model_samples_per_s"] = fastest[1]["samples_per_s"]
    data["model_consuming"] = fastest[0]
    result["data"] = data
    result["device"] = str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    result["memory"] = {"peak_rss_mb": peak_rss_mb(),
                        "gpu_max_allocated_mb": (torch.cuda.max_memory_allocated() / 2**20
                                                 if device.type == "cuda" else None)}
    gemm = gemm_flops_per_s(device)
    result["floor"] = {"gemm_fp32_flops_per_s": gemm, "gemm_n": 2048}
    for name, v in result["train"].items():
        flops = training_flops(nets[name], v["batch_size"], device)
        v["flops_per_sample"] = flops / v["batch_size"]
        v["step_vs_floor"] = v["step_ms"] / 1e3 / (flops / gemm)
    scratch = Path(tempfile.mkdtemp(prefix="bionic-bench-"))
    try:
        result["epoch"] = epoch_figures(root, args, extra, scratch, device) if args.epoch or args.full else None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result["startup"] = (time_startup(root, args.data_root, args.startup_runs, extra)
                         if args.startup or args.full else None)
    variants = None if args.matrix_variants == ["all"] else args.matrix_variants
    result["matrix"] = (time_matrix(root, args.data_root, args.matrix_jobs, args.matrix_epochs, variants,
                                    args.matrix_runs, extra + shlex.split(args.matrix_args))
                        if args.matrix or args.full else None)
    result["targets"] = check_targets(result)
    result["load"]["end"] = load_average()
    return result


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, extra = split_extra(argv)
    args = parser().parse_args(own)
    try:
        result = run(args, extra)
    except BionicError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_json(args.out, result)
    print_table(result)
    print(f"wrote {args.out}", file=sys.stderr)
    missed = [name for name, v in result["targets"].items() if v["pass"] is False]
    if missed and args.check:
        print(f"missed target(s): {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
