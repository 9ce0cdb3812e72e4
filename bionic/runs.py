"""The run directory: what one run writes, and the checks that keep one directory to one config.

Layout of one run (``--trainer.default_root_dir DIR``; the names are bionic.run_files'):
    DIR/identity.json          which config this directory belongs to (written when the first fit starts)
    DIR/config.yaml            the full parsed config of the latest fit (LightningCLI)
    DIR/checkpoints/best.ckpt  best validation accuracy;  DIR/checkpoints/last.ckpt  end of last epoch
    DIR/history.json           one row per finished epoch (train/val loss and accuracy, wall time; with
                               plasticity, each group's mean rate and silent share)
    DIR/splits.json            which FER-2013 files played train / val / test
    DIR/metrics.json           written by `test`: the scores on the held-out split and the run's facts
    DIR/predictions.csv        written by `predict` (bionic.predict.PredictionWriter)
    DIR/wandb/                 the W&B run (offline unless wandb.mode=online)

`run_callbacks` is everything a Trainer needs to keep this layout; bionic.cli adds it to every
subcommand, so restoring a checkpoint finds the callbacks that made it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from bionic.errors import BionicError
from bionic.run_files import CHECKPOINTS, CONFUSION_MATRIX, HISTORY, IDENTITY, METRICS, SPLITS

# Settings that may change when a run is resumed or moved without changing what it trains:
# how long it trains (so a finished run can train further), how much of each epoch is used,
# where the data and the run live, which machine runs it, how progress is shown, and W&B's
# labels. Everything else in the parsed config is the run's identity.
RESUMABLE = (
    "trainer.max_epochs", "trainer.min_epochs", "trainer.max_steps", "trainer.min_steps", "trainer.max_time",
    "trainer.limit_*_batches", "trainer.num_sanity_val_steps", "trainer.val_check_interval",
    "trainer.check_val_every_n_epoch", "trainer.fast_dev_run",
    "trainer.callbacks.*.init_args.patience", "trainer.callbacks.*.init_args.verbose",
    "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.log_every_n_steps",
    "trainer.logger", "trainer.profiler", "trainer.default_root_dir",
    "trainer.accelerator", "trainer.devices", "trainer.num_nodes", "trainer.strategy",
    "model.test_flip", "data.root", "data.cache_dir", "data.num_workers", "data.progress", "data.predict_path", "data.faces", "data.eval_batch_size",
    "wandb.*", "ckpt_path", "config", "verbose", "weights_only",
)


# ---------------------------------------------------------------------------- files
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
    return str(obj)


def read_history(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / HISTORY
    return json.loads(path.read_text()) if path.is_file() else []


def best_epoch(history: list[dict]) -> tuple[int | None, float | None]:
    """The epoch the best checkpoint came from: the first with the highest val/acc."""
    scored = [h for h in history if "val/acc" in h]
    if not scored:
        return None, None
    best = max(scored, key=lambda h: (h["val/acc"], -h["epoch"]))
    return best["epoch"], best["val/acc"]


# ---------------------------------------------------------------------------- checks before a run
def check_run_dir(run_dir: Path, create: bool) -> None:
    """A run directory that can hold the run: not a file, not under one, writable (`create`: made now)."""
    run_dir = Path(run_dir)
    what = "pass another --trainer.default_root_dir"
    if run_dir.exists() and not run_dir.is_dir():
        raise BionicError(f"run directory {run_dir} is an existing file; {what}")
    above = run_dir
    while not above.exists() and above != above.parent:
        above = above.parent
    if above.exists() and not above.is_dir():
        raise BionicError(f"run directory {run_dir} lies under the file {above}; {what}")
    if not create:
        return
    probe = run_dir / f".write-test-{os.getpid()}"
    made = [d for d in (run_dir, *run_dir.parents) if not d.exists()]  # deepest first
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise BionicError(f"cannot write the run directory {run_dir} ({exc.strerror}); {what}") from None
    # Only a probe: a run that stops later on bad input leaves no empty folder behind.
    for d in made:
        d.rmdir()


def is_resumable(key: str) -> bool:
    """Whether a flat setting ("data.eval_batch_size") may change without changing the run (RESUMABLE)."""
    return any(fnmatch.fnmatch(key, p) for p in RESUMABLE)


def identity(config: dict) -> dict:
    """The settings that identify a run (the parsed config less RESUMABLE), flat, and their hash."""
    settings = {k: v for k, v in _flat(config).items() if not is_resumable(k)}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"hash": digest, "settings": settings}


def _flat(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list) and any(isinstance(v, (dict, list)) for v in tree):
        items = ((str(i), v) for i, v in enumerate(tree))
    else:
        return {prefix[:-1]: tree}
    out: dict = {}
    for key, sub in items:
        out.update(_flat(sub, f"{prefix}{key}."))
    return out


def refuse_other_config(run_dir: Path, mine: dict, recorded: dict | None, scoring: bool = False) -> None:
    """One run directory, one config: a fit whose identity differs from the recorded one stops here,
    before anything in the directory is written. Scoring (validate/test/predict) the directory's
    checkpoints needs only the same network and training recipe (`model.*`)."""
    if recorded is None or recorded.get("hash") == mine["hash"]:
        return
    old, new = recorded.get("settings", {}), mine["settings"]
    differ = sorted((k for k in old.keys() | new.keys() if old.get(k, "<unset>") != new.get(k, "<unset>")
                     and (not scoring or k.startswith("model."))),
                    key=lambda k: (not k.endswith("class_path"), k))
    if not differ:
        return
    shown = ", ".join(f"{k}: {old.get(k, '<unset>')} -> {new.get(k, '<unset>')}" for k in differ[:3])
    more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
    todo = (f"pass --config {Path(run_dir) / 'config.yaml'}" if scoring else
            f"pass another --trainer.default_root_dir, or delete {run_dir} to start over")
    raise BionicError(f"{run_dir} holds a run of another config ({shown}{more}); {todo}")


def recorded_identity(run_dir: Path) -> dict | None:
    path = Path(run_dir) / IDENTITY
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise BionicError(f"{path} is unreadable; delete {run_dir} to start over, "
                          "or pass another --trainer.default_root_dir") from None


def read_checkpoint(path: Path) -> dict:
    """A Lightning checkpoint, or one line saying why `path` is not one."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise BionicError(f"no checkpoint at {path}; pass --ckpt_path to a run's checkpoints/best.ckpt")
    try:
        # As LightningCLI reads a --ckpt_path: tensors and plain data only, no code runs.
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated archives and non-checkpoints fail in many ways
        raise BionicError(f"{path} is not a readable checkpoint ({type(exc).__name__}: it is truncated or "
                          "not a .ckpt file); pass another --ckpt_path, or delete it and fit again") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise BionicError(f"{path} is not a Lightning checkpoint (no state_dict); pass a run's checkpoints/best.ckpt")
    return ckpt


