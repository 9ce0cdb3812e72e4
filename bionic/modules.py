"""One training recipe for every network, so the baseline comparison is fair."""

from __future__ import annotations

from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from bionic.errors import BionicError
from bionic.metrics import full_metrics, test_report, scalar_metrics
from bionic.plasticity import Plasticity, as_plasticity


class EmotionClassifier(L.LightningModule):
    """Cross-entropy with label smoothing, Adam/AdamW with weight decay, an LR schedule.

    Args:
        net: the network (``bionic.nets.BaselineCNN`` or ``bionic.nets.BioNIC``).
        optimizer: ``adamw`` (decoupled weight decay) or ``adam`` (L2 in the gradient).
        lr: peak learning rate.
        weight_decay: 0 turns it off (the ``no_weight_decay`` ablation).
        label_smoothing: 0 turns it off (the ``no_label_smoothing`` ablation).
        scheduler: ``onecycle``, ``cosine``, ``plateau`` or null (the ``no_lr_scheduler`` ablation).
        hebbian: Hebbian plasticity with homeostasis after each optimizer step (BioNIC only).
        plasticity: the plasticity rule's hyperparameters.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: str = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        label_smoothing: float = 0.1,
        scheduler: Optional[str] = "onecycle",
        hebbian: bool = False,
        plasticity: Plasticity = Plasticity(),
    ):
        super().__init__()
        if optimizer not in ("adam", "adamw"):
            raise BionicError(f"model.optimizer must be 'adam' or 'adamw', not '{optimizer}'")
        if scheduler not in (None, "onecycle", "cosine", "plateau"):
            raise BionicError(f"model.scheduler must be onecycle, cosine, plateau or null, not '{scheduler}'")
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        # LightningCLI hands the parsed settings over as a mapping; one Plasticity from here on.
        self.plasticity = as_plasticity(plasticity)
        self.train_metrics = scalar_metrics().clone(prefix="train/")
        self.val_metrics = scalar_metrics().clone(prefix="val/")
        self.test_metrics = full_metrics()
        self.test_results: dict = {}
        self.predictions: list[torch.Tensor] = []

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
        self.test_metrics.update(logits.softmax(-1), y)
        self.log("test/loss", self._loss(logits, y))

    def on_test_epoch_end(self):
        self.test_results = test_report(self.test_metrics.compute())
        self.test_metrics.reset()
        self.log("test/acc", self.test_results["test/acc"])
        self.log("test/f1_macro", self.test_results["test/f1_macro"])
        self.log("test/auroc", self.test_results["test/auroc"])

    def predict_step(self, batch, batch_idx):
        x, _ = batch
        probs = self(x).softmax(-1)
        self.predictions.append(probs.cpu())
        return probs

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
        optimizer = opt_cls(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler is None:
            return optimizer
        if hp.scheduler == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=3)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "monitor": "val/acc"}}
        total = self.trainer.estimated_stepping_batches
        if hp.scheduler == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=hp.lr, total_steps=max(int(total), 1),
                                                        pct_start=0.15)
        else:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(int(total), 1))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
