"""MaskedLinear's kernel: a plain linear on the stored weight, its weight gradient masked, and
exactly the numbers of the `F.linear(x, weight * mask, bias)` formulation it replaced."""

import pytest
import torch
import torch.nn.functional as F

from bionic.nets import BioNIC
from bionic.nets.layers import MaskedLinear, masked_linear
from bionic.plasticity import Plasticity, plasticity_callbacks
from helpers.synthetic import synthetic_wiring

torch.set_num_threads(1)


def masked_problem(batch, n_in, n_out, density, seed, leading=()):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(n_out, n_in, generator=g) < density).float()
    weight = (torch.randn(n_out, n_in, generator=g) * mask).requires_grad_()
    bias = torch.randn(n_out, generator=g).requires_grad_()
    x = torch.randn(*leading, batch, n_in, generator=g).requires_grad_()
    grad = torch.randn(*leading, batch, n_out, generator=g)
    return x, weight, bias, mask, grad


@pytest.mark.parametrize("shape", [(64, 266, 349, 0.04), (64, 363, 363, 0.02), (5, 30, 20, 0.3)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_kernel_is_the_masked_product_bit_for_bit(shape, with_bias):
    x, weight, bias, mask, grad = masked_problem(*shape, seed=1)
    bias = bias if with_bias else None
    inputs = (x, weight) + ((bias,) if with_bias else ())
    ref = F.linear(x, weight * mask, bias)
    ref_grads = torch.autograd.grad(ref, inputs, grad)
    out = masked_linear(x, weight, bias, mask)
    grads = torch.autograd.grad(out, inputs, grad)
    assert torch.equal(out, ref)
    for got, want in zip(grads, ref_grads):
        assert torch.equal(got, want)
    assert grads[1].is_contiguous()  # laid out like the weight, as the optimizer expects
    assert torch.all(grads[1][mask == 0] == 0) and grads[1][mask == 1].abs().sum() > 0


def test_kernel_takes_leading_batch_dimensions():
    x, weight, bias, mask, grad = masked_problem(6, 12, 9, 0.3, seed=2, leading=(3,))
    ref = F.linear(x, weight * mask, bias)
    ref_grads = torch.autograd.grad(ref, (x, weight, bias), grad)
    out = masked_linear(x, weight, bias, mask)
    grads = torch.autograd.grad(out, (x, weight, bias), grad)
    assert torch.allclose(out, ref)
    for got, want in zip(grads, ref_grads):
        assert torch.allclose(got, want, atol=1e-6)


def test_loading_a_state_dict_zeroes_the_masked_weights():
    # A checkpoint of the multiplying formulation could hold anything under the mask.
    layer = MaskedLinear((torch.rand(8, 10, generator=torch.Generator().manual_seed(0)) < 0.3).float())
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    state["weight"] = torch.randn(8, 10)
    layer.load_state_dict(state)
    assert torch.all(layer.weight[layer.mask == 0] == 0)
    assert torch.equal(layer.weight[layer.mask == 1], state["weight"][layer.mask == 1])
    assert sorted(layer.state_dict()) == ["bias", "mask", "weight"]


def _old_forward(self, x):
    return F.linear(x, self.weight * self.mask, self.bias)


def _train(net, steps):
    """AdamW with weight decay plus the plasticity callbacks, driven by hand."""
    callbacks = plasticity_callbacks(net, Plasticity())
    opt = torch.optim.AdamW(net.parameters(), lr=0.01, weight_decay=0.1)
    g = torch.Generator().manual_seed(3)
    for step in range(steps):
        x, y = torch.randn(16, 1, 48, 48, generator=g), torch.randint(0, 7, (16,), generator=g)
        for cb in callbacks:
            cb.on_train_batch_start(None, None, (x, y), step)
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
        for cb in callbacks:
            cb.on_train_batch_end(None, None, None, (x, y), step)
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_training_is_bit_identical_to_the_multiplying_formulation(monkeypatch):
    wiring = synthetic_wiring((12, 10, 8, 9), density=0.3, seed=0)
    settings = dict(conv_channels=(4, 6), conv_strides=(1, 2), pool_size=4, synaptic_noise=0.0)
    torch.manual_seed(0)
    new = _train(BioNIC.from_wiring(wiring, **settings), steps=4)
    monkeypatch.setattr(MaskedLinear, "forward", _old_forward)
    torch.manual_seed(0)
    old = _train(BioNIC.from_wiring(wiring, **settings), steps=4)
    assert old.keys() == new.keys()
    for key in old:
        assert torch.equal(old[key], new[key]), key


def test_kernel_under_autocast_matches_the_masked_product():
    x, weight, bias, mask, grad = masked_problem(32, 40, 30, 0.1, seed=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = F.linear(x, weight * mask, bias)
        out = masked_linear(x, weight, bias, mask)
    assert out.dtype == ref.dtype == torch.bfloat16
    ref_grads = torch.autograd.grad(ref, (x, weight, bias), grad.to(ref.dtype))
    grads = torch.autograd.grad(out, (x, weight, bias), grad.to(out.dtype))
    assert torch.equal(out, ref)
    for got, want in zip(grads, ref_grads):
        assert got.dtype == want.dtype == torch.float32
        assert torch.allclose(got, want, rtol=2e-2, atol=2e-2)
    assert torch.all(grads[1][mask == 0] == 0)
