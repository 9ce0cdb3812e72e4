"""The run directory: checkpoints, per-epoch history and the final metrics.json.

Layout of one run (``--trainer.default_root_dir DIR``):
    DIR/config.yaml            the full parsed config (LightningCLI)
    DIR/checkpoints/best.ckpt  best validation accuracy;  DIR/checkpoints/last.ckpt  end of last epoch
    DIR/history.json           one row per finished epoch (train/val loss and accuracy, wall time)
    DIR/splits.json            which FER-2013 files played train / val / test
    DIR/metrics.json           written by `test`: the scores on the held-out split and the run's facts
    DIR/wandb/                 the W&B run (offline unless wandb.mode=online)
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


def write_json(path: Path, data) -> None:
    """Atomic: a reader (or a resumed matrix) never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=_jsonable))
    os.replace(tmp, path)


def _jsonable(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def checkpoint_callbacks(run_dir: Path) -> list[ModelCheckpoint]:
    """best.ckpt (highest val/acc) and last.ckpt (every epoch, for resuming).

    Two callbacks because Lightning >= 2.5 writes ``save_last`` only when a top-k checkpoint
    was written in the same step, which would leave last.ckpt stale once val/acc plateaus.
    """
    common = dict(dirpath=Path(run_dir) / "checkpoints", save_top_k=1, auto_insert_metric_name=False,
                  enable_version_counter=False)  # a resumed run keeps writing best.ckpt, not best-v1.ckpt
    return [
        ModelCheckpoint(filename="best", monitor="val/acc", mode="max", **common),
        ModelCheckpoint(filename="last", monitor=None, **common),
    ]


class RunRecorder(L.Callback):
    """Keeps the per-epoch history in the checkpoint (so a resumed run keeps it) and on disk."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.history: list[dict] = []
        self._epoch_start = 0.0

    def on_train_epoch_start(self, trainer, pl_module):
        self._epoch_start = time.perf_counter()
        self._loss_sum, self._loss_n = 0.0, 0  # a tensor once summed: no per-step host sync

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self._loss_sum, self._loss_n = self._loss_sum + loss.detach(), self._loss_n + 1

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or not trainer.training and trainer.state.fn != "fit":
            return
        # Validation ends before the training epoch does, so the train figures are read from
        # their accumulators here; the row then goes into the checkpoint saved right after.
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/") and v.numel() == 1}
        train = getattr(pl_module, "train_metrics", None)
        if train is not None and getattr(self, "_loss_n", 0):
            metrics.update({k: float(v) for k, v in train.compute().items()})
            metrics["train/loss"] = float(self._loss_sum) / self._loss_n
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step,
               "time_s": time.perf_counter() - self._epoch_start,
               **{k: v for k, v in sorted(metrics.items()) if math.isfinite(v)}}
        self.history = [h for h in self.history if h["epoch"] != row["epoch"]] + [row]
        if trainer.is_global_zero:
            write_json(self.run_dir / "history.json", self.history)

    def state_dict(self):
        return {"history": self.history}

    def load_state_dict(self, state_dict):
        self.history = list(state_dict.get("history", []))


def read_history(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "history.json"
    return json.loads(path.read_text()) if path.is_file() else []


def best_epoch(history: list[dict]) -> tuple[int | None, float | None]:
    """The epoch the best checkpoint came from: the first with the highest val/acc."""
    scored = [h for h in history if "val/acc" in h]
    if not scored:
        return None, None
    best = max(scored, key=lambda h: (h["val/acc"], -h["epoch"]))
    return best["epoch"], best["val/acc"]
