"""LightningCLI for BioNIC: configs are the interface; every run owns one directory."""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from lightning.pytorch.cli import LightningCLI

from bionic import EMOTIONS
from bionic.errors import BionicError
from bionic.runs import RunRecorder, best_epoch, checkpoint_callbacks, read_history, write_json


@dataclass
class WandbSettings:
    """Weights & Biases: offline by default, so a fresh machine needs no account (`wandb sync` uploads).

    Args:
        project: W&B project.
        group: runs to compare side by side (the ablation matrix uses the variant name).
        name: run name (default: the run directory's name).
        job_type: e.g. ``train`` or ``ablation``.
        tags: free tags.
        mode: ``offline`` (default), ``online``, or ``disabled`` (no W&B at all).
    """

    project: str = "bionic"
    group: Optional[str] = None
    name: Optional[str] = None
    job_type: str = "train"
    tags: list[str] = field(default_factory=list)
    mode: str = "offline"


class BionicCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_class_arguments(WandbSettings, "wandb")

    # -- the run directory ------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        root = self.config_init[self.subcommand]["trainer"].get("default_root_dir")
        return Path(root or "runs/default")

    def _cfg(self):
        return self.config[self.subcommand]

    def before_instantiate_classes(self) -> None:
        # Only fit owns config.yaml; test/predict read it and must not rewrite it.
        if self.subcommand != "fit":
            self.save_config_callback = None

    def _instantiate_trainer(self, config, callbacks):
        run_dir = Path(config.get("default_root_dir") or "runs/default")
        config["default_root_dir"] = str(run_dir)
        callbacks = list(callbacks)
        # Present for every subcommand (they only write during fit), so restoring a checkpoint
        # finds the callbacks that made it and Lightning adds no default checkpointer of its own.
        if config.get("enable_checkpointing", True) is not False:
            callbacks += checkpoint_callbacks(run_dir)
        callbacks.append(RunRecorder(run_dir))
        if config.get("logger") in (None, True):
            config["logger"] = self._wandb_logger(run_dir) if self.subcommand in ("fit", "test") else False
        return super()._instantiate_trainer(config, callbacks)

    def _wandb_logger(self, run_dir: Path):
        settings = self._cfg()["wandb"]
        if settings.mode == "disabled":
            return False
        if settings.mode not in ("offline", "online"):
            raise BionicError(f"wandb.mode must be offline, online or disabled, not '{settings.mode}'")
        os.environ.setdefault("WANDB_SILENT", "true")
        from lightning.pytorch.loggers import WandbLogger

        run_dir.mkdir(parents=True, exist_ok=True)
        # One W&B id per run directory: fit, its resumption and its test all land in one W&B run.
        run_id = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:12]
        return WandbLogger(
            project=settings.project, group=settings.group, name=settings.name or run_dir.name,
            job_type=settings.job_type, tags=list(settings.tags), save_dir=str(run_dir), offline=settings.mode == "offline",
            id=run_id, resume="allow",
        )

    # -- subcommand hooks --------------------------------------------------------------------
    def before_fit(self) -> None:
        last = self.run_dir / "checkpoints" / "last.ckpt"
        if self.config_init["fit"].get("ckpt_path") is None and last.is_file():
            print(f"resuming from {last} (delete {self.run_dir} to start over)", file=sys.stderr)
            self.config_init["fit"]["ckpt_path"] = str(last)
        self._log_run_facts()

    def after_fit(self) -> None:
        self._finish_wandb()

    def before_test(self) -> None:
        best = self.run_dir / "checkpoints" / "best.ckpt"
        if self.config_init["test"].get("ckpt_path") is None:
            if not best.is_file():
                raise BionicError(f"no checkpoint to test: pass --ckpt_path, or fit first so {best} exists")
            self.config_init["test"]["ckpt_path"] = str(best)

    def after_test(self) -> None:
        self._write_metrics()
        self._finish_wandb()

    def after_predict(self) -> None:
        import torch

        files = self.datamodule.predict_files
        probs = torch.cat(self.model.predictions) if self.model.predictions else torch.empty(0, len(EMOTIONS))
        lines = ["file,emotion," + ",".join(f"p_{e}" for e in EMOTIONS)]
        for f, p in zip(files, probs.tolist()):
            lines.append(f"{f},{EMOTIONS[int(torch.tensor(p).argmax())]}," + ",".join(f"{v:.4f}" for v in p))
        print("\n".join(lines))
        out = self.run_dir / "predictions.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines) + "\n")
        print(f"wrote {out}", file=sys.stderr)

    # -- what a run records ------------------------------------------------------------------
    def _run_facts(self) -> dict:
        net = self.model.net
        return {
            "model": type(net).__name__,
            "params": self.model.n_params,
            "synapses": getattr(net, "n_synapses", None),
            "wiring_source": getattr(net, "wiring_source", None),
            "seed": self._cfg().get("seed_everything"),
        }

    def _log_run_facts(self) -> None:
        facts = self._run_facts()
        print(f"{facts['model']}: {facts['params']:,} parameters"
              + (f", {facts['synapses']:,} unmasked synapses" if facts["synapses"] is not None else ""),
              file=sys.stderr)
        if facts["wiring_source"]:
            print(f"wiring: {facts['wiring_source']}", file=sys.stderr)
        if self.trainer.logger is not None:
            self.trainer.logger.log_hyperparams({"config": self._config_dict(), **facts})

    def _config_dict(self) -> dict:
        import json

        return json.loads(self.parser.dump(self.config, format="json", skip_check=True))[self.subcommand]

    def _write_metrics(self) -> None:
        run_dir = self.run_dir
        results = dict(self.model.test_results)
        history = read_history(run_dir)
        epoch, best_val = best_epoch(history)
        times = [h["time_s"] for h in history if "time_s" in h]
        ckpt = self.config_init["test"].get("ckpt_path")
        splits = self.datamodule.split_summary() if hasattr(self.datamodule, "split_summary") else None
        if hasattr(self.datamodule, "split_ids") and self.datamodule.split_ids() is not None:
            write_json(run_dir / "splits.json", self.datamodule.split_ids())
        test_loss = self.trainer.callback_metrics.get("test/loss")
        metrics = {
            **self._run_facts(),
            "run_dir": str(run_dir),
            "ckpt_path": str(ckpt),
            **{k: v for k, v in results.items() if k.startswith("test/")},
            "test/loss": float(test_loss) if test_loss is not None else None,
            "per_class": results.get("per_class"),
            "confusion_matrix": results.get("confusion_matrix"),
            "best_epoch": epoch,
            "epochs_trained": len(history),
            "best_val_acc": best_val,
            "time_per_epoch_s": sum(times) / len(times) if times else None,
            "history": history,
            "splits": splits,
            "config": self._config_dict(),
        }
        write_json(run_dir / "metrics.json", metrics)
        if results.get("confusion_matrix"):
            from bionic.metrics import plot_confusion

            plot_confusion(results["confusion_matrix"], run_dir / "confusion_matrix.png",
                           f"{metrics['model']} test acc {metrics['test/acc']:.3f}")
        print(f"test/acc {metrics['test/acc']:.4f}  test/f1_macro {metrics['test/f1_macro']:.4f}  "
              f"-> {run_dir / 'metrics.json'}", file=sys.stderr)

    def _finish_wandb(self) -> None:
        # Several runs in one process (tests, sweeps) would otherwise log into one W&B run.
        if "wandb" in sys.modules:
            import wandb

            if wandb.run is not None:
                wandb.finish()


def run_cli(argv: list[str] | None = None) -> None:
    from bionic.data import FER2013DataModule
    from bionic.modules import EmotionClassifier

    try:
        BionicCLI(
            EmotionClassifier,
            FER2013DataModule,
            args=argv,
            save_config_kwargs={"overwrite": True},
        )
    except BionicError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