def check_checkpoint_fits(ckpt: dict, path: Path, model) -> None:
    """The checkpoint's weights have the names and shapes of `model`'s, i.e. it is this network's."""
    theirs = {k: tuple(v.shape) for k, v in ckpt["state_dict"].items() if hasattr(v, "shape")}
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if theirs != ours:
        differ = len(theirs.keys() ^ ours.keys()) + sum(theirs[k] != ours[k] for k in theirs.keys() & ours.keys())
        raise BionicError(f"{path} holds another network than model.net ({type(model.net).__name__}; {differ} "
                          "weights differ); pass --config with the config.yaml of the run that wrote it")


# ---------------------------------------------------------------------------- the callbacks
def run_callbacks(run_dir: Path, config: dict | None = None, ident: dict | None = None,
                  checkpoints: bool = True) -> list[L.Callback]:
    """What keeps one run's directory: history, identity and metrics (RunFiles), and its checkpoints."""
    return [RunFiles(run_dir, config, ident), *(checkpoint_callbacks(run_dir) if checkpoints else [])]


def checkpoint_callbacks(run_dir: Path) -> list[ModelCheckpoint]:
    """best.ckpt (highest val/acc) and last.ckpt (every epoch, for resuming).

    Two callbacks because Lightning >= 2.5 writes ``save_last`` only when a top-k checkpoint
    was written in the same step, which would leave last.ckpt stale once val/acc plateaus.
    """
    common = dict(dirpath=Path(run_dir) / CHECKPOINTS, save_top_k=1, auto_insert_metric_name=False,
                  enable_version_counter=False)  # a resumed run keeps writing best.ckpt, not best-v1.ckpt
    return [
        ModelCheckpoint(filename="best", monitor="val/acc", mode="max", **common),
        ModelCheckpoint(filename="last", monitor=None, **common),
    ]


def run_facts(pl_module, seed) -> dict:
    net = pl_module.net
    return {
        "model": type(net).__name__,
        "params": pl_module.n_params,
        "synapses": getattr(net, "n_synapses", None),  # BioNIC only
        "wiring_source": getattr(net, "wiring_source", None),
        "seed": seed,
    }


def machine(device) -> dict:
    """Where `test` ran; in the matrix that is where the fit ran too, so epoch times say which
    machine they were measured on when runs come from a CPU and a GPU."""
    import torch

    from bionic.bench.machine import cpu_model

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"device": device.type, "gpu": gpu, "cpu": cpu_model(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}


