"""Hebbian plasticity with homeostatic regulation, as Lightning callbacks after each optimizer step.

Both act on a network that exposes its structure (bionic.nets.BioNIC does):
    net.plastic_synapses() -> [(name, MaskedLinear, postsynaptic group)]
    net.laminar_groups()   -> [(name, group)]   groups with .excitability, .rate_ema, .homeostasis_steps
The network knows nothing of its observers. Each callback owns an ActivityRecorder: forward hooks
attached at the start of each training batch and removed at its end, so the callbacks read the
training step's own forward pass (no extra forward), validation is never observed, and the network
holds no hooks or activity between batches.

Once per optimizer step: under gradient accumulation (trainer.accumulate_grad_batches = k) the
activity of all k batches of the window is kept and the update runs once, after optimizer.step,
on the window's samples taken together, as if they were the one large batch that accumulation
stands for. With k = 1 that is every batch, on its own activity.

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Optional

import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

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
    follow_lr: scale eta by (optimizer's current lr / model.lr), so the Hebbian share of each step stays
        roughly constant through LR warm-up and annealing, and plasticity settles when learning does.
    centered: apply the rule to activity minus its batch mean (the covariance form of Oja's rule), so
        weights follow the inputs' principal component rather than their mean rate.
    """

    eta: float = 3e-5
    decay: float = 1.0
    max_norm: Optional[float] = 5.0
    target_rate: float = 0.25
    homeostasis_rate: float = 3e-3
    ema: float = 0.95
    max_excitability: float = 3.0
    synaptic_scaling: bool = False
    follow_lr: bool = True
    centered: bool = False


def _activity(pre, post, dtype, centered):
    if pre.dtype != dtype or post.dtype != dtype:  # recorded under autocast
        pre, post = pre.to(dtype), post.to(dtype)
    if centered:
        pre, post = pre - pre.mean(0), post - post.mean(0)
    return pre, post


