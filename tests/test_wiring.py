"""Wiring: groups, masks, inhibition, null models, build_wiring, and the stats command."""

import json

import numpy as np
import pytest
import torch

from bionic.connectome import (
    DEFAULT_GROUPS,
    NULL_MODELS,
    block_masks,
    build_wiring,
    degree_preserving_shuffle,
    density_matched_random,
    group_members,
    inhibition,
    load_column,
)
from bionic.connectome.cli import main
from bionic.errors import BionicError
from bionic.nets.bionic import MASKS
from helpers.toy import TOY_TYPES, toy_column

TOY_SIZES = [6, 8, 6, 7]  # 4P | 23P | 5P-IT+5P-ET+5P-NP | 6P-IT+6P-CT in TOY_TYPES


@pytest.fixture(scope="module")
def toy():
    return toy_column(density=0.35, seed=5)


def _n_syn(column):
    return {(r.pre_root_id, r.post_root_id): r.n_synapses for r in column.edges.itertuples()}


# ----------------------------------------------------------------------------- groups and masks
def test_groups_follow_the_laminar_order_and_type_order(toy):
    members = group_members(toy, DEFAULT_GROUPS)
    assert [len(m) for m in members] == TOY_SIZES
    types = toy.cells.cell_type.to_numpy()
    assert list(types[members[2]]) == ["5P-IT"] * 3 + ["5P-ET"] * 2 + ["5P-NP"]
    roots = toy.cells.root_id.to_numpy()
    for rows in members:  # within a type, by root id
        for t in dict.fromkeys(types[rows]):
            part = roots[rows][types[rows] == t]
            assert list(part) == sorted(part)


@pytest.mark.parametrize("k", [1, 3])
def test_masks_mark_pairs_with_at_least_min_synapses(toy, k):
    between, within = block_masks(toy, DEFAULT_GROUPS, min_synapses=k)
    members = group_members(toy, DEFAULT_GROUPS)
    roots = toy.cells.root_id.to_numpy()
    syn = _n_syn(toy)
    for i, mask in enumerate(between):
        assert mask.shape == (TOY_SIZES[i + 1], TOY_SIZES[i]) and mask.dtype == np.float32
        for p, pre in enumerate(roots[members[i]]):
            for q, post in enumerate(roots[members[i + 1]]):
                assert mask[q, p] == float(syn.get((pre, post), 0) >= k)
    for i, mask in enumerate(within):
        assert mask.shape == (TOY_SIZES[i],) * 2 and not np.diag(mask).any()
        for p, pre in enumerate(roots[members[i]]):
            for q, post in enumerate(roots[members[i]]):
                assert mask[q, p] == float(syn.get((pre, post), 0) >= k)


@pytest.mark.parametrize("measure", ["synapses", "cells"])
def test_inhibition_is_inhibitory_input_normalized_to_one(toy, measure):
    values = inhibition(toy, DEFAULT_GROUPS, measure=measure)
    inhibitory = set(toy.cells.root_id[toy.cells.ei_class == "I"])
    roots = toy.cells.root_id.to_numpy()
    raw = []
    for rows in group_members(toy, DEFAULT_GROUPS):
        part = toy.edges[toy.edges.pre_root_id.isin(inhibitory)]
        agg = part.groupby("post_root_id").n_synapses.sum() if measure == "synapses" else part.groupby("post_root_id").size()
        raw.append(np.array([agg.get(r, 0) for r in roots[rows]], dtype=float))
    top = max(r.max() for r in raw)
    for got, want in zip(values, raw):
        np.testing.assert_allclose(got, want / top, rtol=1e-6)
    assert max(float(v.max()) for v in values) == 1.0 and min(float(v.min()) for v in values) >= 0.0


# ----------------------------------------------------------------------------- null models
def _random_block(shape, density, seed, square=False):
    rng = np.random.default_rng(seed)
    block = (rng.random(shape) < density).astype(np.float32)
    if square:
        np.fill_diagonal(block, 0)
    return block


@pytest.mark.parametrize("square", [False, True])
def test_shuffle_keeps_every_in_and_out_degree_exactly(square):
    block = _random_block((40, 40) if square else (50, 30), 0.2, 1, square)
    out = degree_preserving_shuffle(block, np.random.default_rng(0), no_self=square)
    assert np.array_equal(out.sum(axis=1), block.sum(axis=1))  # in-degree of each post cell
    assert np.array_equal(out.sum(axis=0), block.sum(axis=0))  # out-degree of each pre cell
    assert set(np.unique(out)) <= {0.0, 1.0}
    if square:
        assert not np.diag(out).any()
    assert (out * block).sum() < 0.6 * block.sum()  # it did move the edges


@pytest.mark.parametrize("square", [False, True])
def test_random_keeps_the_density_exactly(square):
    block = _random_block((40, 40) if square else (50, 30), 0.2, 2, square)
    out = density_matched_random(block, np.random.default_rng(0), no_self=square)
    assert out.sum() == block.sum() and set(np.unique(out)) <= {0.0, 1.0}
    if square:
        assert not np.diag(out).any()


