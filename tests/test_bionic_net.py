"""The BioNIC network: sizes and masks from the wiring, masked synapses stay zero, switches work."""

import inspect

import pytest
import torch
import torch.nn.functional as F

from bionic.errors import BionicError
from bionic.nets import BioNIC
from bionic.nets.layers import AdaptiveAvgPool, LateralInhibition, MaskedLinear
from helpers.synthetic import synthetic_wiring

torch.set_num_threads(1)

SIZES = (12, 10, 8, 9)


@pytest.fixture
def wiring():
    return synthetic_wiring(SIZES, density=0.3, seed=0)


def small_net(wiring, **kw):
    kw.setdefault("conv_channels", (4, 6))
    kw.setdefault("conv_strides", (1, 2))
    kw.setdefault("pool_size", 4)
    return BioNIC.from_wiring(wiring, **kw)


def images(n=4, seed=0):
    return torch.randn(n, 1, 48, 48, generator=torch.Generator().manual_seed(seed))


def test_group_sizes_and_mask_shapes_follow_the_wiring(wiring):
    net = small_net(wiring)
    assert [g.size for g in net.groups] == list(SIZES)
    assert net.group_names == ["A", "B", "C", "D"]
    for i, group in enumerate(net.groups):
        if i > 0:
            assert isinstance(group.feedforward, MaskedLinear)
            assert torch.equal(group.feedforward.mask, wiring.between[i - 1])
        assert torch.equal(group.recurrent.mask, wiring.within[i])
        assert torch.equal(group.inhibition, wiring.inhibition[i])
    assert net.readout.in_features == SIZES[-1] and net.readout.out_features == 7
    expected = sum(int(m.sum()) for m in wiring.between) + sum(int(m.sum()) for m in wiring.within)
    assert net.n_synapses == expected
    assert net(images()).shape == (4, 7)
    # masks are buffers: saved with the model, not trained
    assert "groups.1.feedforward.mask" in net.state_dict()
    assert all("mask" not in name for name, _ in net.named_parameters())


def test_other_sizes_are_not_hard_coded():
    net = small_net(synthetic_wiring((5, 7, 3), seed=1))
    assert [g.size for g in net.groups] == [5, 7, 3] and net(images(2)).shape == (2, 7)


def test_masked_weights_stay_zero_and_get_zero_gradient(wiring):
    torch.manual_seed(0)
    net = small_net(wiring)
    layers = [layer for _, layer, _ in net.plastic_synapses()]
    assert len(layers) == 3 + 4
    for layer in layers:  # zeroed at init, not only hidden by the forward
        assert torch.all(layer.weight[layer.mask == 0] == 0)
    opt = torch.optim.AdamW(net.parameters(), lr=0.05, weight_decay=0.1)
    y = torch.tensor([0, 1, 2, 3])
    for step in range(5):
        opt.zero_grad()
        F.cross_entropy(net(images(seed=step)), y).backward()
        for layer in layers:
            assert torch.all(layer.weight.grad[layer.mask == 0] == 0)
            assert layer.weight.grad[layer.mask == 1].abs().sum() > 0  # the real synapses do learn
        opt.step()
    for layer in layers:
        assert torch.all(layer.weight[layer.mask == 0] == 0)


def test_noise_only_in_training(wiring):
    net = small_net(wiring, synaptic_noise=0.5).eval()
    x = images()
    assert torch.equal(net(x), net(x))
    net.train()
    assert not torch.equal(net(x), net(x))
    quiet = small_net(wiring, synaptic_noise=0.0).train()
    assert torch.equal(quiet(x), quiet(x))


def test_no_mask_is_dense_with_the_same_sizes(wiring):
    net = small_net(wiring, mask="dense")
    assert [g.size for g in net.groups] == list(SIZES)
    for i, group in enumerate(net.groups):
        if i > 0:
            assert group.feedforward.mask.shape == wiring.between[i - 1].shape
            assert torch.all(group.feedforward.mask == 1)
        n = SIZES[i]
        assert torch.equal(group.recurrent.mask, torch.ones(n, n) - torch.eye(n))
    connectome = small_net(wiring)
    assert net.n_synapses > connectome.n_synapses
    # same dense parameter tensors: the ablation changes which synapses exist, not the model size
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in connectome.parameters())
    assert net.wiring_source["mask"] == "dense"


@pytest.mark.parametrize("switch, value", [
    ("conv", False), ("lateral_inhibition", False), ("mask", "dense"), ("intra_layer", False),
    ("graded_inhibition", False), ("layer_norm", False), ("synaptic_noise", 0.0),
])
def test_each_switch_changes_the_network_and_trains(wiring, switch, value):
    x = images()
    torch.manual_seed(0)
    off = small_net(wiring, **{switch: value}).train()
    loss = off(x).logsumexp(1).mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in off.parameters())
    # same init seed, same noise seed: the outputs differ only because of the switch
    torch.manual_seed(0)
    on = small_net(wiring).train()
    torch.manual_seed(1)
    a = on(x)
    torch.manual_seed(1)
    b = off(x)
    assert not torch.allclose(a, b)


