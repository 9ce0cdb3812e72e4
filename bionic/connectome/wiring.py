"""Wiring: pure functions from a column to what the network needs.

Laminar groups (cells grouped by type, in the canonical flow L4 -> L2/3 -> L5 -> L6), masks
between successive groups and within each group, graded inhibition per cell, and null models
on the same cells. Everything is numpy until `build_wiring`, which hands torch tensors to the net
(torch is imported there only, so `connectome stats` stays fast).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bionic.connectome.celltypes import KNOWN_TYPES
from bionic.connectome.snapshot import Column, cell_index
from bionic.errors import BionicError

if TYPE_CHECKING:
    import torch

DEFAULT_GROUPS = {"A": ["4P"], "B": ["23P"], "C": ["5P-IT", "5P-ET", "5P-NP"], "D": ["6P-IT", "6P-CT"]}
INHIBITION_MEASURES = ("synapses", "cells")
# Named as the network's `mask` values (and the ablation files control_shuffled / control_random).
NULL_MODELS = ("shuffled", "random")


@dataclass
class Wiring:
    group_names: list[str]          # ["A", "B", "C", "D"] in feed-forward order
    group_types: dict[str, list[str]]
    sizes: list[int]                # [266, 349, 185, 363] for the bundled v1300 column
    between: list["torch.Tensor"]   # len n-1; float32 0/1, shape [sizes[i+1], sizes[i]]  (mask[post, pre])
    within: list["torch.Tensor"]    # len n; float32 0/1, shape [sizes[i], sizes[i]], diagonal zero
    inhibition: list["torch.Tensor"]  # len n; float32 in [0, 1], shape [sizes[i]]
    wiring_source: dict             # JSON-able: snapshot, version, measured / sampled parts, null_model, seed


# ----------------------------------------------------------------------------- groups
def check_groups(groups: Mapping[str, list[str]] | None) -> dict[str, list[str]]:
    """Validated copy of a group mapping {group name: [cell types]}; its order is the flow order."""
    groups = DEFAULT_GROUPS if groups is None else groups
    if not isinstance(groups, Mapping) or not groups:
        raise BionicError(f"groups must be a non-empty mapping of group name -> list of cell types, got {groups!r}")
    out, seen = {}, {}
    for name, types in groups.items():
        types = [types] if isinstance(types, str) else list(types)
        if not types:
            raise BionicError(f"group {name!r} lists no cell types; give at least one of {', '.join(KNOWN_TYPES)}")
        for t in types:
            if t not in KNOWN_TYPES:
                raise BionicError(f"group {name!r}: unknown cell type {t!r}; known: {', '.join(KNOWN_TYPES)}")
            if t in seen:
                raise BionicError(f"cell type {t!r} is in both group {seen[t]!r} and group {name!r}; put it in one")
            seen[t] = name
        out[str(name)] = types
    return out


def group_members(column: Column, groups: Mapping[str, list[str]] | None = None) -> list[np.ndarray]:
    """Row positions (into column.cells) of each group's cells, in canonical order: by the
    group's type order, then by root id."""
    groups = check_groups(groups)
    cells = column.cells
    members = []
    for name, types in groups.items():
        rank = cells["cell_type"].map({t: i for i, t in enumerate(types)})
        rows = np.flatnonzero(rank.notna().to_numpy())
        if not len(rows):
            raise BionicError(f"group {name!r} ({', '.join(types)}) has no cells in snapshot {column.name}; "
                              "change the groups or the snapshot")
        order = np.lexsort((cells["root_id"].to_numpy()[rows], rank.to_numpy()[rows]))
        members.append(rows[order])
    return members


# ----------------------------------------------------------------------------- matrices
def synapse_matrix(column: Column, value: str = "n_synapses") -> np.ndarray:
    """Dense [pre, post] matrix over column.cells rows of n_synapses (or total_size)."""
    index = cell_index(column)
    n = len(column.cells)
    out = np.zeros((n, n), dtype=np.int64)
    edges = column.edges
    out[index[edges["pre_root_id"]].to_numpy(), index[edges["post_root_id"]].to_numpy()] = edges[value].to_numpy()
    return out


