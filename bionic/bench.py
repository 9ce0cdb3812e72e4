"""Speed and memory, side by side in one run: `python -m bionic bench` (`make bench`).

    python -m bionic bench [--data.root DIR] [--steps N] [--warmup N] [--batch-size 64]
                           [--out bench.json] [--threads N] [--profile] [--check]
                           [--matrix [--matrix-jobs J] [--matrix-epochs 1] [--matrix-variants ...]]
                           [-- extra LightningCLI args for every model and matrix run]

Every model is built by the project's own LightningCLI parser from configs/baseline.yaml and
configs/bionic.yaml, and trained by its own Trainer for warm-up + N steps, so a "step" is what a
real fit does: forward, loss, metrics, backward, optimizer and scheduler step, plasticity.
Only what would write files or need a validation set is switched off (checkpoints, logger,
validation, early stopping); every other callback of a real fit runs inside the timed step.
Figures are medians over the steps after warm-up, so a busy machine's worst moments do not set
them; the machine's load average is recorded beside them.

Variants: baseline, bionic (every feature), bionic_no_plasticity (the same with
model.hebbian=false). Ratio targets (issue 8) are checked in the same run:
    BioNIC step <= 1.3x baseline step; plasticity hooks <= 10 % of the BioNIC step;
    data pipeline >= 5x the fastest model's consumption; cached data set load < 2 s.
"""

from __future__ import annotations

import argparse
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

from bionic.errors import BionicError
from bionic.runs import write_json

# How the matrix is run: the ablation runner's own CLI (tests swap in a fake program).
ABLATIONS = [sys.executable, "-m", "bionic", "ablations"]
# variant -> (configs relative to the repository root, extra LightningCLI overrides)
VARIANTS = {
    "baseline": (["configs/baseline.yaml"], []),
    "bionic": (["configs/bionic.yaml"], []),
    "bionic_no_plasticity": (["configs/bionic.yaml"], ["--model.hebbian", "false"]),
}
INFERENCE_VARIANTS = ("baseline", "bionic")  # no_plasticity is the same network at inference
TARGETS = {  # name -> (what, comparison, limit)
    "bionic_step_vs_baseline": ("BioNIC step / baseline step (same batch size)", "<=", 1.3),
    "plasticity_share": ("plasticity hooks / BioNIC step", "<=", 0.10),
    "data_vs_model": ("data pipeline samples/s / fastest model's training samples/s", ">=", 5.0),
    "cached_load_s": ("cached FER-2013 load (s)", "<", 2.0),
}


