"""Reference versions of the plasticity rules on dense matrices, and an independent activity probe,
to check bionic.plasticity (which works at the existing synapses only, through its own hooks)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Optional

import torch


def oja_update(weight: torch.Tensor, mask: torch.Tensor, pre: torch.Tensor, post: torch.Tensor,
               eta: float, decay: float = 1.0, centered: bool = False) -> torch.Tensor:
    """Oja's rule averaged over the batch, masked: eta * (<post pre^T> - decay * <post^2> W) * mask.

    weight, mask: [n_post, n_pre]; pre: [B, n_pre]; post: [B, n_post].
    """
    if centered:
        pre, post = pre - pre.mean(0), post - post.mean(0)
    hebb = post.t() @ pre / pre.shape[0]
    forget = (post * post).mean(0).unsqueeze(1) * weight
    return eta * (hebb - decay * forget) * mask


def cap_row_norms(weight: torch.Tensor, max_norm: Optional[float]) -> torch.Tensor:
    """Scale down each row (a unit's incoming weights) whose L2 norm exceeds max_norm."""
    if max_norm is None:
        return weight
    norms = weight.norm(dim=1, keepdim=True)
    return weight * (max_norm / norms.clamp_min(1e-12)).clamp(max=1.0)


@contextmanager
def probe(net):
    """Record, for the forward passes inside the block, each plastic layer's input and each
    laminar group's output: yields {"pre": {layer: x}, "post": {group: r}} (last pass wins)."""
    seen = {"pre": {}, "post": {}}
    layers = [layer for _, layer, _ in net.plastic_synapses()]
    groups = {id(g): g for g in [g for _, _, g in net.plastic_synapses()] + [g for _, g in net.laminar_groups()]}
    handles = [layer.register_forward_hook(lambda m, a, o: seen["pre"].__setitem__(m, a[0].detach()))
               for layer in layers]
    handles += [group.register_forward_hook(lambda m, a, o: seen["post"].__setitem__(m, o.detach()))
                for group in groups.values()]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()
