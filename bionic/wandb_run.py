"""The run's Weights & Biases logger: offline by default, started in the background.

W&B's start (importing wandb, launching its wandb-core service, opening the run) takes seconds
that the run does not need to wait for: nothing is logged before the first steps end. So
`BackgroundWandbLogger` opens the W&B run in a thread from the moment the Trainer is built, while
the data loads and training begins; hyperparameters and metrics logged before it is open are
kept in order and sent once it is. Whatever is logged reaches the run exactly as Lightning's
WandbLogger would send it, and a run that ends (or fails) first still waits for W&B to finish.
"""

from __future__ import annotations

import hashlib
import netrc
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger

from bionic.errors import BionicError


@dataclass
class WandbSettings:
    """Weights & Biases: offline by default, so a fresh machine needs no account (`wandb sync` uploads).

    Args:
        project: W&B project.
        group: runs to compare side by side (the ablation matrix uses the variant name).
        name: run name (default: the run directory's name).
        job_type: e.g. ``train`` or ``ablation``.
        tags: free tags.
        mode: ``offline`` (default), ``online`` (needs ``wandb login``), or ``disabled`` (no W&B at all).
    """

    project: str = "bionic"
    group: Optional[str] = None
    name: Optional[str] = None
    job_type: str = "train"
    tags: list[str] = field(default_factory=list)
    mode: str = "offline"


class BackgroundWandbLogger(WandbLogger):
    """Lightning's WandbLogger, with `wandb.init` in a thread started at construction.

    Hyperparameters and metrics logged before the run is open are queued and sent first, in order,
    once it is; `run()`, and any use of `experiment`'s attributes, waits for the run.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._queue: list[tuple[str, tuple]] = []
        self._lock = threading.Lock()
        self._error: Exception | None = None
        self._warned = False
        self._opener = threading.Thread(target=self._open, name="wandb-init", daemon=True)
        self._opener.start()

    def _open(self) -> None:
        try:
            WandbLogger.experiment.fget(self)
        except Exception as exc:  # said in the main thread, where the run goes on without W&B
            self._error = exc

    @property
    def is_open(self) -> bool:
        return not self._opener.is_alive()

    @property
    def experiment(self):
        # Lightning touches `logger.experiment` at setup only to have the run started: until it is
        # open, a stand-in answers, and any use of the run through it waits for the run.
        # A run that could not open is said once, at the first log, not here (training goes on).
        return self.run() if self.is_open and self._error is None else _RunWhenOpen(self)

    def run(self):
        """The W&B run itself, once open (waits for it)."""
        self._opener.join()
        if self._error is not None:
            raise BionicError(f"W&B could not start a run ({self._error}); use --wandb.mode disabled")
        return WandbLogger.experiment.fget(self)

    def _send(self, kind: str, args: tuple) -> None:
        # Queued entries go first, so W&B sees everything in the order it was logged.
        with self._lock:
            self._queue.append((kind, args))
            if not self.is_open:
                return
            queue, self._queue = self._queue, []
        self._deliver(queue)

    def _deliver(self, entries: list) -> None:
        if self._error is not None:
            if not self._warned:  # the training is worth more than its W&B copy: it goes on
                print(f"warning: W&B could not start a run ({type(self._error).__name__}: {self._error}); this run "
                      "goes on without W&B (history.json and metrics.json are written as always)", file=sys.stderr)
                self._warned = True
            return
        for kind, args in entries:
            getattr(WandbLogger, kind)(self, *args)

    def log_hyperparams(self, params) -> None:
        self._send("log_hyperparams", (params,))

    def log_metrics(self, metrics, step=None) -> None:
        self._send("log_metrics", (dict(metrics), step))

    def flush(self) -> None:
        """Wait for the W&B run and send what is queued."""
        self._opener.join()
        with self._lock:
            queue, self._queue = self._queue, []
        self._deliver(queue)

    def finalize(self, status: str) -> None:
        self.flush()
        super().finalize(status)

    def __getstate__(self):
        # Pickled (to spawned processes): sent after what is queued, without the thread and lock.
        self.flush()
        state = super().__getstate__()
        for name in ("_opener", "_lock", "_queue"):
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._queue, self._lock = [], threading.Lock()
        self._opener = threading.Thread(target=lambda: None)
        self._opener.start()


class _RunWhenOpen:
    """Stands for a BackgroundWandbLogger's W&B run while it opens; any attribute waits for the run."""

    def __init__(self, logger: BackgroundWandbLogger):
        self._logger = logger

    def __getattr__(self, name):
        return getattr(self._logger.run(), name)


def wandb_logger(settings: WandbSettings, run_dir: Path) -> BackgroundWandbLogger | bool:
    """The run's logger from its `wandb:` settings (False when W&B is disabled)."""
    if settings.mode == "disabled":
        return False
    if settings.mode not in ("offline", "online"):
        raise BionicError(f"wandb.mode must be offline, online or disabled, not '{settings.mode}'")
    if settings.mode == "online" and not wandb_logged_in():
        raise BionicError("wandb.mode online needs a W&B account on this machine: run `wandb login` "
                          "(or set WANDB_API_KEY), or use --wandb.mode offline and `wandb sync` later")
    os.environ.setdefault("WANDB_SILENT", "true")
    run_dir.mkdir(parents=True, exist_ok=True)
    # One W&B id per run directory: fit, its resumption and its test all land in one W&B run.
    run_id = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:12]
    return BackgroundWandbLogger(
        project=settings.project, group=settings.group, name=settings.name or run_dir.name,
        job_type=settings.job_type, tags=list(settings.tags), save_dir=str(run_dir),
        offline=settings.mode == "offline", id=run_id, resume="allow",
    )


def wandb_logged_in() -> bool:
    """An API key for W&B's server in the environment or ~/.netrc, where `wandb login` puts it."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def finish_wandb(logger) -> None:
    """Send what is queued and close the W&B run, so several runs in one process (tests, sweeps)
    do not log into one W&B run."""
    if isinstance(logger, BackgroundWandbLogger):
        logger.flush()
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()
