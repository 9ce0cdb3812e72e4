"""Build the bundled snapshot: real v1300 cells, real L5 ET outputs, the rest sampled and calibrated.

The full cell-level edge list of the column is not in the offline data (SOURCE.md), so the
bundled column is honest about what it is:

- measured: the 1,331 neurons (root ids and manual types at v1300) and the outgoing connections
  of the 39 cells of the L5 ET set (`edges_l5et_to_column.csv`; a lower bound, their axons were
  proofread at an older version);
- sampled (seeded): every other connection, from a cell-type-pair model whose block densities are
  the v1718 type-pair connection densities (`type_pair_connection_density_v1718.csv`), with the
  laminar specificity of interneuron outputs taken from Schneider-Mizell et al.
  (`type_pair_connprob_inhibitory_sm2024.csv`); synapses per connection follow 1 + negative
  binomial with class means (E->E, I->E, rest) and a shared shape fitted so the totals match the
  published v1718 column graph (145,598 synapses over 78,301 connections, 13,528 with >= 3);
  synapse sizes are lognormal around the per-type mean size (`type_role_mean_synapse_size_v1718.csv`).

Run once: `python -m bionic connectome build-bundled --source-dir ../shared/data/microns_column
--out bionic/connectome/data/v1300`; the output is committed as package data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bionic.connectome.celltypes import EI_CLASS, EXCITATORY_TYPES, INHIBITORY_TYPES, KNOWN_TYPES
from bionic.connectome.snapshot import write_snapshot
from bionic.errors import BionicError

MEASURED_TYPES = ("23P", "4P", "5P-ET", "5P-IT", "5P-NP", "6P-CT", "6P-IT", "BC", "BPC", "MC", "NGC")
# Unsure types borrow the pooled densities of their class (SOURCE.md has no row for them).
PROXY_MEMBERS = {
    "Unsure-E": [t for t in EXCITATORY_TYPES if t in MEASURED_TYPES],
    "Unsure-I": [t for t in INHIBITORY_TYPES if t in MEASURED_TYPES],
    "Unsure": list(MEASURED_TYPES),
}
# Schneider-Mizell m-type families ~ manual interneuron types (SOURCE.md, "Joining m-types").
MTYPE_FAMILY = {"PTC": "BC", "DTC": "MC", "ITC": "BPC", "STC": "NGC"}
LAYERS = ("L1", "L2/3", "L4", "L5", "L6")
SM_LAYER = {"L1": "L1", "L2": "L2/3", "L3": "L2/3", "L4": "L4", "L5": "L5", "L6": "L6"}
CELL_LAYER = {"L1": "L1", "L2/3": "L2/3", "L4": "L4", "L5": "L5", "L6": "L6", "WM": "L6"}
LAMINAR_FLOOR = 0.1      # layer pairs without any connection keep 10 % of the family's pooled rate
P_MAX = 0.95             # cap on one pair's connection probability after laminar reweighting
SIZE_SIGMA = 0.7         # log-sd of one synapse's size (assumed; only the mean per type is published)

CALIBRATION_FILES = (
    "cells.csv",
    "edges_l5et_to_column.csv",
    "type_pair_connection_density_v1718.csv",
    "type_pair_connprob_inhibitory_sm2024.csv",
    "summary_counts_v1718_column_graph.csv",
    "published_summary_counts.csv",
    "type_role_mean_synapse_size_v1718.csv",
)


def _read(src: Path, name: str) -> pd.DataFrame:
    path = src / name
    if not path.exists():
        raise BionicError(f"{path} is missing; --source-dir must be the microns_column data folder (see its SOURCE.md)")
    return pd.read_csv(path)


def _quantity(table: pd.DataFrame, prefix: str) -> float:
    rows = table[table["quantity"].str.startswith(prefix)]
    if len(rows) != 1:
        raise BionicError(f"published totals: expected one row starting {prefix!r}, found {len(rows)}")
    return float(rows["value"].iloc[0])


# ----------------------------------------------------------------------------- calibration
def type_pair_density(table: pd.DataFrame) -> pd.DataFrame:
    """Connection density for every (pre, post) pair of KNOWN_TYPES; rows = pre."""
    conn = table.pivot(index="pre_cell_type", columns="post_cell_type", values="n_pixels_connected")
    seen = table.pivot(index="pre_cell_type", columns="post_cell_type", values="n_pixels_sampled")
    dens = table.pivot(index="pre_cell_type", columns="post_cell_type", values="connection_density")
    members = {t: [t] for t in MEASURED_TYPES} | PROXY_MEMBERS
    out = pd.DataFrame(0.0, index=list(KNOWN_TYPES), columns=list(KNOWN_TYPES))
    for a in KNOWN_TYPES:
        for b in KNOWN_TYPES:
            if a in MEASURED_TYPES and b in MEASURED_TYPES:
                out.loc[a, b] = dens.loc[a, b]
            else:  # pooled over the class the unsure type belongs to
                ma, mb = members[a], members[b]
                out.loc[a, b] = conn.loc[ma, mb].to_numpy().sum() / seen.loc[ma, mb].to_numpy().sum()
    return out


def laminar_factors(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per interneuron type: [pre layer, post layer] connection rate relative to its pooled rate."""
    t = table.assign(family=table["pre_mtype"].map(MTYPE_FAMILY),
                     a=table["pre_layer"].map(SM_LAYER), b=table["post_layer"].map(SM_LAYER))
    factors = {}
    for family, rows in t.groupby("family"):
        pooled = rows["n_connections"].sum() / rows["n_pairs"].sum()
        grid = np.full((len(LAYERS), len(LAYERS)), LAMINAR_FLOOR)
        g = rows.groupby(["a", "b"])[["n_connections", "n_pairs"]].sum()
        for (a, b), r in g.iterrows():
            grid[LAYERS.index(a), LAYERS.index(b)] = max(r.n_connections / r.n_pairs / pooled, LAMINAR_FLOOR)
        factors[family] = grid
    return factors