def test_switches_remove_the_parts():
    w = synthetic_wiring(SIZES)
    assert not any(isinstance(m, LateralInhibition) for m in small_net(w, lateral_inhibition=False).modules())
    assert any(isinstance(m, LateralInhibition) for m in small_net(w).modules())
    assert all(g.recurrent is None for g in small_net(w, intra_layer=False).groups)
    assert all(g.norm is None for g in small_net(w, layer_norm=False).groups)
    no_conv = small_net(w, conv=False)
    assert no_conv.groups[0].feedforward.in_features == 48 * 48
    assert not any(isinstance(m, torch.nn.Conv2d) for m in no_conv.modules())


def test_lateral_inhibition_normalizes_rectified_responses_unless_asked_not_to():
    w = synthetic_wiring(SIZES)
    seen = {}

    def inputs_of_inhibition(net):
        li = next(m for m in net.modules() if isinstance(m, LateralInhibition))
        handle = li.register_forward_hook(lambda m, args, out: seen.update(x=args[0].detach()))
        net(images())
        handle.remove()
        return seen["x"]

    torch.manual_seed(0)
    assert inputs_of_inhibition(small_net(w)).min() >= 0  # firing rates: the conv's output rectified
    torch.manual_seed(0)
    assert inputs_of_inhibition(small_net(w, rectify_first_conv=False)).min() < 0  # the paper's literal order


def test_conv_batch_norm_normalizes_each_conv_and_keeps_the_default_layout(wiring):
    plain, normed = small_net(wiring), small_net(wiring, conv_batch_norm=True)
    norms = [m for m in normed.front.features if isinstance(m, torch.nn.BatchNorm2d)]
    assert [m.num_features for m in norms] == [4, 6]  # one per conv, its width
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    # Off, the front end's layer indices are unchanged, so checkpoints made before the switch load.
    assert [k for k in plain.state_dict() if k.startswith("front.features")] == [
        "front.features.0.weight", "front.features.0.bias", "front.features.2.raw_alpha",
        "front.features.3.weight", "front.features.3.bias"]
    normed.train()
    seen = {}
    handle = norms[0].register_forward_hook(lambda m, args, out: seen.update(out=out.detach()))
    normed(images(n=8) * 5 + 3)
    handle.remove()
    per_channel = seen["out"].transpose(0, 1).flatten(1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(4), atol=1e-4)
    assert torch.allclose(per_channel.std(1, unbiased=False), torch.ones(4), atol=1e-2)


def test_layer_norm_bias_off_leaves_each_groups_shift_to_homeostasis(wiring):
    plain, unbiased = small_net(wiring), small_net(wiring, layer_norm_bias=False)
    # On (the default), each group keeps its learned shift, so checkpoints made before the switch load.
    assert all(f"groups.{i}.norm.bias" in plain.state_dict() for i in range(len(SIZES)))
    assert not any(k.endswith("norm.bias") for k in unbiased.state_dict())
    # Off, the gain is the only learned parameter of each LayerNorm: nothing the gradient sets
    # shifts a group's mean, and the excitability (a buffer, homeostasis's) is still added.
    assert all([n for n, _ in g.norm.named_parameters()] == ["weight"] for g in unbiased.groups)
    assert all([n for n, _ in g.norm.named_parameters()] == ["weight", "bias"] for g in plain.groups)
    assert all("excitability" in dict(g.named_buffers()) for g in unbiased.groups)


def test_the_read_out_reads_the_named_groups_side_by_side(wiring):
    torch.manual_seed(0)
    paper, both = small_net(wiring), small_net(wiring, readout_groups=["D", "C"])
    assert paper.readout.in_features == SIZES[3] and both.readout.in_features == SIZES[2] + SIZES[3]
    both.eval()
    x = images()
    with torch.no_grad():
        h, rates = both.front(x), {}
        for name, group in both.laminar_groups():
            h = rates[name] = group(h)
        # in the data's order, whatever the order named: L5's rates first, then L6's
        torch.testing.assert_close(both(x), both.readout(torch.cat([rates["C"], rates["D"]], 1)))
    # only the read-out changes: every other weight has the paper's shape
    shapes = {k: v.shape for k, v in paper.state_dict().items() if not k.startswith("readout.")}
    assert shapes == {k: v.shape for k, v in both.state_dict().items() if not k.startswith("readout.")}
    for bad in (["E"], ["D", "D"]):
        with pytest.raises(BionicError, match="readout_groups must name distinct groups"):
            small_net(wiring, readout_groups=bad)


def test_lateral_inhibition_is_a_local_competition():
    li = LateralInhibition()
    x = torch.zeros(1, 3, 5, 5)
    x[0, 1, 2, 2] = 1.0
    alone = li(x)[0, 1, 2, 2]
    x[0, 0, 2, 3] = 3.0  # a strong neighbour (other channel, next position)
    crowded = li(x)[0, 1, 2, 2]
    assert crowded < alone  # suppressed by its neighbour: not a pointwise function
    x[0, 0, 2, 3] = 0.0
    x[0, 0, 0, 0] = 3.0  # far away: no effect
    assert torch.isclose(li(x)[0, 1, 2, 2], alone)
    assert torch.allclose(li(-x), -li(x))  # sign-preserving, unlike a rectifier


