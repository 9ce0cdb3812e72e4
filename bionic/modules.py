"""One training recipe for every network, so the baseline comparison is fair."""

from __future__ import annotations

import math
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from jsonargparse.typing import ClosedUnitInterval, NonNegativeFloat, PositiveFloat
from torch import nn

from bionic.errors import BionicError
from bionic.metrics import full_metrics, test_report, scalar_metrics
from bionic.plasticity import Plasticity, as_plasticity


class EmotionClassifier(L.LightningModule):
    """Cross-entropy with label smoothing, Adam/AdamW with weight decay, an LR schedule.

    Args:
        net: the network (``bionic.nets.BaselineCNN`` or ``bionic.nets.BioNIC``).
        optimizer: ``adamw`` (decoupled weight decay) or ``adam`` (L2 in the gradient).
        lr: peak learning rate (> 0).
        weight_decay: 0 turns it off (the ``no_weight_decay`` ablation).
        label_smoothing: in [0, 1]; 0 turns it off (the ``no_label_smoothing`` ablation).
        scheduler: ``onecycle``, ``cosine``, ``plateau`` or null (the ``no_lr_scheduler`` ablation).
            Training a finished run further (a larger ``trainer.max_epochs``) stretches ``cosine`` to
            the new length from where it stands; ``onecycle`` cannot be stretched and is refused.
        hebbian: Hebbian plasticity with homeostasis after each optimizer step (BioNIC only).
        plasticity: the plasticity rule's hyperparameters.
        test_flip: ``test`` also scores the mean of each image's and its mirror image's class
            probabilities (test-time flip averaging), kept apart under ``flip`` in metrics.json
            and reported as its own ``<variant>+flip`` rows; the plain ``test/*`` figures are the same
            either way. Training never sees it.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: str = "adamw",
        lr: PositiveFloat = 3e-3,
        weight_decay: NonNegativeFloat = 1e-4,
        label_smoothing: ClosedUnitInterval = 0.1,
        scheduler: Optional[str] = "onecycle",
        hebbian: bool = False,
        plasticity: Plasticity = Plasticity(),
        test_flip: bool = False,
    ):
        super().__init__()
        if optimizer not in ("adam", "adamw"):
            raise BionicError(f"model.optimizer must be 'adam' or 'adamw', not '{optimizer}'")
        if scheduler not in (None, "onecycle", "cosine", "plateau"):
            raise BionicError(f"model.scheduler must be onecycle, cosine, plateau or null, not '{scheduler}'")
        # The parser's checked types are float subclasses; plain floats keep checkpoints portable.
        lr, weight_decay, label_smoothing = float(lr), float(weight_decay), float(label_smoothing)
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        # LightningCLI hands the parsed settings over as a mapping; one Plasticity from here on.
        self.plasticity = as_plasticity(plasticity)
        self.train_metrics = scalar_metrics().clone(prefix="train/")
        self.val_metrics = scalar_metrics().clone(prefix="val/")
        self.test_metrics = full_metrics()
        self.test_flip_metrics = full_metrics() if test_flip else None
        self.test_results: dict = {}
        self._resumed: tuple[list, list] | None = None  # the checkpoint's scheduler and optimizer states

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def _loss(self, logits, y):
        return F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = self._loss(logits, y)
        self.train_metrics.update(logits.detach(), y)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.val_metrics.update(logits, y)
        self.log("val/loss", self._loss(logits, y), prog_bar=True)
        self.log_dict(self.val_metrics, prog_bar=True)

    def test_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        probs = logits.softmax(-1)
        self.test_metrics.update(probs, y)
        self.log("test/loss", self._loss(logits, y))
        if self.test_flip_metrics is not None:
            self.test_flip_metrics.update((probs + self(x.flip(-1)).softmax(-1)) / 2, y)

    def on_test_epoch_end(self):
        self.test_results = self._scored(self.test_metrics, "test")
        if self.test_flip_metrics is not None:
            self.test_results["flip"] = self._scored(self.test_flip_metrics, "test_flip")

    def _scored(self, metrics, log_prefix: str) -> dict:
        """metrics.json's figures of one test collection (then reset), its scalars logged as `log_prefix/*`."""
        results = test_report(metrics.compute())
        metrics.reset()
        for name in ("acc", "f1_macro", "auroc"):
            self.log(f"{log_prefix}/{name}", results[f"test/{name}"])
        return results

    def predict_step(self, batch, batch_idx):
        x, _ = batch
        return self(x).softmax(-1)

    def configure_callbacks(self):
        if not self.hparams.hebbian:
            return []
        if not hasattr(self.net, "plastic_synapses"):
            raise BionicError(f"model.hebbian needs a network with plastic synapses (bionic.nets.BioNIC); "
                              f"set model.hebbian: false for {type(self.net).__name__}")
        from bionic.plasticity import plasticity_callbacks

        return plasticity_callbacks(self.net, self.plasticity)

    def configure_optimizers(self):
        hp = self.hparams
        opt_cls = torch.optim.AdamW if hp.optimizer == "adamw" else torch.optim.Adam
        # fused: one kernel per parameter instead of Adam's loop of small ops; the same update up to
        # float rounding (the 30-epoch check is in results/speed_check, docs/speed-levers.md).
        optimizer = opt_cls(decay_groups(self.net, hp.weight_decay), lr=hp.lr, fused=True)
        if hp.scheduler is None:
            return optimizer
        if hp.scheduler == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=3)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "monitor": "val/acc"}}
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        self._fit_resumed_schedule(total)
        if hp.scheduler == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=hp.lr, total_steps=total,
                                                        pct_start=0.15)
        else:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_load_checkpoint(self, checkpoint):
        # Lightning restores the optimizer and schedulers after configure_optimizers, from this dict.
        self._resumed = (checkpoint.get("lr_schedulers") or [], checkpoint.get("optimizer_states") or [])
        # Patience may change on resume (bionic.runs.RESUMABLE), but Lightning would restore the
        # saved one over it; this hook runs before the callbacks' states are loaded.
        if self._trainer is not None:
            saved = checkpoint.get("callbacks") or {}
            for callback in self._trainer.early_stopping_callbacks:
                if callback.state_key in saved:
                    saved[callback.state_key]["patience"] = callback.patience

    def _fit_resumed_schedule(self, total: int) -> None:
        """A resumed fit may train longer (or shorter) than the one that saved the checkpoint."""
        if self._resumed is None:
            return
        schedulers, optimizers = self._resumed
        self._resumed = None
        for state, opt in zip(schedulers, optimizers):
            if state.get("total_steps", total) != total:
                raise BionicError(
                    f"this run's one-cycle schedule was built for {state['total_steps']} steps and this fit needs "
                    f"{total}; one-cycle cannot be stretched: train it into a new run directory (another "
                    "--trainer.default_root_dir), with --model.scheduler cosine if it should be extendable")
            if state.get("T_max", total) != total:
                # Cosine, re-planned for the new length: the lr at the current step is set to where
                # that plan stands, and the schedule's own steps carry on from there.
                step, low = state["last_epoch"], state.get("eta_min", 0.0)
                lrs = [low + (base - low) * (1 + math.cos(math.pi * min(step, total) / total)) / 2
                       for base in state["base_lrs"]]
                for group, lr in zip(opt["param_groups"], lrs):
                    group["lr"] = lr
                state.update(T_max=total, _last_lr=lrs)


def decay_groups(net: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices and kernels only. Biases, LayerNorm and BatchNorm gains
    and scalar strengths (the lateral inhibition's, which decay would pull toward softplus(0),
    not toward zero) are left undecayed, as is usual."""
    params = [p for p in net.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]