def connection_probabilities(cells: pd.DataFrame, density: pd.DataFrame, laminar: dict[str, np.ndarray],
                             sampled_pre: np.ndarray) -> np.ndarray:
    """P[pre, post] for every cell pair; each (pre type, post type) block averages to its density."""
    types = cells["cell_type"].to_numpy()
    layer = np.array([LAYERS.index(CELL_LAYER.get(x, "L6")) if isinstance(x, str) else 4 for x in cells["layer"]])
    n = len(cells)
    prob = np.zeros((n, n))
    for a in KNOWN_TYPES:
        rows = np.flatnonzero((types == a) & sampled_pre)
        if not len(rows):
            continue
        for b in KNOWN_TYPES:
            cols = np.flatnonzero(types == b)
            if not len(cols) or density.loc[a, b] <= 0:
                continue
            weight = laminar[a][layer[rows][:, None], layer[cols][None, :]] if a in laminar else np.ones((len(rows), len(cols)))
            weight = weight * (rows[:, None] != cols[None, :])  # no autapses
            target = density.loc[a, b] * weight.astype(bool).sum()
            block = np.zeros_like(weight)
            free = weight > 0
            for _ in range(20):  # rescale, cap at P_MAX, hand the capped excess to the others
                remaining = target - block[~free].sum()
                if remaining <= 0 or not free.any():
                    break
                block[free] = weight[free] * remaining / weight[free].sum()
                over = block > P_MAX
                if not over.any():
                    break
                block[over] = P_MAX
                free &= ~over
            prob[np.ix_(rows, cols)] = block
    return prob


def expected_connections(cells: pd.DataFrame, density: pd.DataFrame) -> float:
    counts = cells["cell_type"].value_counts()
    return float(sum(density.loc[a, b] * counts.get(a, 0) * (counts.get(b, 0) - (a == b))
                     for a in KNOWN_TYPES for b in KNOWN_TYPES))


def density_scale(cells: pd.DataFrame, density: pd.DataFrame, src: Path) -> float:
    """One global factor so the model's overall density equals the published one.

    The figure's block densities, weighted by the true type counts, overshoot the published
    78,301 connections among 1,348 cells by about 8 % (small, dense blocks lose relatively more
    boundary pixels); scaling every block by the same factor keeps the block structure.
    """
    graph = _read(src, "summary_counts_v1718_column_graph.csv")
    conn = _quantity(graph, "directed connections (>=1 synapse) among selected")
    n_sel = _quantity(graph, "column cells with status_axon and status_dendrite True")
    n = len(cells)
    return (conn / (n_sel * (n_sel - 1))) / (expected_connections(cells, density) / (n * (n - 1)))