@pytest.mark.parametrize("null_model", ["shuffled", "random"])
def test_null_models_on_the_bundled_column(null_model):
    column = load_column()
    real = build_wiring(column)
    null = build_wiring(column, null_model=null_model, seed=1)
    assert null.sizes == real.sizes == [266, 349, 185, 363]
    for a, b in zip(real.between + real.within, null.between + null.within):
        assert a.shape == b.shape and a.sum() == b.sum()
        if null_model == "shuffled":
            assert torch.equal(a.sum(0), b.sum(0)) and torch.equal(a.sum(1), b.sum(1))
        assert not torch.equal(a, b)
    for w in null.within:
        assert not torch.diagonal(w).any()
    for a, b in zip(real.inhibition, null.inhibition):  # null models rewire the masks only
        assert torch.equal(a, b)
    again = build_wiring(column, null_model=null_model, seed=1)
    assert again is null
    other = build_wiring(column, null_model=null_model, seed=2)
    assert not torch.equal(other.between[0], null.between[0])
    assert null.wiring_source["null_model"] == null_model and null.wiring_source["seed"] == 1


def test_one_word_per_null_model():
    """The network's mask values and build_wiring's null models are the same words."""
    assert NULL_MODELS == ("shuffled", "random") and set(NULL_MODELS) < set(MASKS)
    assert build_wiring(load_column()).wiring_source["null_model"] is None
    with pytest.raises(BionicError, match="'shuffled' or 'random', got 'shuffle'"):
        build_wiring(load_column(), null_model="shuffle")


# ----------------------------------------------------------------------------- build_wiring
def test_build_wiring_contract_on_the_bundled_column():
    column = load_column()
    w = build_wiring(column, groups=DEFAULT_GROUPS, min_synapses=1, inhibition_measure="synapses", null_model=None, seed=0)
    assert w.group_names == ["A", "B", "C", "D"] and w.group_types == DEFAULT_GROUPS
    assert w.sizes == [266, 349, 185, 363]
    assert [tuple(b.shape) for b in w.between] == [(349, 266), (185, 349), (363, 185)]
    assert [tuple(x.shape) for x in w.within] == [(s, s) for s in w.sizes]
    assert all(t.dtype == torch.float32 for t in w.between + w.within + w.inhibition)
    assert [tuple(v.shape) for v in w.inhibition] == [(s,) for s in w.sizes]
    assert all(0 <= float(v.min()) and float(v.max()) <= 1 for v in w.inhibition)
    ws = json.loads(json.dumps(w.wiring_source))
    assert ws["version"] == 1300 and ws["full_cell_level_connectome"] is False
    assert ws["mask_connections"]["measured"] > 0 and ws["mask_connections"]["sampled"] > 0
    assert "sampled" in ws and "measured" in ws
    assert build_wiring(column) is w  # cached per process
    sparse = build_wiring(column, min_synapses=3)
    assert all(float((s > a).sum()) == 0 for s, a in zip(sparse.between, w.between))
    assert sum(float(s.sum()) for s in sparse.between) < sum(float(a.sum()) for a in w.between)


def test_build_wiring_accepts_a_custom_grouping(toy):
    w = build_wiring(toy, groups={"L23": ["23P"], "L4": ["4P"], "deep": ["6P-CT", "5P-ET"]})
    assert w.group_names == ["L23", "L4", "deep"] and w.sizes == [8, 6, 3 + 2]
    assert tuple(w.between[0].shape) == (6, 8)


@pytest.mark.parametrize("kwargs, phrase", [
    ({"groups": {"A": ["L2a"]}}, "unknown cell type 'L2a'"),
    ({"groups": {"A": ["4P"], "B": ["4P", "23P"]}}, "is in both group"),
    ({"groups": {"A": []}}, "lists no cell types"),
    ({"groups": {"A": ["4P"], "X": ["Unsure"]}}, "has no cells"),
    ({"inhibition_measure": "volts"}, "inhibition_measure must be one of"),
    ({"null_model": "erdos"}, "null_model must be"),
    ({"min_synapses": 0}, "min_synapses must be"),
])
def test_bad_wiring_arguments_are_one_clear_line(toy, kwargs, phrase):
    with pytest.raises(BionicError) as err:
        build_wiring(toy, **kwargs)
    assert phrase in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------- stats command
def test_stats_prints_group_sizes_blocks_and_provenance(capsys, tmp_path):
    figure = tmp_path / "blocks.png"
    assert main(["stats", "--out", str(figure)]) == 0
    text = capsys.readouterr().out
    assert "group sizes: 266, 349, 185, 363" in text
    for block in ("A->B", "B->C", "C->D", "A->A", "D->D", "I->A", "I->D"):
        assert f"\n  {block} " in text
    assert "wiring_source" in text and '"full_cell_level_connectome": false' in text
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stats_on_a_missing_snapshot_is_one_line_exit_2(capsys, tmp_path):
    assert main(["stats", "--snapshot", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err


def test_toy_types_cover_every_default_group():
    assert {t for types in DEFAULT_GROUPS.values() for t in types} <= set(TOY_TYPES)
