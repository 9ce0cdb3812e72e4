"""Hebbian (Oja) and homeostatic plasticity callbacks: the rule, the controller, masks, the switch."""

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bionic.errors import BionicError
from bionic.nets import BioNIC
from bionic.nets.layers import MaskedLinear
from bionic.plasticity import HebbianPlasticity, HomeostaticRegulation, Plasticity, SynapseIndex, plasticity_callbacks
from helpers.plasticity import cap_row_norms, oja_update, probe
from helpers.synthetic import synthetic_wiring

torch.set_num_threads(1)


def small_net(**kw):
    return BioNIC.from_wiring(synthetic_wiring((12, 10, 8, 9), density=0.3, seed=0), conv_channels=(4, 6),
                              pool_size=4, **kw)


def plastic_step(callbacks, net, x):
    """One training step's worth of plasticity, driven by hand: observe, forward, update."""
    for cb in callbacks:
        cb.on_train_batch_start(None, None, x, 0)
    out = net(x)
    for cb in callbacks:
        cb.on_train_batch_end(None, None, None, x, 0)
    return out


class LinearNeuron(nn.Module):
    """y = w . x: the setting of Oja's theorem, exposing the same plasticity interface as BioNIC."""

    def __init__(self, d):
        super().__init__()
        self.synapses = MaskedLinear(torch.ones(1, d), bias=False)

    def forward(self, x):
        return self.synapses(x)

    def plastic_synapses(self):
        return [("x->y", self.synapses, self)]

    def laminar_groups(self):
        return []


@pytest.mark.parametrize("centered", [False, True])
def test_oja_finds_the_leading_principal_component(centered):
    g = torch.Generator().manual_seed(0)
    d = 6
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    cov = q @ torch.diag(torch.tensor([4.0, 1.5, 1.0, 0.5, 0.3, 0.1])) @ q.t()
    chol = torch.linalg.cholesky(cov)
    neuron = LinearNeuron(d)
    hebb = HebbianPlasticity(neuron, Plasticity(eta=0.01, max_norm=None, centered=centered))
    start = neuron.synapses.weight.detach().clone()
    # the centered (covariance) form must ignore a mean offset of the inputs
    offset = 3.0 * q[:, -1] if centered else torch.zeros(d)
    with torch.no_grad():
        for _ in range(1500):
            plastic_step([hebb], neuron, torch.randn(32, d, generator=g) @ chol.t() + offset)
    w = neuron.synapses.weight.detach()[0]
    pc1 = q[:, 0]
    assert abs(torch.dot(w, pc1)) / w.norm() > 0.95
    assert abs(w.norm() - 1.0) < 0.1  # Oja's rule normalizes the weight vector
    assert abs(torch.dot(start[0], pc1)) / start.norm() < 0.9  # it did not start there
    assert int(hebb.skipped) == 0


def test_oja_update_formula():
    w = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    pre = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    post = torch.tensor([[1.0, 0.0], [2.0, 1.0]])
    # by hand: <post pre^T> = [[3.5, 1], [1.5, 0]];  <post^2> = [2.5, 0.5]
    expected = 0.1 * (torch.tensor([[3.5, 1.0], [1.5, 0.0]]) - torch.tensor([[1.25, -2.5], [1.0, 0.0]])) * mask
    assert torch.allclose(oja_update(w, mask, pre, post, eta=0.1), expected)  # the tests' reference rule
    index = SynapseIndex(mask)  # the package's rule, at the three existing synapses
    assert torch.allclose(index.oja(index.gather(w), pre, post, eta=0.1), torch.tensor([0.225, 0.35, 0.0]))
    # cap at norm 1: row 0 = (0.5, -1) has norm 1.118 and shrinks; row 1 = (0, 0) stays
    capped = index.cap_row_norms(index.gather(w), 1.0)
    assert torch.allclose(capped, torch.tensor([0.5, -1.0, 0.0]) / 1.25 ** 0.5)