def test_bad_settings_are_one_line_errors(wiring):
    with pytest.raises(BionicError, match="unknown mask"):
        small_net(wiring, mask="sparse")
    with pytest.raises(BionicError, match="synaptic_noise"):
        small_net(wiring, synaptic_noise=-1.0)
    with pytest.raises(BionicError, match="null-model"):
        small_net(wiring, mask="shuffled")  # a synthetic wiring is no null model of a column
    with pytest.raises(BionicError, match="unknown setting.*snapshot"):
        small_net(wiring, snapshot="elsewhere")  # the wiring is given: no second source
    with pytest.raises(BionicError, match="conv_strides"):
        small_net(wiring, conv_channels=(4, 6, 8))  # three convs, two strides
    broken = synthetic_wiring(SIZES)
    broken.between[0] = broken.between[0].t()
    with pytest.raises(BionicError, match="between-mask 0"):
        small_net(broken)


def test_from_wiring_is_the_constructor_on_a_given_wiring():
    """BioNIC(...) and BioNIC.from_wiring(its wiring, same settings) are the same network."""
    from bionic.connectome import build_wiring, load_column

    settings = dict(conv_channels=(4, 6), pool_size=4, mask="shuffled", wiring_seed=3)
    torch.manual_seed(0)
    built = BioNIC(**settings)
    wiring = build_wiring(load_column(), null_model="shuffled", seed=3)
    torch.manual_seed(0)
    given = BioNIC.from_wiring(wiring, **{k: v for k, v in settings.items() if k != "wiring_seed"})
    assert built.wiring_source == given.wiring_source and built.wiring_source["null_model"] == "shuffled"
    one, other = built.state_dict(), given.state_dict()
    assert one.keys() == other.keys() and all(torch.equal(one[k], other[k]) for k in one)
    assert "wiring" not in inspect.signature(BioNIC).parameters  # not a config option


def divisive_normalization(x, window, alpha):
    """LateralInhibition's definition (beta 0.5) through avg_pool3d, the reference its shifted sums match."""
    energy = F.avg_pool3d((x * x).unsqueeze(1), window, stride=1, padding=tuple(k // 2 for k in window),
                          count_include_pad=False).squeeze(1)
    return x / (1 + alpha * energy).sqrt()


def test_lateral_inhibition_is_divisive_normalization_over_a_3d_neighbourhood():
    li = LateralInhibition(channel_window=3, spatial_window=3, alpha=0.7, beta=0.5)
    x = torch.randn(2, 8, 9, 9)
    assert torch.allclose(li(x), divisive_normalization(x, (3, 3, 3), 0.7), atol=1e-5)


def test_lateral_inhibition_gradient_matches_avg_pool3d():
    """The shifted sums' gradient against autograd through avg_pool3d, and gradcheck."""
    li = LateralInhibition(channel_window=3, spatial_window=5, alpha=0.7, beta=0.5).double()
    x = torch.randn(2, 6, 7, 8, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 6, 7, 8, dtype=torch.float64)
    (ours,) = torch.autograd.grad(li(x), x, g)
    (reference,) = torch.autograd.grad(divisive_normalization(x, (3, 5, 5), 0.7), x, g)
    assert torch.allclose(ours, reference, atol=1e-10)
    assert torch.autograd.gradcheck(li, (x[:1, :4, :5, :5].detach().requires_grad_(),))


def test_front_end_widths_and_strides_are_config(wiring):
    wide = small_net(wiring, conv_channels=(8, 16, 32), conv_strides=(1, 2, 1), pool_size=6)
    convs = [m for m in wide.front.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert [c.out_channels for c in convs] == [8, 16, 32] and [c.stride[0] for c in convs] == [1, 2, 1]
    assert wide.groups[0].feedforward.in_features == 32 * 6 * 6
    assert wide(images()).shape == (4, 7)


@pytest.mark.parametrize("h, w, out", [(24, 24, 15), (48, 48, 15), (24, 24, 12), (7, 9, 4), (5, 5, 8)])
def test_pooling_matches_adaptive_avg_pool(h, w, out):
    x = torch.randn(2, 3, h, w)
    assert torch.allclose(AdaptiveAvgPool(out)(x), torch.nn.AdaptiveAvgPool2d(out)(x), atol=1e-6)


def test_a_net_first_run_under_inference_mode_still_trains(wiring):
    """A first forward under torch.inference_mode (test, predict, Lightning's validation) fills the
    pooling's cache; training afterwards must not meet inference tensors there."""
    net, x = small_net(wiring), torch.randn(2, 1, 48, 48)
    with torch.inference_mode():
        net.eval()(x)
    net.train()(x).sum().backward()
    assert all(p.grad is not None for p in net.front.parameters() if p.requires_grad)