# ---------------------------------------------------------------------------- arguments
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bionic bench",
        description="Training, data, inference speed and memory of the baseline and BioNIC, side by side; "
                    "writes bench.json. Arguments after `--` go to every LightningCLI parse (and matrix run).")
    p.add_argument("--data.root", dest="data_root", default="data/fer2013", help="FER-2013 (either layout)")
    p.add_argument("--steps", type=_positive, default=50, help="measured training steps per variant")
    p.add_argument("--warmup", type=_non_negative, default=10, help="training steps discarded first")
    p.add_argument("--batch-size", type=_positive, default=64, help="training batch size for every variant")
    p.add_argument("--repeats", type=_positive, default=1,
                   help="rounds over the variants (interleaved); step figures are medians over all rounds")
    p.add_argument("--infer-batch", type=_positive, default=512, help="batch size of the inference throughput")
    p.add_argument("--out", type=Path, default=Path("bench.json"))
    p.add_argument("--threads", type=_positive, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--root", type=Path, default=None, help="repository with configs/ (default: here)")
    p.add_argument("--profile", action="store_true",
                   help="torch.profiler over the measured steps; tables go beside --out as profile_<variant>.txt")
    p.add_argument("--check", action="store_true", help="exit 1 when a ratio target is missed")
    p.add_argument("--matrix", action="store_true",
                   help="also time the whole ablation matrix (1 seed, short budget) sequential vs --matrix-jobs")
    p.add_argument("--matrix-jobs", type=_positive, default=2)
    p.add_argument("--matrix-epochs", type=_positive, default=1)
    p.add_argument("--matrix-variants", nargs="+", default=None, help="a subset of the matrix (default: all)")
    p.add_argument("--matrix-runs", type=Path, default=None, help="where matrix runs go (default: a temp dir)")
    p.add_argument("--matrix-args", default="",
                   help="extra LightningCLI args for the matrix runs only, one string given with '=', e.g. "
                        "--matrix-args='--trainer.limit_train_batches 10'")
    return p


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


# ---------------------------------------------------------------------------- the machine
def machine_info() -> dict:
    import lightning
    import torch

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


def is_plasticity(callback) -> bool:
    return type(callback).__module__ == "bionic.plasticity"


# ---------------------------------------------------------------------------- training
def _make_clock(warmup: int, profile: bool):
    """Two callbacks bracketing each training step: the first to run at on_train_batch_start,
    the last to run at on_train_batch_end; the plasticity callbacks' hooks are timed inside."""
    import torch
    from lightning.pytorch.callbacks import Callback
    from torch.profiler import record_function

    class StepEnd(Callback):
        def __init__(self, clock):
            self.clock = clock

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.clock.stop()

    class StepClock(Callback):
        """Per step: wall time of the step, of its plasticity hooks, of the loop iteration, and RSS."""

        def __init__(self):
            self.end = StepEnd(self)
            self.steps: list[dict] = []
            self.device = None
            self.profiler = None
            self._n = 0
            self._t0 = None
            self._last_start = None
            self._last = None
            self._plastic = 0.0

        def sync(self):
            if self.device is not None and self.device.type == "cuda":
                torch.cuda.synchronize(self.device)

        def on_fit_start(self, trainer, pl_module):
            # After configure_callbacks: bracket everything, and time the plasticity hooks.
            others = [c for c in trainer.callbacks if c is not self and c is not self.end]
            trainer.callbacks = [self, *others, self.end]
            for cb in others:
                if is_plasticity(cb):
                    self._time_hooks(cb)
            self.device = pl_module.device
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)

        def _time_hooks(self, cb):
            for hook in ("on_train_batch_start", "on_before_optimizer_step", "on_train_batch_end"):
                if getattr(type(cb), hook) is getattr(Callback, hook):
                    continue  # not overridden: nothing runs
                original = getattr(cb, hook)
                label = f"plasticity/{type(cb).__name__}.{hook}"

                def timed(*args, _original=original, _label=label, **kwargs):
                    self.sync()
                    t = time.perf_counter()
                    with record_function(_label):
                        out = _original(*args, **kwargs)
                    self.sync()
                    self._plastic += time.perf_counter() - t
                    return out

                setattr(cb, hook, timed)  # Lightning looks hooks up on the instance

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.sync()
            now = time.perf_counter()
            if self._last is not None:  # the previous step's whole loop iteration ends here
                self._last["iteration_s"] = now - self._last_start
            self._last_start = now
            self._plastic = 0.0
            self._batch = len(batch[1])
            if profile and self._n == warmup and self.profiler is None:
                activities = [torch.profiler.ProfilerActivity.CPU]
                if self.device.type == "cuda":
                    activities.append(torch.profiler.ProfilerActivity.CUDA)
                self.profiler = torch.profiler.profile(activities=activities)
                self.profiler.start()
            self._t0 = time.perf_counter()

        def stop(self):
            self.sync()
            step = time.perf_counter() - self._t0
            self._last = None
            if self._n >= warmup:
                self._last = {"step_s": step, "plasticity_s": self._plastic, "batch": self._batch,
                              "iteration_s": None, "rss_mb": rss_mb()}
                self.steps.append(self._last)
            self._n += 1

        def on_fit_end(self, trainer, pl_module):
            if self.profiler is not None:
                self.profiler.stop()

    return StepClock()