class SynapseIndex:
    """The existing synapses of one masked matrix, so an update reads and writes only them.

    Masked entries cannot change by construction, and all elementwise work is O(synapses) (the
    column's masks hold 2-6 % of the entries). The Hebbian product itself is one dense matrix
    product gathered at the synapses: BLAS beats gathering B x n_synapses pairs.
    """

    def __init__(self, mask: torch.Tensor):
        self.shape = tuple(mask.shape)
        self.rows, self.cols = mask.nonzero(as_tuple=True)
        self.flat = self.rows * self.shape[1] + self.cols

    def gather(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.reshape(-1)[self.flat]

    def oja(self, values: torch.Tensor, pre: torch.Tensor, post: torch.Tensor, eta: float,
            decay: float = 1.0, centered: bool = False) -> torch.Tensor:
        """Oja's rule averaged over the batch, at the existing synapses (values = their current weights):
        eta * (<post pre^T> - decay * <post^2> W). pre: [B, n_pre]; post: [B, n_post]. centered:
        activity minus its batch mean (covariance form)."""
        pre, post = _activity(pre, post, values.dtype, centered)
        hebb = (post.t() @ pre).reshape(-1)[self.flat] / pre.shape[0]
        forget = (post * post).mean(0)[self.rows] * values
        return eta * (hebb - decay * forget)

    def cap_row_norms(self, values: torch.Tensor, max_norm: Optional[float]) -> torch.Tensor:
        """Scale down each unit's incoming weights (a row of the matrix) whose L2 norm exceeds
        max_norm; masked entries are zero and add nothing to the norm."""
        if max_norm is None:
            return values
        sq = torch.zeros(self.shape[0], dtype=values.dtype, device=values.device)
        sq.index_add_(0, self.rows, values * values)
        return values * (max_norm / sq.sqrt().clamp_min(1e-12)).clamp(max=1.0)[self.rows]


class ActivityRecorder:
    """Detached activity of chosen modules over the forward passes of one optimizer step.

    watch() attaches forward hooks, unwatch() removes them (the callbacks do so around each
    training batch); what was recorded stays here, not on the network, until clear().
    """

    def __init__(self):
        self.inputs: dict[nn.Module, list[torch.Tensor]] = {}   # first positional input per pass
        self.outputs: dict[nn.Module, list[torch.Tensor]] = {}  # output per pass
        self._handles: list = []

    def watch(self, inputs_of: Iterable[nn.Module] = (), outputs_of: Iterable[nn.Module] = ()) -> None:
        self.unwatch()
        for module in inputs_of:
            self._handles.append(module.register_forward_hook(self._keep_input))
        for module in outputs_of:
            self._handles.append(module.register_forward_hook(self._keep_output))

    def unwatch(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def clear(self) -> None:
        self.inputs.clear()
        self.outputs.clear()

    def _keep_input(self, module, args, output) -> None:
        self.inputs.setdefault(module, []).append(args[0].detach())

    def _keep_output(self, module, args, output) -> None:
        self.outputs.setdefault(module, []).append(output.detach())

    def input(self, module: nn.Module) -> torch.Tensor | None:
        """The module's inputs of the recorded passes, one batch after another (None: not run)."""
        return _joined(self.inputs.get(module))

    def output(self, module: nn.Module) -> torch.Tensor | None:
        return _joined(self.outputs.get(module))


def _joined(passes: list[torch.Tensor] | None) -> torch.Tensor | None:
    if not passes:
        return None
    return passes[0] if len(passes) == 1 else torch.cat(passes)


class _PlasticityCallback(Callback):
    """Shared plumbing: observing the training batches, one update per optimizer step, a
    sync-free skip counter, logging on the logger's steps."""

    def __init__(self, net: torch.nn.Module, cfg: Plasticity):
        super().__init__()
        self.net = net
        self.cfg = cfg
        self.skipped = torch.zeros((), dtype=torch.long)
        self.activity = ActivityRecorder()
        self._last_step: int | None = None  # trainer.global_step after the last update
        self._watched: tuple[list[nn.Module], list[nn.Module]] | None = None  # the net's structure: found once

    @property
    def state_key(self) -> str:
        return type(self).__name__

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": int(self.skipped)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped = torch.tensor(state_dict.get("skipped", 0))

    def observed(self) -> tuple[list[nn.Module], list[nn.Module]]:  # pragma: no cover - abstract
        """(modules whose input, modules whose output) the update reads."""
        raise NotImplementedError

    def on_train_start(self, trainer, pl_module) -> None:
        self._last_step = trainer.global_step  # a resumed fit starts counting from its checkpoint
        self.activity.clear()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._watched is None:
            self._watched = self.observed()
        self.activity.watch(*self._watched)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.activity.unwatch()
        # global_step counts optimizer steps: unchanged means this batch only accumulated
        # gradients, and its activity waits for the window's step. Without a trainer (driven by
        # hand) every batch is a step.
        step = None if trainer is None else trainer.global_step
        if step is not None and step == self._last_step:
            return
        self._last_step = step
        with torch.no_grad():
            self.update(trainer, pl_module)
        self.activity.clear()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.activity.unwatch()
        self.activity.clear()

    def teardown(self, trainer, pl_module, stage) -> None:
        self.activity.unwatch()
        self.activity.clear()

    def update(self, trainer, pl_module) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _count(self, ok: torch.Tensor) -> None:
        self.skipped = self.skipped.to(ok.device) + (~ok).long()

    def _apply(self, target: torch.Tensor, new: torch.Tensor) -> None:
        """target <- new if every entry of new is finite; else keep target and count a skip."""
        ok = torch.isfinite(new).all()
        target.copy_(torch.where(ok, new, target))
        self._count(ok)

    @staticmethod
    def logging_step(trainer) -> bool:
        """True on the steps whose values reach the logger (after the optimizer step,
        global_step already counts it); metrics are only computed then, to keep steps cheap."""
        if trainer is None or trainer.log_every_n_steps <= 0:
            return False
        return trainer.global_step % trainer.log_every_n_steps == 0 or trainer.should_stop

    @staticmethod
    def _log(pl_module, name: str, value, on_epoch: bool = True) -> None:
        # on_epoch: the epoch value is the mean over the logged steps
        pl_module.log(name, value, on_step=True, on_epoch=on_epoch)


class HebbianPlasticity(_PlasticityCallback):
    """Oja's rule on every connectome-masked weight matrix after each optimizer step.

    Logs per postsynaptic group `plasticity/<group>/hebb_to_grad`: |Hebbian update| / |gradient step|
    over that group's incoming plastic weights (gradient step = the optimizer's change this step),
    and `plasticity/hebbian_skipped`, on the logger's steps.
    """

    def __init__(self, net: torch.nn.Module, cfg: Plasticity):
        super().__init__(net, cfg)
        self._before: list[torch.Tensor] | None = None
        self._index: dict[int, SynapseIndex] = {}

    def observed(self):
        synapses = self.net.plastic_synapses()
        return [layer for _, layer, _ in synapses], list({id(g): g for _, _, g in synapses}.values())

    def synapse_index(self, layer) -> SynapseIndex:
        index = self._index.get(id(layer))
        if index is None or index.rows.device != layer.mask.device:
            index = self._index[id(layer)] = SynapseIndex(layer.mask)
        return index

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        # Weights before the optimizer's step, to measure it; only on steps that will be logged
        # (global_step counts this step only after it).
        self._before = None
        if trainer is not None and trainer.log_every_n_steps > 0 and (
                (trainer.global_step + 1) % trainer.log_every_n_steps == 0 or trainer.should_stop):
            self._before = [self.synapse_index(layer).gather(layer.weight.detach())
                            for _, layer, _ in self.net.plastic_synapses()]

    def eta(self, trainer, pl_module) -> float:
        """cfg.eta, scaled by the learning rate's schedule when cfg.follow_lr (unscaled without a trainer)."""
        if not self.cfg.follow_lr or trainer is None or not trainer.optimizers:
            return self.cfg.eta
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        peak = getattr(getattr(pl_module, "hparams", None), "lr", None) or lr
        return self.cfg.eta * lr / peak

    def update(self, trainer, pl_module) -> None:
        cfg = self.cfg
        eta = self.eta(trainer, pl_module)
        log = self.logging_step(trainer) and self._before is not None
        sq = defaultdict(lambda: [0.0, 0.0])  # group -> [|hebbian update|^2, |gradient step|^2]
        for k, (name, layer, group) in enumerate(self.net.plastic_synapses()):
            pre, post = self.activity.input(layer), self.activity.output(group)
            if pre is None or post is None:
                continue
            index = self.synapse_index(layer)
            old = index.gather(layer.weight)
            new = index.cap_row_norms(old + index.oja(old, pre, post, eta, cfg.decay, cfg.centered), cfg.max_norm)
            if log:
                post_name = name.split("->")[1]
                sq[post_name][0] = sq[post_name][0] + (new - old).pow(2).sum()
                sq[post_name][1] = sq[post_name][1] + (old - self._before[k]).pow(2).sum()
            ok = torch.isfinite(new).all()
            layer.weight.view(-1).index_copy_(0, index.flat, torch.where(ok, new, old))
            self._count(ok)
        self._before = None
        if log and pl_module is not None:
            total = [0.0, 0.0]
            for group, (hebb, grad) in sq.items():
                ratio = torch.as_tensor(hebb).sqrt() / torch.as_tensor(grad).sqrt().clamp_min(1e-12)
                self._log(pl_module, f"plasticity/{group}/hebb_to_grad", ratio)
                total = [total[0] + hebb, total[1] + grad]
            if sq:  # one short number on the progress bar: the Hebbian share of the whole step
                overall = torch.as_tensor(total[0]).sqrt() / torch.as_tensor(total[1]).sqrt().clamp_min(1e-12)
                pl_module.log("hebb/grad", overall, on_step=True, on_epoch=False, prog_bar=True, logger=False)
            self._log(pl_module, "plasticity/hebbian_skipped", self.skipped.float(), on_epoch=False)


class HomeostaticRegulation(_PlasticityCallback):
    """Pulls each unit's running mean rate toward cfg.target_rate through its excitability.

    Logs per group, on the logger's steps, `plasticity/<group>/rate` (mean over units and batch) and
    `plasticity/<group>/silent` (fraction of units inactive for every sample of the batch), and
    `plasticity/homeostasis_skipped`. `epoch_summary` gives both per group averaged over every step
    of the training epoch so far; bionic.runs.RunFiles puts them in the epoch's history.json row.
    """

    def __init__(self, net: torch.nn.Module, cfg: Plasticity):
        super().__init__(net, cfg)
        self._epoch: dict[str, torch.Tensor] = {}  # group -> (sum of rates, sum of silent shares)
        self._epoch_steps = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch, self._epoch_steps = {}, 0

    def epoch_summary(self) -> dict[str, float]:
        """{`plasticity/<group>/rate` and `/silent`: mean over this training epoch's steps}."""
        out = {}
        for name, (rate, silent) in self._epoch.items():  # one host sync per epoch
            out[f"plasticity/{name}/rate"] = float(rate) / self._epoch_steps
            out[f"plasticity/{name}/silent"] = float(silent) / self._epoch_steps
        return out

    def observed(self):
        return [], [group for _, group in self.net.laminar_groups()]

    def update(self, trainer, pl_module) -> None:
        cfg = self.cfg
        log = self.logging_step(trainer) and pl_module is not None
        self._epoch_steps += 1
        incoming = defaultdict(list)
        for _, layer, group in self.net.plastic_synapses():
            incoming[id(group)].append(layer)
        for name, group in self.net.laminar_groups():
            rate = self.activity.output(group)
            if rate is None:
                continue
            rate = rate.to(group.rate_ema.dtype)
            batch_rate = rate.mean(0)
            silent = (batch_rate <= 0).float().mean()  # rates are >= 0: a zero mean is a cell silent all batch
            step = torch.stack((batch_rate.mean(), silent))  # this step's (rate, silent share)
            self._epoch[name] = self._epoch.get(name, 0) + step
            first = group.homeostasis_steps == 0
            ema = torch.where(first, batch_rate, cfg.ema * group.rate_ema + (1 - cfg.ema) * batch_rate)
            error = cfg.target_rate - ema
            excitability = (group.excitability + cfg.homeostasis_rate * error).clamp(
                -cfg.max_excitability, cfg.max_excitability)
            ok = torch.isfinite(ema).all() & torch.isfinite(excitability).all()
            group.rate_ema.copy_(torch.where(ok, ema, group.rate_ema))
            group.excitability.copy_(torch.where(ok, excitability, group.excitability))
            group.homeostasis_steps += ok.long()
            self._count(ok)
            if cfg.synaptic_scaling:
                gain = (1.0 + cfg.homeostasis_rate * error / max(cfg.target_rate, 1e-6)).clamp(0.5, 2.0)
                gain = torch.where(ok, gain, torch.ones_like(gain))
                for layer in incoming[id(group)]:
                    self._apply(layer.weight, layer.weight * gain.unsqueeze(1))
            if log:
                self._log(pl_module, f"plasticity/{name}/rate", step[0])
                self._log(pl_module, f"plasticity/{name}/silent", step[1])
        if log:
            self._log(pl_module, "plasticity/homeostasis_skipped", self.skipped.float(), on_epoch=False)


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
