"""scripts/silent_cells.py: counts exactly the cells that never fire, and the cells held at the cap."""

from __future__ import annotations

import pytest
import torch

from bionic.nets import BioNIC
from helpers.scripts import load_script


@pytest.fixture(scope="module")
def silent():
    return load_script("silent_cells")


def rates(silent, net, images):
    return silent.activity(net, {"mean": 0.0, "std": 1.0}, images)  # activity runs without gradients


def test_cells_silenced_by_their_bias_are_counted_and_no_others(silent):
    torch.manual_seed(0)
    net = BioNIC().eval()
    images = torch.randint(0, 256, (64, 48, 48), dtype=torch.uint8)
    first = rates(silent, net, images)
    before = {row["group"]: row for row in silent.group_stats(net, first, 3.0)}

    last = net.groups[-1]
    quiet = (first[f"group {net.group_names[-1]}"] > 0).any(0).nonzero().flatten()[:4]  # four cells that fire
    assert len(quiet) == 4
    with torch.no_grad():
        last.norm.bias[quiet] = -100.0          # below anything LayerNorm can reach
        last.excitability[quiet[:2]] = 3.0      # two of them held at the cap, as in the trained runs
    after = {row["group"]: row for row in silent.group_stats(net, rates(silent, net, images), 3.0)}

    name = net.group_names[-1]
    assert after[name]["silent"] == before[name]["silent"] + len(quiet)
    assert after[name]["rare"] >= after[name]["silent"]
    assert after[name]["at_cap"] == 2
    assert after[name]["rate"] < before[name]["rate"]
    for group in net.group_names[:-1]:  # upstream of the change nothing moves
        assert after[group] == before[group]