def test_homeostasis_brings_rates_to_target():
    torch.manual_seed(0)
    net = small_net(synaptic_noise=0.0, conv=False).eval()  # plasticity lives in the laminar part
    cfg = Plasticity(target_rate=0.25, homeostasis_rate=0.05, ema=0.9)
    homeo = HomeostaticRegulation(net, cfg)
    g = torch.Generator().manual_seed(1)
    before = _rates(net, g)
    with torch.no_grad():
        for _ in range(400):
            plastic_step([homeo], net, torch.randn(64, 1, 48, 48, generator=g))
    after = _rates(net, g)
    tolerance = 0.05  # per unit, on a fresh batch of 512 images
    assert (before - 0.25).abs().max() > tolerance  # the test starts away from the target
    assert (after - 0.25).abs().max() < tolerance
    for _, group in net.laminar_groups():
        assert (group.rate_ema - 0.25).abs().max() < tolerance
        assert group.excitability.abs().max() <= cfg.max_excitability


def test_epoch_summary_is_each_groups_activity_over_the_epochs_steps():
    torch.manual_seed(0)
    net = small_net(synaptic_noise=0.0).eval()
    homeo = HomeostaticRegulation(net, Plasticity())
    with torch.no_grad():
        net.groups[3].excitability[:4] = -100.0  # four of D's nine cells silent on every image
        homeo.on_train_epoch_start(None, None)
        assert homeo.epoch_summary() == {}
        seen = []
        for batch in (torch.randn(8, 1, 48, 48), torch.randn(8, 1, 48, 48) * 3):
            with probe(net) as post:
                plastic_step([homeo], net, batch)
            seen.append({name: post["post"][group] for name, group in net.laminar_groups()})
    summary = homeo.epoch_summary()
    assert set(summary) == {f"plasticity/{g}/{m}" for g in "ABCD" for m in ("rate", "silent")}
    for name in "ABCD":
        rate = sum(float(step[name].mean()) for step in seen) / 2
        silent = sum(float((step[name].amax(0) <= 0).float().mean()) for step in seen) / 2
        assert summary[f"plasticity/{name}/rate"] == pytest.approx(rate, rel=1e-5)
        assert summary[f"plasticity/{name}/silent"] == pytest.approx(silent, abs=1e-6)
    assert summary["plasticity/D/silent"] >= 4 / 9  # the excitability acted before homeostasis moved it
    homeo.on_train_epoch_start(None, None)  # a new epoch starts from nothing
    assert homeo.epoch_summary() == {}


def _rates(net, g):
    with torch.no_grad(), probe(net) as seen:
        net(torch.randn(512, 1, 48, 48, generator=g))
    return torch.cat([seen["post"][group].mean(0) for _, group in net.laminar_groups()])


def test_masked_entries_stay_exactly_zero_after_many_plastic_steps():
    torch.manual_seed(0)
    net = small_net(synaptic_noise=0.1, conv=False)
    cbs = plasticity_callbacks(net, Plasticity(eta=0.05, homeostasis_rate=0.01, synaptic_scaling=True))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.1)
    g = torch.Generator().manual_seed(2)
    for _ in range(100):
        x, y = torch.randn(16, 1, 48, 48, generator=g), torch.randint(0, 7, (16,), generator=g)
        opt.zero_grad()
        for cb in cbs:
            cb.on_train_batch_start(None, None, x, 0)
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        for cb in cbs:
            cb.on_train_batch_end(None, None, None, x, 0)
    changed = 0
    for name, layer, _ in net.plastic_synapses():
        assert torch.all(layer.weight[layer.mask == 0] == 0), name
        assert torch.isfinite(layer.weight).all()
        changed += int((layer.weight[layer.mask == 1] != 0).sum())
    assert changed > 0


@pytest.mark.parametrize("eta, decay", [(1e3, 1.0), (1e6, 0.0)])
def test_extreme_learning_rates_stay_finite(eta, decay):
    torch.manual_seed(0)
    net = small_net(layer_norm=False)
    cbs = plasticity_callbacks(net, Plasticity(eta=eta, decay=decay, homeostasis_rate=10.0))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for _ in range(30):
            out = plastic_step(cbs, net, torch.randn(8, 1, 48, 48, generator=g) * 100)
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(t).all() for t in net.state_dict().values() if t.is_floating_point())
    for name, layer, _ in net.plastic_synapses():
        assert layer.weight.norm(dim=1).max() <= 5.0 + 1e-3, name  # max_norm holds the rows


