"""The bench's clock and the Lightning callbacks that read it inside a real fit."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from lightning.pytorch.callbacks import Callback

from bionic.bench.machine import rss_mb

# The file FirstStepClock writes its clock to: set by the start-up timing for its fit subprocess.
FIRST_STEP_ENV = "BIONIC_BENCH_FIRST_STEP"


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


def is_plasticity(callback) -> bool:
    return type(callback).__module__ == "bionic.plasticity"


def start_profiler(device):
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    profiler = torch.profiler.profile(activities=activities)
    profiler.start()
    return profiler


class Mark(Callback):
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
        bracket = [Mark(self._open), *timed, Mark(self._close)] if timed else []
        trainer.callbacks = [self, *(c for c in others if not self.timed(c)), *bracket, Mark(self._end)]
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


class FirstStepClock(Callback):
    """For the start-up timing only: at the first training batch, write the wall clock to the file
    named by $BIONIC_BENCH_FIRST_STEP and end the process at once (the fit was only started to be
    timed; nothing of it is kept)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        Path(os.environ[FIRST_STEP_ENV]).write_text(repr(time.time()))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
