"""A small random column for tests (not data: every edge is random)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bionic.connectome.celltypes import EI_CLASS
from bionic.connectome.snapshot import Column, normalize_tables, summarize_counts, validate

TOY_TYPES = {"4P": 6, "23P": 8, "5P-IT": 3, "5P-ET": 2, "5P-NP": 1, "6P-IT": 4, "6P-CT": 3, "BC": 3, "MC": 2}


def toy_frames(types: dict[str, int] | None = None, density: float = 0.3, seed: int = 0,
               max_synapses: int = 5) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(cells, edges, meta) of a random column with `types` cell counts; all marked measured."""
    rng = np.random.default_rng(seed)
    types = TOY_TYPES if types is None else types
    labels = np.repeat(list(types), list(types.values()))
    roots = 864691135000000000 + np.sort(rng.choice(10**9, size=len(labels), replace=False))
    cells = pd.DataFrame({"root_id": roots, "cell_type": labels, "ei_class": [EI_CLASS[t] for t in labels],
                          "outputs_measured": True})
    n = len(labels)
    pre, post = np.nonzero((rng.random((n, n)) < density) & ~np.eye(n, dtype=bool))
    n_syn = rng.integers(1, max_synapses + 1, size=len(pre))
    edges = pd.DataFrame({"pre_root_id": roots[pre], "post_root_id": roots[post], "n_synapses": n_syn,
                          "total_size": n_syn * rng.integers(1000, 9000, size=len(pre)), "measured": True})
    cells, edges = normalize_tables(cells, edges)
    meta = {"format": "bionic-column-snapshot", "format_version": 1, "datastack": "toy",
            "materialization_version": 0, "source": "toy", "timestamp": "n/a",
            "counts": summarize_counts(cells, edges), "measured": {"cells": True, "edges": "all"},
            "wiring_source": {"snapshot": "toy", "full_cell_level_connectome": False,
                              "measured": "nothing: random toy column", "sampled": "all (random)"}}
    return cells, edges, meta


def toy_column(types: dict[str, int] | None = None, density: float = 0.3, seed: int = 0) -> Column:
    """An in-memory, validated toy Column."""
    cells, edges, meta = toy_frames(types, density, seed)
    validate(cells, edges, meta, where="toy")
    return Column(cells=cells, edges=edges, meta=meta, path=None)
