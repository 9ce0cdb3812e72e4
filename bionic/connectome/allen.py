"""The public Allen release of the column (materialization v1718), no token needed.

AllenInstitute/connectomics_at_cosyne publishes the column's synapse list and cell table next
to its data-access notebook; files are pinned to one commit and checked by SHA-256 (SOURCE.md).
Selection follows the published totals: column cells with proofread axon and dendrite
(`is_column & status_axon & status_dendrite`: 1,348 cells, 145,598 synapses, 78,301 connections).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bionic.connectome.celltypes import harmonized_cells
from bionic.connectome.download import RemoteFile, cache_dir, fetch
from bionic.connectome.snapshot import write_snapshot
from bionic.errors import BionicError

REPO = "AllenInstitute/connectomics_at_cosyne"
COMMIT = "513a6fe738f91ce179650f1cadf26d4a4728b21a"
BASE_URL = f"https://raw.githubusercontent.com/{REPO}/{COMMIT}/docs/resources/data/"
VERSION = 1718
SYNAPSES = RemoteFile("v1718_v1_column_synapses.feather", BASE_URL + "v1718_v1_column_synapses.feather",
                      "fee7afc8c37528e3e1c1a4365f016f74c8ff42b6dad0f06100ef32d38adb0434", 5_336_978)
CELL_INFO = RemoteFile("v1718_cell_info.csv", BASE_URL + "v1718_cell_info.csv",
                       "1959b7b7eaad7501c6331551c3ed1e229b40ed3c339ff6273b6365009e33fb09", 19_202_665)

SYNAPSE_COLUMNS = ("syn_id", "size", "pre_pt_root_id", "post_pt_root_id")
CELL_COLUMNS = ("pt_root_id", "cell_type", "is_column", "status_axon", "status_dendrite")
VOXEL_NM = (4, 4, 40)  # the release stores positions in voxels


def fetch_allen(out: str | Path, cache: str | Path | None = None, synapses: RemoteFile = SYNAPSES,
                cell_info: RemoteFile = CELL_INFO, progress: bool = True) -> Path:
    """Download (cached, verified) the release files and write a snapshot to `out`."""
    folder = Path(cache) if cache is not None else cache_dir() / "allen-v1718"
    syn_path = fetch(synapses, folder, progress)
    cell_path = fetch(cell_info, folder, progress)
    return release_to_snapshot(cell_path, syn_path, out,
                               provenance={"repository": REPO, "commit": COMMIT,
                                           "files": {synapses.name: synapses.sha256, cell_info.name: cell_info.sha256}})


def _flag(series: pd.Series) -> pd.Series:
    if series.dtype == bool:
        return series
    return series.astype(str).str.strip().str.lower().isin(["true", "1", "t", "yes"])


def release_to_snapshot(cell_info_csv: str | Path, synapses_feather: str | Path, out: str | Path,
                        provenance: dict | None = None) -> Path:
    raw = pd.read_csv(cell_info_csv, low_memory=False)
    missing = [c for c in CELL_COLUMNS if c not in raw.columns]
    if missing:
        raise BionicError(f"{cell_info_csv}: missing column(s) {', '.join(missing)}; is it v1718_cell_info.csv?")
    keep = _flag(raw["is_column"]) & _flag(raw["status_axon"]) & _flag(raw["status_dendrite"]) & (raw["pt_root_id"] != 0)
    sel = raw[keep]
    sel = sel[~sel["pt_root_id"].duplicated(keep=False)]  # a root id shared by two nuclei is ambiguous
    ei_source = sel["broad_type"] if "broad_type" in sel else pd.Series("", index=sel.index)
    cells, n_unknown = harmonized_cells(sel, ei_source)
    for extra, name in (("broad_type", "broad_type"), ("id", "nucleus_id"), ("strategy_axon", "axon_proofreading")):
        if extra in sel:
            cells[name] = sel[extra].to_numpy()
    for axis, scale in zip("xyz", VOXEL_NM):
        if f"pt_position_{axis}" in sel:
            cells[f"soma_{axis}_nm"] = sel[f"pt_position_{axis}"].to_numpy() * scale

    syn = pd.read_feather(synapses_feather)
    missing = [c for c in SYNAPSE_COLUMNS if c not in syn.columns]
    if missing:
        raise BionicError(f"{synapses_feather}: missing column(s) {', '.join(missing)}; "
                          "is it v1718_v1_column_synapses.feather?")
    ids = cells["root_id"].to_numpy()
    inside = syn["pre_pt_root_id"].isin(ids) & syn["post_pt_root_id"].isin(ids) & (syn["pre_pt_root_id"] != syn["post_pt_root_id"])
    edges = (syn[inside].groupby(["pre_pt_root_id", "post_pt_root_id"])
             .agg(n_synapses=("syn_id", "size"), total_size=("size", "sum")).reset_index()
             .rename(columns={"pre_pt_root_id": "pre_root_id", "post_pt_root_id": "post_root_id"}))
    edges["measured"] = True
    meta = {
        "datastack": "minnie65_public",
        "materialization_version": VERSION,
        "source": "allen-v1718",
        "timestamp": f"materialization v{VERSION} (public release {REPO}@{COMMIT[:7]})",
        "measured": {"cells": True, "edges": "all"},
        "wiring_source": {
            "snapshot": f"allen-v1718 ({REPO}@{COMMIT[:7]})",
            "full_cell_level_connectome": True,
            "measured": f"all: {len(cells)} column cells with proofread axon and dendrite and every synapse among "
                        f"them ({int(edges.n_synapses.sum())} synapses, {len(edges)} connections) at v{VERSION}",
            "sampled": "nothing",
            "edges_measured": int(len(edges)),
            "edges_sampled": 0,
        },
        "selection": "is_column & status_axon & status_dendrite, pt_root_id != 0, unique root ids",
        "harmonization": {"relabelled_unknown_types": n_unknown,
                          "synapse_rows": int(len(syn)), "synapse_rows_kept": int(inside.sum())},
        "provenance": provenance or {},
    }
    return write_snapshot(out, cells, edges, meta)