def test_non_finite_update_is_skipped_and_counted():
    net = small_net()
    hebb = HebbianPlasticity(net, Plasticity())
    x = torch.randn(4, 1, 48, 48)
    plastic_step([hebb], net, x)
    assert int(hebb.skipped) == 0
    _, layer, _ = net.plastic_synapses()[0]
    before = layer.weight.detach().clone()
    hebb.on_train_batch_start(None, None, x, 0)
    net(x)
    hebb.activity.inputs[layer] = [torch.full_like(hebb.activity.input(layer), float("inf"))]
    hebb.on_train_batch_end(None, None, None, x, 0)
    assert int(hebb.skipped) == 1
    assert torch.equal(layer.weight, before)


# --- the switch, through Lightning ------------------------------------------------------------

def _fit(hebbian, plasticity=Plasticity(), steps=4, seed=0, accumulate=1, ckpt_path=None, samples=None):
    from bionic.modules import EmotionClassifier

    L.seed_everything(seed, workers=True)
    net = small_net()
    model = EmotionClassifier(net, lr=1e-2, scheduler=None, hebbian=hebbian, plasticity=plasticity)
    g = torch.Generator().manual_seed(seed)
    n = samples or 8 * steps * accumulate
    data = TensorDataset(torch.randn(n, 1, 48, 48, generator=g), torch.randint(0, 7, (n,), generator=g))
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        deterministic=True, log_every_n_steps=1, accumulate_grad_batches=accumulate)
    trainer.fit(model, DataLoader(data, batch_size=8), ckpt_path=ckpt_path, weights_only=False)  # our own file
    return model, trainer


def test_switch_off_is_the_pure_gradient_run():
    off, trainer_off = _fit(hebbian=False)
    assert off.configure_callbacks() == []
    assert not any(isinstance(cb, (HebbianPlasticity, HomeostaticRegulation)) for cb in trainer_off.callbacks)
    # callbacks present but doing nothing: proves their observing hooks leave the gradient path alone
    idle, _ = _fit(hebbian=True, plasticity=Plasticity(eta=0.0, homeostasis_rate=0.0, max_norm=None))
    on, trainer_on = _fit(hebbian=True)
    state_off, state_idle, state_on = (m.net.state_dict() for m in (off, idle, on))
    for key, value in state_off.items():
        if "rate_ema" in key or "homeostasis_steps" in key:
            continue  # bookkeeping of the idle callback, never read by the forward pass
        assert torch.equal(value, state_idle[key]), key
    assert any(not torch.equal(v, state_on[k]) for k, v in state_off.items() if "weight" in k)
    assert sum(isinstance(cb, (HebbianPlasticity, HomeostaticRegulation)) for cb in trainer_on.callbacks) == 2
    logged = trainer_on.callback_metrics
    for group in "ABCD":
        assert f"plasticity/{group}/rate" in logged and f"plasticity/{group}/silent" in logged
    for group in "BCD":
        assert torch.isfinite(logged[f"plasticity/{group}/hebb_to_grad"])
    assert float(logged["plasticity/hebbian_skipped"]) == 0


def test_settings_arrive_as_a_dict_from_the_cli():
    net = small_net()
    hebb, homeo = plasticity_callbacks(net, {"eta": 0.5, "target_rate": 0.1})
    assert hebb.cfg == Plasticity(eta=0.5, target_rate=0.1) and homeo.cfg is hebb.cfg
    with pytest.raises(BionicError, match="unknown plasticity setting"):
        plasticity_callbacks(net, {"etta": 0.5})