def _check_min(min_synapses) -> int:
    if isinstance(min_synapses, bool) or int(min_synapses) != min_synapses or min_synapses < 1:
        raise BionicError(f"min_synapses must be a whole number >= 1, got {min_synapses!r}")
    return int(min_synapses)


def block_masks(column: Column, groups=None, min_synapses: int = 1) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(between, within) 0/1 masks as numpy float32: mask[post, pre] = 1 where pre makes at least
    min_synapses synapses onto post. between[i]: group i -> group i+1; within[i]: group i -> itself
    (diagonal zero: no autapses)."""
    k = _check_min(min_synapses)
    members = group_members(column, groups)
    connected = synapse_matrix(column) >= k
    between = [connected[np.ix_(members[i], members[i + 1])].T.astype(np.float32) for i in range(len(members) - 1)]
    within = []
    for rows in members:
        block = connected[np.ix_(rows, rows)].T.astype(np.float32)
        np.fill_diagonal(block, 0.0)
        within.append(block)
    return between, within


def inhibition(column: Column, groups=None, measure: str = "synapses", min_synapses: int = 1) -> list[np.ndarray]:
    """Inhibitory input of each group cell, normalized to [0, 1] by the largest over all groups.

    measure="synapses": inhibitory synapses received; "cells": inhibitory presynaptic cells.
    Only connections with at least min_synapses synapses count, as for the masks. One global
    maximum keeps differences between groups (a weakly inhibited layer stays weak).
    """
    if measure not in INHIBITION_MEASURES:
        raise BionicError(f"inhibition_measure must be one of {', '.join(INHIBITION_MEASURES)}, got {measure!r}")
    k = _check_min(min_synapses)
    members = group_members(column, groups)
    counts = synapse_matrix(column)
    inhibitory = (column.cells["ei_class"] == "I").to_numpy()
    received = counts[inhibitory] * (counts[inhibitory] >= k)
    per_cell = received.sum(axis=0) if measure == "synapses" else (received > 0).sum(axis=0)
    raw = [per_cell[rows].astype(np.float64) for rows in members]
    top = max(float(r.max()) for r in raw)
    return [(r / top if top > 0 else np.zeros_like(r)).astype(np.float32) for r in raw]


# ----------------------------------------------------------------------------- null models
def degree_preserving_shuffle(mask: np.ndarray, rng: np.random.Generator, no_self: bool = False,
                              trades_per_row: int = 20) -> np.ndarray:
    """Random 0/1 matrix with exactly the row sums (in-degrees) and column sums (out-degrees) of
    `mask`, by Curveball trades (Strona et al. 2014; Carstens 2016 for the no-self-loop case).

    A trade picks two rows, pools the columns only one of them has, and deals them out again
    at random in the same numbers. With no_self (a square block of one group), column b never
    moves into row b, so the diagonal stays zero.
    """
    out = mask.astype(bool).copy()
    n_rows = out.shape[0]
    if n_rows < 2:
        return out.astype(np.float32)
    for _ in range(trades_per_row * n_rows):
        a = int(rng.integers(n_rows))
        b = int(rng.integers(n_rows - 1))
        b += b >= a  # two distinct rows
        only_a = out[a] & ~out[b]
        only_b = out[b] & ~out[a]
        pool_mask = only_a | only_b
        if no_self:  # keep a's link to column b in a, and b's link to column a in b
            pool_mask[a] = pool_mask[b] = False
        pool = np.flatnonzero(pool_mask)
        if len(pool) < 2:
            continue
        k = int(only_a[pool].sum())
        if k == 0 or k == len(pool):
            continue
        dealt = rng.permutation(pool)
        out[a, pool] = False
        out[b, pool] = False
        out[a, dealt[:k]] = True
        out[b, dealt[k:]] = True
    return out.astype(np.float32)


def density_matched_random(mask: np.ndarray, rng: np.random.Generator, no_self: bool = False) -> np.ndarray:
    """Random 0/1 matrix with exactly as many ones as `mask`, placed uniformly (off the diagonal
    with no_self)."""
    allowed = np.ones(mask.shape, dtype=bool)
    if no_self:
        np.fill_diagonal(allowed, False)
    slots = np.flatnonzero(allowed)
    ones = int(np.count_nonzero(mask))
    out = np.zeros(mask.size, dtype=np.float32)
    out[rng.choice(slots, size=ones, replace=False)] = 1.0
    return out.reshape(mask.shape)


def apply_null_model(between: list[np.ndarray], within: list[np.ndarray], null_model: str | None,
                     seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The null model applied to every block separately (each cell keeps its degrees within each
    block for "shuffled"; each block keeps its density for "random"; None: the blocks as they are).
    Seeded per block."""
    null_model = _check_null(null_model)
    if null_model is None:
        return between, within

    def one(block: np.ndarray, tag: int, no_self: bool) -> np.ndarray:
        rng = np.random.default_rng([int(seed), tag])
        if null_model == "shuffled":
            return degree_preserving_shuffle(block, rng, no_self=no_self)
        return density_matched_random(block, rng, no_self=no_self)

    return ([one(b, i, False) for i, b in enumerate(between)],
            [one(w, 1000 + i, True) for i, w in enumerate(within)])


