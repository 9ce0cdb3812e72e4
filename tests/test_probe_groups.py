"""scripts/probe_groups.py: each stage of both networks in data order, and a probe that can tell
information from none."""

from __future__ import annotations


import pytest
import torch

from bionic.nets import BaselineCNN, BioNIC
from helpers.scripts import load_script


@pytest.fixture(scope="module")
def probes():
    return load_script("probe_groups")


@pytest.mark.parametrize("make, names", [
    (BioNIC, ["front end", "group A", "group B", "group C", "group D", "groups C+D", "logits"]),
    (BaselineCNN, ["front end", "dense 1", "dense 2", "dense 1+2", "logits"]),
])
def test_stages_follow_the_data_to_the_networks_own_output(probes, make, names):
    torch.manual_seed(0)
    net = make().eval()
    x = torch.randn(4, 1, 48, 48)
    with torch.no_grad():
        out = probes.stages(net, x)
        assert list(out) == names
        torch.testing.assert_close(out["logits"], net(x))
    if make is BioNIC:
        assert [out[f"group {g}"].shape[1] for g in net.group_names] == net.sizes
        torch.testing.assert_close(out["groups C+D"], torch.cat([out["group C"], out["group D"]], 1))
    else:
        torch.testing.assert_close(out["dense 1+2"], torch.cat([out["dense 1"], out["dense 2"]], 1))


def test_the_probe_finds_a_class_signal_and_none_where_there_is_none(probes):
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 7, (2000,), generator=gen)
    noise = torch.randn(2000, 20, generator=gen)
    signal = noise.clone()
    signal[:, :7] += 4 * torch.nn.functional.one_hot(y, 7)
    assert probes.probe(signal[:1500], y[:1500], signal[1500:], y[1500:]) > 0.95
    assert probes.probe(noise[:1500], y[:1500], noise[1500:], y[1500:]) < 0.25  # chance is 1/7