def time_training(cli, warmup: int, profile: bool):
    """Fit the CLI's model for its max_steps; the clock holds one record per measured step."""
    import torch

    clock = _make_clock(warmup, profile)
    cli.trainer.callbacks = [clock, *cli.trainer.callbacks, clock.end]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if clock.device is not None and clock.device.type == "cuda":
        clock.gpu_peak_mb = torch.cuda.max_memory_allocated(clock.device) / 2**20
    return clock


def summarize_training(cli, clocks: list) -> dict:
    """Medians over every measured step of every round (full batches only when there are any:
    an epoch's short last batch is faster)."""
    batch = cli.datamodule.hparams.batch_size
    records = [s for c in clocks for s in c.steps]
    steps = [s for s in records if s["batch"] == batch] or records
    if not steps:
        raise BionicError("no training step was measured; raise --steps (or lower --warmup)")
    step = statistics.median(s["step_s"] for s in steps)
    iterations = [s["iteration_s"] / s["batch"] for s in steps if s["iteration_s"]]
    rss = [s["rss_mb"] for s in steps if s["rss_mb"] is not None]
    gpu = [c.gpu_peak_mb for c in clocks if getattr(c, "gpu_peak_mb", None) is not None]
    plastic = statistics.median(s["plasticity_s"] for s in steps)
    return {
        "params": cli.model.n_params,
        "synapses": getattr(cli.model.net, "n_synapses", None),
        "hebbian": bool(cli.model.hparams.hebbian),
        "device": str(clocks[0].device),
        "batch_size": batch,
        "steps_measured": len(steps),
        "rounds": len(clocks),
        "step_ms": 1e3 * step,
        "step_ms_min": 1e3 * min(s["step_s"] for s in steps),
        "round_step_ms": [1e3 * statistics.median(s["step_s"] for s in c.steps) for c in clocks if c.steps],
        "samples_per_s": batch / step,
        "loop_samples_per_s": 1 / statistics.median(iterations) if iterations else None,
        "plasticity_ms": 1e3 * plastic,
        "plasticity_share": plastic / step,
        "rss_peak_mb": max(rss) if rss else None,
        "gpu_peak_mb": max(gpu) if gpu else None,
    }


def write_profile(clock, path: Path) -> str | None:
    if clock.profiler is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    sort = "self_device_time_total" if clock.device.type == "cuda" else "self_cpu_time_total"
    path.write_text(clock.profiler.key_averages().table(sort_by=sort, row_limit=30) + "\n")
    return str(path)