def multiplicity_model(cells: pd.DataFrame, density: pd.DataFrame, src: Path) -> dict:
    """Mean synapses per connection for E->E, I->E and the rest, and a shared NB shape.

    Means: published class synapse totals over the model's class connection counts, scaled so
    all connections sum to the published 78,301. Shape: fitted so P(n >= 3) overall matches
    13,528 / 78,301.
    """
    graph = _read(src, "summary_counts_v1718_column_graph.csv")
    published = _read(src, "published_summary_counts.csv")
    syn_sel = _quantity(graph, "synapses between two distinct selected cells")
    conn_sel = _quantity(graph, "directed connections (>=1 synapse) among selected")
    ge3_sel = _quantity(graph, "directed connections with >=3 synapses")
    syn_all = _quantity(published, "synapses between column cells")
    syn_ee = _quantity(published, "E->E synapses") * syn_sel / syn_all
    syn_ie = _quantity(published, "I->E synapses") * syn_sel / syn_all

    counts = cells["cell_type"].value_counts()
    cls = {t: ("I" if EI_CLASS[t] == "I" else "E") for t in KNOWN_TYPES}
    conn = {"EE": 0.0, "IE": 0.0, "rest": 0.0}
    for a in KNOWN_TYPES:
        for b in KNOWN_TYPES:
            pairs = counts.get(a, 0) * (counts.get(b, 0) - (a == b))
            key = {"EE": "EE", "IE": "IE"}.get(cls[a] + cls[b], "rest")
            conn[key] += density.loc[a, b] * pairs
    scale = conn_sel / sum(conn.values())
    mean = {"EE": syn_ee / (conn["EE"] * scale), "IE": syn_ie / (conn["IE"] * scale),
            "rest": (syn_sel - syn_ee - syn_ie) / (conn["rest"] * scale)}
    target_ge3 = ge3_sel / conn_sel

    def frac_ge3(k: float) -> float:
        total = 0.0
        for key, c in conn.items():
            mu = mean[key] - 1.0
            p = k / (k + mu)
            total += c * (1.0 - p**k * (1.0 + k * (1.0 - p)))
        return total / sum(conn.values())

    grid = np.logspace(-2, 3, 2001)
    k = float(grid[np.argmin([abs(frac_ge3(g) - target_ge3) for g in grid])])
    return {"mean_synapses": {key: round(v, 4) for key, v in mean.items()}, "nb_shape": round(k, 4),
            "target_mean": round(syn_sel / conn_sel, 4), "target_fraction_ge3": round(target_ge3, 4),
            "model_fraction_ge3": round(frac_ge3(k), 4)}


def mean_synapse_size(src: Path) -> dict[str, float]:
    table = _read(src, "type_role_mean_synapse_size_v1718.csv")
    pre = table[table["role"].str.startswith("presynaptic")].set_index("cell_type")["mean_synapse_size_voxels"]
    out = {t: float(pre[t]) for t in MEASURED_TYPES}
    for proxy, members in PROXY_MEMBERS.items():
        out[proxy] = float(np.mean([out[t] for t in members]))
    return out


# ----------------------------------------------------------------------------- build
def sample_edges(cells: pd.DataFrame, prob: np.ndarray, multiplicity: dict, sizes: dict[str, float],
                 rng: np.random.Generator) -> pd.DataFrame:
    """Draw connections, synapse counts and summed sizes; all draws from one seeded generator."""
    pre, post = np.nonzero(rng.random(prob.shape) < prob)
    ei = cells["ei_class"].map(lambda c: "I" if c == "I" else "E").to_numpy()
    key = np.where((ei[pre] == "E") & (ei[post] == "E"), "EE", np.where((ei[pre] == "I") & (ei[post] == "E"), "IE", "rest"))
    mu = np.array([multiplicity["mean_synapses"][k] for k in key]) - 1.0
    k = multiplicity["nb_shape"]
    n_syn = 1 + rng.negative_binomial(k, k / (k + mu))
    mean_size = cells["cell_type"].map(sizes).to_numpy()[pre]
    per_synapse = np.repeat(mean_size, n_syn)
    draws = rng.lognormal(np.log(per_synapse) - SIZE_SIGMA**2 / 2, SIZE_SIGMA)
    starts = np.concatenate([[0], np.cumsum(n_syn)[:-1]])
    total = np.add.reduceat(draws, starts) if len(draws) else np.zeros(0)
    root = cells["root_id"].to_numpy()
    return pd.DataFrame({"pre_root_id": root[pre], "post_root_id": root[post], "n_synapses": n_syn,
                         "total_size": np.round(total).astype("int64"), "measured": False})


