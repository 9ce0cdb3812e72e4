"""scripts/silent_cells.py: counts exactly the cells that never fire, and the cells held at the cap."""

from __future__ import annotations

import pytest
import torch

from bionic.nets import BioNIC
from helpers.scripts import load_script


@pytest.fixture(scope="module")
def silent():
    return load_script("silent_cells")


NORM = {"mean": 0.0, "std": 1.0}


def rates(silent, net, images):
    return silent.activity(net, NORM, images)  # activity runs without gradients


def test_cells_silenced_by_their_bias_are_counted_and_no_others(silent):
    torch.manual_seed(0)
    net = BioNIC().eval()
    images = torch.randint(0, 256, (64, 48, 48), dtype=torch.uint8)
    first, first_drive = silent.activity_and_drive(net, NORM, images)
    before = {row["group"]: row for row in silent.group_stats(net, first, 3.0, first_drive)}

    last = net.groups[-1]
    quiet = (first[f"group {net.group_names[-1]}"] > 0).any(0).nonzero().flatten()[:4]  # four cells that fire
    assert len(quiet) == 4
    with torch.no_grad():
        last.norm.bias[quiet] = -100.0          # below anything LayerNorm can reach
        last.norm.weight[quiet] = 2.0           # and a gain of their own (every other cell's is 1)
        last.excitability[quiet[:2]] = 3.0      # two of them held at the cap, as in the trained runs
    rates_after, drive = silent.activity_and_drive(net, NORM, images)
    after = {row["group"]: row for row in silent.group_stats(net, rates_after, 3.0, drive)}

    name = net.group_names[-1]
    assert after[name]["silent"] == before[name]["silent"] + len(quiet)
    assert after[name]["rare"] >= after[name]["silent"]
    assert after[name]["at_cap"] == 2
    assert after[name]["rate"] < before[name]["rate"]
    plain = rates(silent, net, images)[f"group {name}"]
    assert torch.equal(rates_after[f"group {name}"], plain), "the hooks change no rate"
    # What holds them: the four cells' LayerNorm output doubled and shifted by -100 (from gain 1 and
    # no shift), the cells silent before kept theirs; the gain is the LayerNorm's at the silent cells.
    was_silent = (first[f"group {name}"] == 0).all(0)
    kept, doubled = first_drive[name][:, was_silent], 2 * first_drive[name][:, quiet]
    moved = kept.mean(0).sum() + doubled.mean(0).sum() - 100 * 4
    assert after[name]["silent_drive"] == pytest.approx(float(moved) / after[name]["silent"], rel=1e-4)
    now_silent = (rates_after[f"group {name}"] == 0).all(0)
    assert after[name]["silent_gain"] == pytest.approx(float(last.norm.weight[now_silent].mean()))
    for group in net.group_names[:-1]:  # upstream of the change nothing moves
        assert after[group] == before[group]