@pytest.mark.parametrize("mask, centered", [("connectome", False), ("dense", False), ("connectome", True)])
def test_callback_applies_the_dense_reference_rule(mask, centered):
    """The callback updates only the existing synapses (an index); it must match the dense reference rule."""
    torch.manual_seed(0)
    net = small_net(conv=False, synaptic_noise=0.0, mask=mask)
    reference = {name: layer.weight.detach().clone() for name, layer, _ in net.plastic_synapses()}
    cfg = Plasticity(eta=0.05, max_norm=0.8, centered=centered)
    hebb = HebbianPlasticity(net, cfg)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for _ in range(20):
            with probe(net) as seen:
                plastic_step([hebb], net, torch.randn(16, 1, 48, 48, generator=g))
            for name, layer, group in net.plastic_synapses():
                w = reference[name]
                delta = oja_update(w, layer.mask, seen["pre"][layer], seen["post"][group], cfg.eta, cfg.decay, centered)
                reference[name] = cap_row_norms(w + delta, cfg.max_norm)
                assert torch.allclose(layer.weight, reference[name], atol=1e-6), name
                reference[name] = layer.weight.detach().clone()  # follow the net's trajectory
    norms = torch.cat([layer.weight.norm(dim=1) for _, layer, _ in net.plastic_synapses()])
    assert norms.max() <= 0.8 + 1e-5 and norms.max() >= 0.8 - 1e-3  # the cap was reached and held
    for name, layer, _ in net.plastic_synapses():
        assert torch.all(layer.weight[layer.mask == 0] == 0)


def _spy_updates(monkeypatch):
    """Record (global_step, samples observed) at every update of both callbacks."""
    calls = {HebbianPlasticity: [], HomeostaticRegulation: []}
    for cls in calls:
        def spy(self, trainer, pl_module, _cls=cls, _original=cls.update):
            calls[_cls].append((trainer.global_step, self.activity.output(self.net.groups[-1]).shape[0]))
            return _original(self, trainer, pl_module)
        monkeypatch.setattr(cls, "update", spy)
    return calls


def test_one_update_per_optimizer_step_under_gradient_accumulation(monkeypatch):
    calls = _spy_updates(monkeypatch)
    model, trainer = _fit(hebbian=True, steps=2, accumulate=3)  # 6 batches of 8 -> 2 optimizer steps
    assert trainer.global_step == 2
    for cls, seen in calls.items():
        # after each optimizer step (global_step already counts it), on the window's 3 x 8 samples
        assert seen == [(1, 24), (2, 24)], cls.__name__
    for _, group in model.net.laminar_groups():
        assert int(group.homeostasis_steps) == 2
    # an epoch whose length is not a multiple of the window: Lightning steps on its last batch too
    calls[HebbianPlasticity].clear()
    _, trainer = _fit(hebbian=True, steps=2, accumulate=3, samples=40)  # 5 batches: windows of 3 and 2
    assert trainer.global_step == 2 and calls[HebbianPlasticity] == [(1, 24), (2, 16)]


def _assert_plain(net):
    for name, module in net.named_modules():
        assert not module._forward_hooks and not module._forward_pre_hooks, name
        assert not {"capture", "pre", "rate"} & set(vars(module)), name


def test_the_network_holds_no_observer_after_a_training_step():
    net = small_net()
    callbacks = plasticity_callbacks(net, Plasticity())
    x = torch.randn(4, 1, 48, 48)
    for cb in callbacks:
        cb.on_train_batch_start(None, None, x, 0)
    assert sum(len(m._forward_hooks) for m in net.modules()) > 0  # observed during the step
    net(x)
    for cb in callbacks:
        cb.on_train_batch_end(None, None, None, x, 0)
        assert not cb.activity.inputs and not cb.activity.outputs  # used, then let go
    _assert_plain(net)
    net(x)  # a forward outside a training step is not recorded
    assert all(not cb.activity.outputs for cb in callbacks)
    model, _ = _fit(hebbian=True, steps=2)  # through Lightning
    _assert_plain(model.net)


def test_plasticity_state_is_in_the_checkpoint_and_resumes(tmp_path):
    model, trainer = _fit(hebbian=True, steps=2)
    trainer.save_checkpoint(tmp_path / "two.ckpt")
    ckpt = torch.load(tmp_path / "two.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["callbacks"]["HebbianPlasticity"] == {"skipped": 0}
    assert ckpt["callbacks"]["HomeostaticRegulation"] == {"skipped": 0}
    ema = ckpt["state_dict"]["net.groups.1.rate_ema"]
    assert torch.equal(ema, model.net.groups[1].rate_ema) and ema.abs().sum() > 0
    resumed, trainer = _fit(hebbian=True, steps=4, ckpt_path=tmp_path / "two.ckpt")
    assert trainer.global_step == 4
    # homeostasis went on from the checkpoint's count: 2 restored + 2 new steps
    assert all(int(group.homeostasis_steps) == 4 for _, group in resumed.net.laminar_groups())
