"""Block statistics of a column under a laminar grouping, printed and drawn as a heatmap."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bionic.connectome.snapshot import Column
from bionic.connectome.wiring import check_groups, group_members, synapse_matrix

INHIBITORY = "I"  # the pooled interneurons (BC, MC, BPC, NGC, Unsure-I) in the block tables


def _populations(column: Column, groups) -> dict[str, np.ndarray]:
    pops = dict(zip(check_groups(groups), group_members(column, groups)))
    pops[INHIBITORY] = np.flatnonzero((column.cells["ei_class"] == "I").to_numpy())
    return pops


def block_stats(column: Column, groups=None, min_synapses: int = 1) -> pd.DataFrame:
    """Connections, synapses and density for every (pre population, post population) block.

    Populations are the groups plus "I" (all inhibitory cells). density = connections /
    possible pairs (self pairs excluded within a population). `kind` marks the blocks the
    network uses: feed-forward (group i -> i+1), within, inhibitory (I -> group), other.
    """
    pops = _populations(column, groups)
    names = list(pops)
    group_names = names[:-1]
    counts = synapse_matrix(column)
    measured_pre = column.cells["outputs_measured"].to_numpy()
    rows = []
    for pre in names:
        for post in names:
            block = counts[np.ix_(pops[pre], pops[post])]
            if pre == post:
                np.fill_diagonal(block, 0)
            connected = block >= min_synapses
            pairs = block.size - (len(pops[pre]) if pre == post else 0)
            if pre == post:
                kind = "within"
            elif pre in group_names and post in group_names and group_names.index(post) == group_names.index(pre) + 1:
                kind = "feed-forward"
            elif pre == INHIBITORY:
                kind = "inhibitory"
            else:
                kind = "other"
            rows.append({
                "block": f"{pre}->{post}", "pre": pre, "post": post, "kind": kind,
                "n_pre": len(pops[pre]), "n_post": len(pops[post]),
                "connections": int(connected.sum()),
                "synapses": int(block[connected].sum()),
                "density": float(connected.sum() / pairs) if pairs else 0.0,
                "measured_connections": int(connected[measured_pre[pops[pre]]].sum()),
            })
    return pd.DataFrame(rows)


def cell_counts(column: Column, groups=None) -> pd.DataFrame:
    groups = check_groups(groups)
    rows = [{"group": g, "cell_type": t, "n": int((column.cells["cell_type"] == t).sum())}
            for g, types in groups.items() for t in types]
    return pd.DataFrame(rows)


def format_stats(column: Column, groups=None, min_synapses: int = 1) -> str:
    groups = check_groups(groups)
    meta = column.meta
    counts = meta.get("counts", {})
    lines = [f"snapshot: {column.name}",
             f"datastack {meta.get('datastack')}, materialization v{meta.get('materialization_version')}, "
             f"source {meta.get('source')}",
             f"{counts.get('cells')} cells, {counts.get('edges')} connections, {counts.get('synapses')} synapses "
             f"({counts.get('edges_measured')} connections measured, {counts.get('edges_sampled')} sampled)",
             "", "cells per group and type:"]
    cc = cell_counts(column, groups)
    for g, part in cc.groupby("group", sort=False):
        detail = ", ".join(f"{r.cell_type} {r.n}" for r in part.itertuples())
        lines.append(f"  {g}: {int(part.n.sum()):5d}  ({detail})")
    lines.append("  group sizes: " + ", ".join(str(int(cc[cc.group == g].n.sum())) for g in groups))
    n_inh = int((column.cells["ei_class"] == "I").sum())
    lines.append(f"  {INHIBITORY} (inhibitory, all types): {n_inh}")
    lines += ["", f"blocks (connection = at least {min_synapses} synapse(s); density = connections / possible pairs):",
              f"  {'block':10s} {'kind':13s} {'pre':>5s} {'post':>5s} {'connections':>11s} {'synapses':>9s} "
              f"{'density':>8s} {'measured':>8s}"]
    stats = block_stats(column, groups, min_synapses)
    order = {"feed-forward": 0, "within": 1, "inhibitory": 2}
    shown = stats[stats.kind.isin(order) & ~((stats.kind == "within") & (stats.pre == INHIBITORY))]
    shown = shown.assign(o=shown.kind.map(order)).sort_values("o", kind="stable")
    for r in shown.itertuples():
        lines.append(f"  {r.block:10s} {r.kind:13s} {r.n_pre:5d} {r.n_post:5d} {r.connections:11d} {r.synapses:9d} "
                     f"{r.density:8.4f} {r.measured_connections:8d}")
    lines += ["", "wiring_source: " + json.dumps(meta.get("wiring_source", {}), indent=2).replace("\n", "\n  ")]
    return "\n".join(lines)


def draw_heatmap(column: Column, out: str | Path, groups=None, min_synapses: int = 1) -> Path:
    """Block connection density heatmap (rows: pre population, columns: post population)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = block_stats(column, groups, min_synapses)
    names = list(dict.fromkeys(stats["pre"]))
    grid = stats.pivot(index="pre", columns="post", values="density").loc[names, names]
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    image = ax.imshow(grid.to_numpy(), cmap="viridis")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("postsynaptic population")
    ax.set_ylabel("presynaptic population")
    top = float(grid.to_numpy().max()) or 1.0
    for i in range(len(names)):
        for j in range(len(names)):
            value = grid.iat[i, j]
            ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=8,
                    color="black" if value > 0.6 * top else "white")
    fig.colorbar(image, ax=ax, label="connection density")
    measured = column.meta.get("wiring_source", {}).get("full_cell_level_connectome", False)
    ax.set_title(f"{column.meta.get('source')} v{column.meta.get('materialization_version')}"
                 + ("" if measured else " (edges partly sampled)"), fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