class RunFiles(L.Callback):
    """identity.json when a fit starts, history.json per epoch (also kept in the checkpoint, so a
    resumed run keeps it; a callback with `epoch_summary()` adds its epoch's values to the row),
    and metrics.json, splits.json and the confusion matrix after `test`.

    Args:
        run_dir: the run directory.
        config: the parsed config (recorded in metrics.json and W&B).
        ident: the config's identity (bionic.runs.identity), written at the first fit.
    """

    def __init__(self, run_dir: Path, config: dict | None = None, ident: dict | None = None):
        self.run_dir = Path(run_dir)
        self.config = config or {}
        self.ident = ident
        self.history: list[dict] = []
        self._epoch_start = 0.0
        self._loss_sum, self._loss_n = 0.0, 0

    # -- fit ----------------------------------------------------------------------------------
    def setup(self, trainer, pl_module, stage):
        # After the data loaded (the datamodule's setup runs first), so a fit that never started
        # leaves no claim on the directory.
        if stage == "fit" and self.ident is not None and trainer.is_global_zero:
            write_json(self.run_dir / IDENTITY, self.ident)

    def on_fit_start(self, trainer, pl_module):
        facts = run_facts(pl_module, self.config.get("seed_everything"))
        print(f"{facts['model']}: {facts['params']:,} parameters"
              + (f", {facts['synapses']:,} unmasked synapses" if facts["synapses"] is not None else ""),
              file=sys.stderr)
        if facts["wiring_source"]:
            print(f"wiring: {facts['wiring_source']}", file=sys.stderr)
        if trainer.logger is not None:
            trainer.logger.log_hyperparams({"config": self.config, **facts})

    def on_train_epoch_start(self, trainer, pl_module):
        self._epoch_start = time.perf_counter()
        self._loss_sum, self._loss_n = 0.0, 0  # a tensor once summed: no per-step host sync

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self._loss_sum, self._loss_n = self._loss_sum + loss.detach(), self._loss_n + 1

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        # Validation ends before the training epoch does: the row goes into the checkpoint saved after it.
        self._record(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        # An epoch without validation (limit_val_batches 0, no val split, max_steps inside the epoch)
        # is recorded too, before the checkpoint callbacks (which Lightning runs last) save it.
        if not any(h["epoch"] == trainer.current_epoch for h in self.history):
            self._record(trainer, pl_module)

    def _record(self, trainer, pl_module) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/") and v.numel() == 1}
        if self._loss_n:
            metrics.update({k: float(v) for k, v in pl_module.train_metrics.compute().items()})
            metrics["train/loss"] = float(self._loss_sum) / self._loss_n
        for callback in trainer.callbacks:  # what a callback measured over the epoch (plasticity's cell activity)
            if callable(getattr(callback, "epoch_summary", None)):
                metrics.update(callback.epoch_summary())
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step,
               "time_s": time.perf_counter() - self._epoch_start,
               **{k: v for k, v in sorted(metrics.items()) if math.isfinite(v)}}
        self.history = [h for h in self.history if h["epoch"] != row["epoch"]] + [row]
        if trainer.is_global_zero:
            write_json(self.run_dir / HISTORY, self.history)

    def state_dict(self):
        return {"history": self.history}

    def load_state_dict(self, state_dict):
        self.history = list(state_dict.get("history", []))

    # -- test ---------------------------------------------------------------------------------
    def on_test_end(self, trainer, pl_module):
        if trainer.is_global_zero:
            self.write_metrics(trainer, pl_module)

    def write_metrics(self, trainer, pl_module) -> None:
        scores = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/") and v.numel() == 1}
        # The per-class figures and the confusion matrix are not scalars, so the trainer does not
        # carry them; the module keeps them from its test epoch.
        tables = pl_module.test_results
        history = read_history(self.run_dir)
        epoch, best_val = best_epoch(history)
        times = [h["time_s"] for h in history if "time_s" in h]
        datamodule = trainer.datamodule
        if datamodule.split_ids() is not None:
            write_json(self.run_dir / SPLITS, datamodule.split_ids())
        metrics = {
            **run_facts(pl_module, self.config.get("seed_everything")),
            "run_dir": str(self.run_dir),
            "ckpt_path": str(trainer.ckpt_path),
            **scores,
            "per_class": tables.get("per_class"),
            "confusion_matrix": tables.get("confusion_matrix"),
            "flip": tables.get("flip"),  # model.test_flip: the flip-averaged figures, never the plain ones
            "best_epoch": epoch,
            "epochs_trained": len(history),
            "best_val_acc": best_val,
            "time_per_epoch_s": sum(times) / len(times) if times else None,
            "machine": machine(pl_module.device),
            "history": history,
            "splits": datamodule.split_summary(),
            "config": self.config,
        }
        write_json(self.run_dir / METRICS, metrics)
        if tables.get("confusion_matrix"):
            from bionic.metrics import plot_confusion

            plot_confusion(tables["confusion_matrix"], self.run_dir / CONFUSION_MATRIX,
                           f"{metrics['model']} test acc {metrics['test/acc']:.3f}")
        print(f"test/acc {metrics['test/acc']:.4f}  test/f1_macro {metrics['test/f1_macro']:.4f}  "
              f"-> {self.run_dir / METRICS}", file=sys.stderr)