def _check_null(null_model) -> str | None:
    if null_model is not None and null_model not in NULL_MODELS:
        raise BionicError(f"null_model must be None (the connectome itself), "
                          f"{' or '.join(repr(n) for n in NULL_MODELS)}, got {null_model!r}")
    return null_model


# ----------------------------------------------------------------------------- build
_CACHE: dict[tuple, tuple[Column, Wiring]] = {}


def build_wiring(column: Column, groups: Mapping[str, list[str]] | None = None, min_synapses: int = 1,
                 inhibition_measure: str = "synapses", null_model: str | None = None, seed: int = 0) -> Wiring:
    """Masks, inhibition and provenance for a network wired by `column`. Cached per process:
    the same column object and arguments give the same Wiring (treat its tensors as read-only)."""
    groups = check_groups(groups)
    null_model = _check_null(null_model)
    key = (id(column), tuple((g, tuple(t)) for g, t in groups.items()), _check_min(min_synapses),
           inhibition_measure, null_model, int(seed))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is column:
        return hit[1]

    import torch  # late: only the network needs tensors

    between, within = block_masks(column, groups, min_synapses)
    measured_part = _measured_mask_entries(column, groups, between, within)
    between, within = apply_null_model(between, within, null_model, seed)
    inhib = inhibition(column, groups, inhibition_measure, min_synapses)
    sizes = [len(m) for m in inhib]
    meta = column.meta
    source = meta.get("wiring_source", {})
    wiring = Wiring(
        group_names=list(groups),
        group_types={g: list(t) for g, t in groups.items()},
        sizes=sizes,
        between=[torch.from_numpy(b) for b in between],
        within=[torch.from_numpy(w) for w in within],
        inhibition=[torch.from_numpy(v) for v in inhib],
        wiring_source={
            "snapshot": column.name,
            "source": meta.get("source"),
            "datastack": meta.get("datastack"),
            "version": meta.get("materialization_version"),
            "full_cell_level_connectome": bool(source.get("full_cell_level_connectome", False)),
            "measured": source.get("measured"),
            "sampled": source.get("sampled"),
            "mask_connections": measured_part,
            "groups": {g: list(t) for g, t in groups.items()},
            "sizes": sizes,
            "min_synapses": int(min_synapses),
            "inhibition_measure": inhibition_measure,
            "null_model": null_model,
            "null_model_applies_to": "masks (between and within); inhibition stays as in the snapshot",
            "seed": int(seed),
        },
    )
    _CACHE[key] = (column, wiring)
    return wiring


def _measured_mask_entries(column: Column, groups, between, within) -> dict:
    """How many mask connections (before any null model) come from measured vs sampled edges."""
    measured_pre = column.cells["outputs_measured"].to_numpy()
    members = group_members(column, groups)
    measured = 0
    for i, block in enumerate(between):
        measured += int(block[:, measured_pre[members[i]]].sum())
    for i, block in enumerate(within):
        measured += int(block[:, measured_pre[members[i]]].sum())
    total = int(sum(b.sum() for b in between) + sum(w.sum() for w in within))
    return {"measured": measured, "sampled": total - measured}