def build_bundled(source_dir: str | Path, out: str | Path, seed: int = 0) -> Path:
    src = Path(source_dir)
    raw = _read(src, "cells.csv")
    cells = pd.DataFrame({
        "root_id": raw["root_id"].astype("int64"),
        "cell_type": raw["cell_type"],
        "ei_class": raw["cell_type"].map(EI_CLASS),
        "outputs_measured": False,
        "cell_type_raw": raw["cell_type_manual_raw"],
        "cell_type_auto": raw["cell_type_auto"],
        "layer": raw["layer"],
        "depth_um": raw["depth_um"],
        "soma_x_nm": raw["soma_x_nm"], "soma_y_nm": raw["soma_y_nm"], "soma_z_nm": raw["soma_z_nm"],
        "axon_proofreading": raw["axon_proofreading"],
    })
    if (cells["ei_class"] != raw["ei_class"]).any():
        raise BionicError("cells.csv: ei_class disagrees with cell_type for some cells; check the source data")
    et = _read(src, "edges_l5et_to_column.csv")
    measured = et[["pre_root_id", "post_root_id", "n_synapses", "total_size"]].assign(measured=True)
    cells["outputs_measured"] = cells["root_id"].isin(measured["pre_root_id"])

    figure_density = type_pair_density(_read(src, "type_pair_connection_density_v1718.csv"))
    scale = density_scale(cells, figure_density, src)
    density = figure_density * scale
    laminar = laminar_factors(_read(src, "type_pair_connprob_inhibitory_sm2024.csv"))
    prob = connection_probabilities(cells, density, laminar, sampled_pre=~cells["outputs_measured"].to_numpy())
    multiplicity = multiplicity_model(cells, density, src)
    sizes = mean_synapse_size(src)
    sampled = sample_edges(cells, prob, multiplicity, sizes, np.random.default_rng(seed))
    edges = pd.concat([measured, sampled], ignore_index=True)

    n_meas, n_samp = len(measured), len(sampled)
    meta = {
        "datastack": "minnie65_public",
        "materialization_version": 1300,
        "source": "bundled",
        "timestamp": "v1300 cells (MICrONS_workshop_CNC_forum cell_info_1300); v1718 calibration",
        "measured": {"cells": True, "edges": "partial",
                     "edges_measured": "outputs of the 39 L5 ET-set cells onto column cells (outputs_measured=True)",
                     "edges_sampled": "outputs of every other cell (measured=False)"},
        "wiring_source": {
            "snapshot": "bundled v1300",
            "full_cell_level_connectome": False,
            "measured": f"cells: {len(cells)} neurons of allen_v1_column_types_slanted_ref at v1300 (root ids, "
                        f"manual types); edges: {n_meas} connections ({int(measured.n_synapses.sum())} synapses) "
                        "made by the column's 39 L5 ET-set cells (Bodor et al. data, a lower bound)",
            "sampled": f"{n_samp} connections of all other cells, seed {seed}: cell-type-pair model calibrated to "
                       "the v1718 type-pair connection densities, interneuron laminar specificity (Schneider-Mizell "
                       "et al.), synapse counts and sizes matched to published v1718 totals",
            "edges_measured": n_meas,
            "edges_sampled": n_samp,
            "seed": seed,
        },
        "sampling": {
            "seed": seed,
            "model": "Bernoulli per cell pair; P averages to density_scale x the type-pair density in every "
                     "(pre type, post type) block; interneuron rows reweighted by pre/post layer",
            "density_scale": round(scale, 5),
            "laminar_floor": LAMINAR_FLOOR, "p_max": P_MAX, "size_log_sd": SIZE_SIGMA,
            "multiplicity": multiplicity,
            "calibration_files": list(CALIBRATION_FILES),
            "source_dir": "shared/data/microns_column (see its SOURCE.md)",
        },
    }
    return write_snapshot(out, cells, edges, meta)
