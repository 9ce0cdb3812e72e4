"""AdamW decays weight matrices and kernels, never biases, norm gains or scalar strengths."""

from __future__ import annotations

import pytest
import torch

from bionic.modules import EmotionClassifier
from bionic.nets import BaselineCNN


@pytest.mark.parametrize("optimizer", ["adamw", "adam"])
def test_a_step_with_zero_gradient_decays_only_the_weight_matrices(optimizer):
    torch.manual_seed(0)
    lr, wd = 0.1, 0.5
    model = EmotionClassifier(BaselineCNN(), optimizer=optimizer, lr=lr, weight_decay=wd, scheduler=None)
    opt = model.configure_optimizers()
    before = {n: p.detach().clone() for n, p in model.net.named_parameters()}
    for p in model.net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    matrices = [n for n, p in model.net.named_parameters() if p.ndim >= 2]
    others = [n for n, p in model.net.named_parameters() if p.ndim < 2]
    assert matrices and any(n.endswith("bias") for n in others) and any("bn" in n or "norm" in n or n.endswith("weight") for n in others)
    params = dict(model.net.named_parameters())
    for n in others:
        assert torch.equal(params[n], before[n]), f"{n} must not be decayed"
    for n in matrices:
        if optimizer == "adamw":  # decoupled: w <- w (1 - lr wd); a zero gradient adds nothing
            torch.testing.assert_close(params[n], before[n] * (1 - lr * wd))
        else:  # L2 in the gradient, g = wd w: Adam's bias-corrected first step is lr g / (|g| + eps)
            g = wd * before[n]
            torch.testing.assert_close(params[n], before[n] - lr * g / (g.abs() + 1e-8))


def test_the_bionic_inhibition_strength_and_layer_norm_are_not_decayed():
    from bionic.modules import decay_groups
    from bionic.nets import BioNIC

    net = BioNIC()
    decayed, kept = decay_groups(net, 0.1)
    names = {id(p): n for n, p in net.named_parameters()}
    kept_names = [names[id(p)] for p in kept["params"]]
    assert kept["weight_decay"] == 0.0 and decayed["weight_decay"] == 0.1
    assert any("norm" in n for n in kept_names), kept_names
    assert all(p.ndim >= 2 for p in decayed["params"])
    assert len(decayed["params"]) + len(kept["params"]) == len(list(net.parameters()))


@pytest.mark.parametrize("optimizer", ["adamw", "adam"])
def test_the_fused_optimizer_makes_the_loop_optimizers_updates(optimizer):
    """The recipe's optimizer is the fused kernel; five steps of it land where torch's per-parameter
    loop (`foreach=False`, the reference implementation) lands, up to float rounding."""
    torch.manual_seed(0)
    model = EmotionClassifier(BaselineCNN(), optimizer=optimizer, lr=3e-3, weight_decay=1e-2, scheduler=None)
    opt = model.configure_optimizers()
    assert opt.defaults["fused"] is True
    reference = {n: p.detach().clone().requires_grad_() for n, p in model.net.named_parameters()}
    loop_cls = torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam
    groups = [{**{k: v for k, v in g.items() if k not in ("params", "fused", "foreach")},
               "params": [reference[n] for n, p in model.net.named_parameters() if any(p is q for q in g["params"])]}
              for g in opt.param_groups]
    loop = loop_cls(groups, foreach=False, fused=False)
    assert all(g["fused"] is False and g["foreach"] is False for g in loop.param_groups)
    for _ in range(5):
        for n, p in model.net.named_parameters():
            p.grad = torch.randn_like(p)
            reference[n].grad = p.grad.clone()
        opt.step()
        loop.step()
    for n, p in model.net.named_parameters():
        torch.testing.assert_close(p.detach(), reference[n].detach(), rtol=1e-5, atol=1e-6)