# ---------------------------------------------------------------------------- inference
def time_inference(model, device, reps: int, infer_batch: int) -> dict:
    import torch

    model = model.to(device).eval()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def median_time(x, n):
        times = []
        for i in range(n + 2):  # two warm-up calls
            sync()
            t = time.perf_counter()
            model(x)
            sync()
            if i >= 2:
                times.append(time.perf_counter() - t)
        return statistics.median(times)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        one = median_time(torch.randn(1, 1, 48, 48, device=device), max(5, reps))
        big = median_time(torch.randn(infer_batch, 1, 48, 48, device=device), max(2, reps // 4))
    return {
        "latency_ms": 1e3 * one,
        "batch": infer_batch,
        "batch_ms": 1e3 * big,
        "samples_per_s": infer_batch / big,
        "gpu_peak_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }


# ---------------------------------------------------------------------------- data
def time_loading(dm) -> dict:
    """FER-2013 load through read_fer2013: the first call decodes when nothing is cached."""
    from bionic.data import read_fer2013

    hp = dm.hparams

    def load():
        t = time.perf_counter()
        splits = read_fer2013(hp.root, hp.cache_dir, hp.val_fraction, hp.split_seed, progress=False)
        return time.perf_counter() - t, splits

    first, splits = load()
    cached = statistics.median(load()[0] for _ in range(3))
    return {"first_load_s": first, "cached_load_s": cached,
            "images": {role: len(splits.labels[role]) for role in ("train", "val", "test")}}


def time_pipeline(dm, device, n_batches: int) -> dict:
    """Batches/s of the DataModule's train loader, moved to the device and augmented there
    (on_after_batch_transfer), as the Trainer does before each step."""
    import torch

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
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    start = time.perf_counter()
                batch = (images.to(device, non_blocking=True), labels.to(device, non_blocking=True))
                x, _ = dm.on_after_batch_transfer(batch, 0)
                if done >= warm:
                    samples += len(labels)
                done += 1
                if done >= n_batches + warm:
                    break
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
    finally:
        dm.trainer = trainer
    return {"batches": n_batches, "batch_size": dm.hparams.batch_size, "augment": bool(dm.hparams.augment),
            "batches_per_s": n_batches / elapsed, "samples_per_s": samples / elapsed}


# ---------------------------------------------------------------------------- the matrix
def time_matrix(root: Path, data_root: str, jobs: int, epochs: int, variants: list[str] | None,
                runs_dir: Path | None, extra: list[str]) -> dict:
    """The whole ablation matrix (one seed) through `python -m bionic ablations`, one run after
    another, then `jobs` at a time, each into fresh run directories (so nothing is skipped)."""
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


# ---------------------------------------------------------------------------- targets
def check_targets(train: dict, data: dict) -> dict:
    fastest = max(v["samples_per_s"] for v in train.values())
    values = {
        "bionic_step_vs_baseline": train["bionic"]["step_ms"] / train["baseline"]["step_ms"],
        "plasticity_share": train["bionic"]["plasticity_share"],
        "data_vs_model": data["samples_per_s"] / fastest,
        "cached_load_s": data["cached_load_s"],
    }
    out = {}
    for name, (what, op, limit) in TARGETS.items():
        v = values[name]
        ok = v <= limit if op == "<=" else v >= limit if op == ">=" else v < limit
        out[name] = {"what": what, "value": v, "target": f"{op} {limit:g}", "pass": bool(ok)}
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
    for col in ("variant", "params", "step ms", "samples/s", "loop samples/s", "plasticity ms", "peak RSS MB",
                "GPU MB"):
        t.add_column(col, justify="left" if col == "variant" else "right")
    for name, v in result["train"].items():
        t.add_row(name, f"{v['params']:,}", f"{v['step_ms']:.1f}", f"{v['samples_per_s']:.0f}",
                  _fmt(v["loop_samples_per_s"], ".0f"), f"{v['plasticity_ms']:.2f}", _fmt(v["rss_peak_mb"], ".0f"),
                  _fmt(v["gpu_peak_mb"], ".0f"))
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
                  f"process peak RSS {result['memory']['peak_rss_mb']:.0f} MB")
    t = Table(title="targets")
    for col in ("target", "value", "limit", ""):
        t.add_column(col)
    for name, v in result["targets"].items():
        verdict = "[green]pass[/green]" if v["pass"] else "[red]FAIL[/red]"
        t.add_row(v["what"], f"{v['value']:.3g}", v["target"], verdict)
    console.print(t)
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
    import torch

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
    clocks: dict[str, list] = {name: [] for name in VARIANTS}
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
                clock = time_training(cli, args.warmup, args.profile and rnd == 0)
                clocks[name].append(clock)
                device = clock.device
                result["train"][name] = summarize_training(cli, clocks[name])
                if rnd > 0:
                    continue
                if args.profile:
                    result["profiles"][name] = write_profile(clock, args.out.parent / f"profile_{name}.txt")
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
    result["targets"] = check_targets(result["train"], data)
    result["matrix"] = (time_matrix(root, args.data_root, args.matrix_jobs, args.matrix_epochs, args.matrix_variants,
                                    args.matrix_runs, extra + shlex.split(args.matrix_args)) if args.matrix else None)
    result["load"]["end"] = load_average()
    return result


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, extra = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args = parser().parse_args(own)
    try:
        result = run(args, extra)
    except BionicError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_json(args.out, result)
    print_table(result)
    print(f"wrote {args.out}", file=sys.stderr)
    missed = [name for name, v in result["targets"].items() if not v["pass"]]
    if missed and args.check:
        print(f"missed target(s): {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
