"""Hebbian plasticity with homeostatic regulation, as Lightning callbacks after each optimizer step.

Both act on a network that exposes (bionic.nets.BioNIC does):
    net.plastic_synapses() -> [(name, MaskedLinear, postsynaptic group)]
    net.laminar_groups()   -> [(name, group)]   groups with .rate, .excitability, .rate_ema
    net.set_capture(on)    -> the layers keep detached activity of the forward pass while on
Capture is switched on at the start of each training batch and off at its end, so the callbacks
read that step's own forward pass (no extra forward) and validation passes capture nothing.

Hebbian rule (Oja 1982), batch-averaged and masked so no synapse is ever created:
    dW = eta * (post pre^T - decay * post^2 W) * mask
Homeostasis (intrinsic plasticity): an EMA of each unit's mean rate; a per-unit excitability (a bias
added before the rectifier) moves by homeostasis_rate * (target_rate - rate_ema), i.e. an integral
controller: silent units become excitable, hyperactive ones less so. Optional synaptic scaling
multiplies each unit's incoming plastic weights by the same error.

Updates are computed without host syncs: a non-finite update leaves the weights unchanged through
torch.where and adds one to a skip counter, which is logged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Optional

import torch
from lightning.pytorch.callbacks import Callback

from bionic.errors import BionicError


@dataclass
class Plasticity:
    """Hyperparameters of the Hebbian and homeostatic updates (model.plasticity in the configs).

    eta: Hebbian learning rate (per optimizer step).
    decay: weight of Oja's forgetting term post^2 W (1 = Oja's rule; 0 = plain Hebb, bounded only by max_norm).
    max_norm: cap on the L2 norm of each unit's incoming plastic weights after a Hebbian update (None = no cap).
    target_rate: homeostatic set point of each unit's mean rate (units of the group's output, post-inhibition).
    homeostasis_rate: step of the excitability per unit of rate error (0 = no homeostasis).
    ema: smoothing factor of the running rate estimate (closer to 1 = slower).
    max_excitability: the excitability is kept within +-max_excitability (LayerNorm units).
    synaptic_scaling: also scale each unit's incoming plastic weights by (1 + homeostasis_rate * error / target_rate).
    """

    eta: float = 1e-3
    decay: float = 1.0
    max_norm: Optional[float] = 5.0
    target_rate: float = 0.25
    homeostasis_rate: float = 1e-3
    ema: float = 0.99
    max_excitability: float = 3.0
    synaptic_scaling: bool = False


def oja_update(weight: torch.Tensor, mask: torch.Tensor, pre: torch.Tensor, post: torch.Tensor,
               eta: float, decay: float = 1.0) -> torch.Tensor:
    """Oja's rule averaged over the batch, masked: eta * (<post pre^T> - decay * <post^2> W) * mask.

    weight, mask: [n_post, n_pre]; pre: [B, n_pre]; post: [B, n_post].
    """
    pre = pre.to(weight.dtype)
    post = post.to(weight.dtype)
    hebb = post.t() @ pre / pre.shape[0]
    forget = (post * post).mean(0).unsqueeze(1) * weight
    return eta * (hebb - decay * forget) * mask


def cap_row_norms(weight: torch.Tensor, max_norm: Optional[float]) -> torch.Tensor:
    if max_norm is None:
        return weight
    norms = weight.norm(dim=1, keepdim=True)
    return weight * (max_norm / norms.clamp_min(1e-12)).clamp(max=1.0)


class _PlasticityCallback(Callback):
    """Shared plumbing: capture switching, a sync-free skip counter, logging."""

    def __init__(self, net: torch.nn.Module, cfg: Plasticity):
        super().__init__()
        self.net = net
        self.cfg = cfg
        self.skipped = torch.zeros((), dtype=torch.long)

    @property
    def state_key(self) -> str:
        return type(self).__name__

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": int(self.skipped)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped = torch.tensor(state_dict.get("skipped", 0))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.net.set_capture(True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.net.set_capture(False)
        with torch.no_grad():
            self.update(trainer, pl_module)

    def update(self, trainer, pl_module) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply(self, target: torch.Tensor, new: torch.Tensor) -> None:
        """target <- new where every entry of new is finite; else keep target and count a skip."""
        ok = torch.isfinite(new).all()
        target.copy_(torch.where(ok, new, target))
        self.skipped = self.skipped.to(ok.device) + (~ok).long()

    @staticmethod
    def _log(trainer, pl_module, name: str, value, prog_bar: bool = False, on_epoch: bool = False) -> None:
        if trainer is not None and pl_module is not None:
            pl_module.log(name, value, on_step=True, on_epoch=on_epoch, prog_bar=prog_bar)


class HebbianPlasticity(_PlasticityCallback):
    """Oja's rule on every connectome-masked weight matrix after each optimizer step.

    Logs per postsynaptic group `plasticity/<group>/hebb_to_grad`: |Hebbian update| / |gradient step|
    over that group's incoming plastic weights (gradient step = change made by the optimizer this
    step), and `plasticity/hebbian_skipped`.
    """

    def __init__(self, net: torch.nn.Module, cfg: Plasticity):
        super().__init__(net, cfg)
        self._before: list[torch.Tensor] | None = None

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self._before = [layer.weight.detach().clone() for _, layer, _ in self.net.plastic_synapses()]

    def update(self, trainer, pl_module) -> None:
        cfg = self.cfg
        sq = defaultdict(lambda: [0.0, 0.0])  # group -> [|hebbian update|^2, |gradient step|^2]
        for k, (name, layer, group) in enumerate(self.net.plastic_synapses()):
            if layer.pre is None or group.rate is None:
                continue
            w = layer.weight
            delta = oja_update(w, layer.mask, layer.pre, group.rate, cfg.eta, cfg.decay)
            new = cap_row_norms(w + delta, cfg.max_norm)
            if self._before is not None:
                post_name = name.split("->")[1]
                sq[post_name][0] = sq[post_name][0] + (new - w).pow(2).sum()
                sq[post_name][1] = sq[post_name][1] + (w - self._before[k]).pow(2).sum()
            self._apply(w, new)
        self._before = None
        for group, (hebb, grad) in sq.items():
            ratio = torch.as_tensor(hebb).sqrt() / torch.as_tensor(grad).sqrt().clamp_min(1e-12)
            self._log(trainer, pl_module, f"plasticity/{group}/hebb_to_grad", ratio, on_epoch=True)
        self._log(trainer, pl_module, "plasticity/hebbian_skipped", self.skipped.float())


class HomeostaticRegulation(_PlasticityCallback):
    """Pulls each unit's running mean rate toward cfg.target_rate through its excitability.

    Logs per group `plasticity/<group>/rate` (mean over units and batch), `plasticity/<group>/silent`
    (fraction of units inactive for every sample of the batch), and `plasticity/homeostasis_skipped`.
    """

    def update(self, trainer, pl_module) -> None:
        cfg = self.cfg
        incoming = defaultdict(list)
        for name, layer, group in self.net.plastic_synapses():
            incoming[id(group)].append(layer)
        for name, group in self.net.laminar_groups():
            if group.rate is None:
                continue
            rate = group.rate.to(group.rate_ema.dtype)
            batch_rate = rate.mean(0)
            first = group.homeostasis_steps == 0
            ema = torch.where(first, batch_rate, cfg.ema * group.rate_ema + (1 - cfg.ema) * batch_rate)
            error = cfg.target_rate - ema
            excitability = (group.excitability + cfg.homeostasis_rate * error).clamp(
                -cfg.max_excitability, cfg.max_excitability)
            ok = torch.isfinite(ema).all() & torch.isfinite(excitability).all()
            self._apply(group.rate_ema, torch.where(ok, ema, torch.full_like(ema, float("nan"))))
            group.excitability.copy_(torch.where(ok, excitability, group.excitability))
            group.homeostasis_steps += ok.long()
            if cfg.synaptic_scaling:
                gain = (1.0 + cfg.homeostasis_rate * error / max(cfg.target_rate, 1e-6)).clamp(0.5, 2.0)
                for layer in incoming[id(group)]:
                    self._apply(layer.weight, layer.weight * gain.unsqueeze(1))
            self._log(trainer, pl_module, f"plasticity/{name}/rate", batch_rate.mean(), on_epoch=True)
            self._log(trainer, pl_module, f"plasticity/{name}/silent",
                      (rate.amax(0) <= 0).float().mean(), on_epoch=True)
        self._log(trainer, pl_module, "plasticity/homeostasis_skipped", self.skipped.float())


def plasticity_callbacks(net: torch.nn.Module, cfg: Plasticity | None = None) -> list[Callback]:
    """The callbacks that make `net` plastic (EmotionClassifier.configure_callbacks when hebbian=True)."""
    cfg = as_plasticity(cfg)
    return [HebbianPlasticity(net, cfg), HomeostaticRegulation(net, cfg)]


def as_plasticity(cfg: Plasticity | Mapping | None) -> Plasticity:
    """A Plasticity from itself, None (defaults) or a mapping: LightningCLI records the module's
    hyperparameters as parsed (plain dicts), so `hparams.plasticity` can arrive as a dict."""
    if cfg is None:
        return Plasticity()
    if isinstance(cfg, Plasticity):
        return cfg
    if isinstance(cfg, Mapping) or hasattr(cfg, "items"):
        known = {f.name for f in fields(Plasticity)}
        unknown = sorted(set(dict(cfg.items())) - known)
        if unknown:
            raise BionicError(f"unknown plasticity setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return Plasticity(**dict(cfg.items()))
    raise BionicError(f"model.plasticity must be a mapping of {', '.join(f.name for f in fields(Plasticity))}, "
                      f"got {type(cfg).__name__}")
