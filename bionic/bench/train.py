"""Training steps of a built variant through its own Trainer, timed by StepTimer, and their medians."""

from __future__ import annotations

import statistics
from pathlib import Path

from bionic.bench.timers import StepTimer
from bionic.errors import BionicError


def time_training(cli, warmup: int, profile: bool) -> StepTimer:
    """Fit the CLI's model for its max_steps; the timer holds one record per measured step."""
    timer = StepTimer(warmup, profile=profile)
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return timer


def summarize_training(cli, timers: list[StepTimer]) -> dict:
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
    """--profile: the torch.profiler table of the timer's measured steps, written to `path`."""
    if timer.profiler is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    sort = "self_device_time_total" if timer.device.type == "cuda" else "self_cpu_time_total"
    path.write_text(timer.profiler.key_averages().table(sort_by=sort, row_limit=30) + "\n")
    return str(path)
