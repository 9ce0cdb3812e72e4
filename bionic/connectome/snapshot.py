"""The column snapshot: one versioned folder on disk, loaded once and validated.

Layout of a snapshot folder (format_version 1):

    meta.json      datastack, materialization_version, source, timestamp, counts, measured,
                   wiring_source (which parts of the wiring are measured and which are sampled)
    cells.csv      one row per neuron: root_id (int64), cell_type (harmonized), ei_class (E/I/U),
                   outputs_measured (bool: this cell's outgoing edges are measured, not sampled),
                   optional extras (cell_type_raw, layer, depth_um, soma_x_nm/_y_nm/_z_nm,
                   axon_proofreading, nucleus_id, ...)
    edges.parquet  one row per connected (pre, post) pair: pre_root_id, post_root_id,
                   n_synapses (>= 1), total_size (summed synapse size, voxels), measured (bool)
                   (edges.csv with the same columns is accepted too, for hand-made snapshots)

The snapshot, not the live service, is the source of truth during training: CAVE
materializations expire, so the version is pinned in meta.json.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from bionic.column_folder import BUNDLED_DIR, snapshot_folder
from bionic.connectome.celltypes import EI_CLASS, KNOWN_TYPES
from bionic.errors import BionicError

FORMAT = "bionic-column-snapshot"
FORMAT_VERSION = 1

CELL_COLUMNS = ("root_id", "cell_type", "ei_class", "outputs_measured")
EDGE_COLUMNS = ("pre_root_id", "post_root_id", "n_synapses", "total_size", "measured")
META_KEYS = ("format", "format_version", "datastack", "materialization_version", "source",
             "timestamp", "counts", "measured", "wiring_source")


@dataclass(eq=False)  # identity hashing: a loaded column is a cache key for build_wiring
class Column:
    """A loaded column: cells and aggregated edges (pandas frames) plus its metadata.

    Treat the frames as read-only: the same object is shared by every caller in the process.
    """

    cells: pd.DataFrame
    edges: pd.DataFrame
    meta: dict
    path: Path | None = None

    @property
    def name(self) -> str:
        if self.path is None:
            where = "in memory"
        elif _same(self.path, BUNDLED_DIR):
            where = "package data"
        else:
            where = str(self.path)
        return f"{self.meta.get('source')} v{self.meta.get('materialization_version')} ({where})"


def _same(a: Path, b: Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


# ----------------------------------------------------------------------------- validation
def _fail(where: str, what: str, todo: str = "rebuild or re-fetch the snapshot") -> BionicError:
    return BionicError(f"snapshot {where}: {what}; {todo}")


def validate(cells: pd.DataFrame, edges: pd.DataFrame, meta: dict | None = None, where: str = "<memory>") -> None:
    """Raise BionicError (one line) when the snapshot is inconsistent."""
    missing = [c for c in CELL_COLUMNS if c not in cells.columns]
    if missing:
        raise _fail(where, f"cells table lacks column(s) {', '.join(missing)} (has {', '.join(map(str, cells.columns))})")
    missing = [c for c in EDGE_COLUMNS if c not in edges.columns]
    if missing:
        raise _fail(where, f"edges table lacks column(s) {', '.join(missing)} (has {', '.join(map(str, edges.columns))})")
    if cells["root_id"].isna().any() or not pd.api.types.is_integer_dtype(cells["root_id"]):
        raise _fail(where, "cells.root_id must be integer root ids without blanks")
    dup = cells["root_id"][cells["root_id"].duplicated()]
    if len(dup):
        raise _fail(where, f"{dup.nunique()} root_id value(s) appear more than once in cells (e.g. {int(dup.iloc[0])})")
    unknown = sorted(set(cells["cell_type"].astype(str)) - set(KNOWN_TYPES))
    if unknown:
        raise _fail(where, f"unknown cell type(s) {', '.join(unknown)}; known: {', '.join(KNOWN_TYPES)}",
                    "harmonize the labels (see bionic.connectome.celltypes) and rebuild the snapshot")
    wrong_ei = cells["ei_class"].astype(str) != cells["cell_type"].map(EI_CLASS)
    if wrong_ei.any():
        row = cells[wrong_ei].iloc[0]
        raise _fail(where, f"{int(wrong_ei.sum())} cell(s) have an ei_class that disagrees with their type "
                           f"(e.g. {int(row.root_id)}: {row.cell_type} marked {row.ei_class})")
    for col in ("pre_root_id", "post_root_id", "n_synapses", "total_size"):
        if edges[col].isna().any() or not pd.api.types.is_integer_dtype(edges[col]):
            raise _fail(where, f"edges.{col} must be integers without blanks")
    if len(edges) and int(edges["n_synapses"].min()) < 1:
        raise _fail(where, "edges.n_synapses must be >= 1 (absent pairs are simply not listed)")
    known = pd.Index(cells["root_id"])
    for col in ("pre_root_id", "post_root_id"):
        stray = ~edges[col].isin(known)
        if stray.any():
            raise _fail(where, f"{int(stray.sum())} edge(s) refer to {col} not in the cells table "
                               f"(e.g. {int(edges[col][stray].iloc[0])})")
    if (edges["pre_root_id"] == edges["post_root_id"]).any():
        raise _fail(where, "edges contain autapses (pre == post); drop them when aggregating")
    if edges.duplicated(["pre_root_id", "post_root_id"]).any():
        raise _fail(where, "edges list a (pre, post) pair more than once; aggregate synapses per pair")
    by_pre = edges["pre_root_id"].map(cells.set_index("root_id")["outputs_measured"])
    if (edges["measured"].astype(bool) != by_pre.astype(bool)).any():
        raise _fail(where, "an edge's measured flag differs from its pre cell's outputs_measured flag")
    if meta is not None:
        missing = [k for k in META_KEYS if k not in meta]
        if missing:
            raise _fail(where, f"meta.json lacks key(s) {', '.join(missing)}")
        if meta["format"] != FORMAT or int(meta["format_version"]) != FORMAT_VERSION:
            raise _fail(where, f"meta.json says format {meta['format']} v{meta['format_version']}, "
                               f"expected {FORMAT} v{FORMAT_VERSION}")
        counts = meta["counts"]
        got = {"cells": len(cells), "edges": len(edges), "synapses": int(edges["n_synapses"].sum())}
        for key, value in got.items():
            if int(counts.get(key, -1)) != value:
                raise _fail(where, f"meta.json counts {key}={counts.get(key)} but the tables hold {value} "
                                   "(truncated or edited files?)")


# ----------------------------------------------------------------------------- write
def summarize_counts(cells: pd.DataFrame, edges: pd.DataFrame) -> dict:
    measured = edges["measured"].astype(bool)
    return {
        "cells": int(len(cells)),
        "edges": int(len(edges)),
        "synapses": int(edges["n_synapses"].sum()),
        "edges_measured": int(measured.sum()),
        "edges_sampled": int((~measured).sum()),
        "synapses_measured": int(edges.loc[measured, "n_synapses"].sum()),
        "synapses_sampled": int(edges.loc[~measured, "n_synapses"].sum()),
        "cells_per_type": {t: int(n) for t, n in cells["cell_type"].value_counts().reindex(KNOWN_TYPES).dropna().items()},
    }


def normalize_tables(cells: pd.DataFrame, edges: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical dtypes and column order (required columns first), edges sorted by (pre, post)."""
    cells = cells.copy()
    cells["root_id"] = cells["root_id"].astype("int64")
    cells["cell_type"] = cells["cell_type"].astype(str)
    cells["ei_class"] = cells["ei_class"].astype(str)
    cells["outputs_measured"] = cells["outputs_measured"].astype(bool)
    cells = cells[list(CELL_COLUMNS) + [c for c in cells.columns if c not in CELL_COLUMNS]]
    edges = edges.copy()
    for col in ("pre_root_id", "post_root_id", "total_size"):
        edges[col] = edges[col].astype("int64")
    edges["n_synapses"] = edges["n_synapses"].astype("int32")
    edges["measured"] = edges["measured"].astype(bool)
    edges = edges[list(EDGE_COLUMNS)].sort_values(["pre_root_id", "post_root_id"], kind="stable")
    return cells.reset_index(drop=True), edges.reset_index(drop=True)


def write_snapshot(out: str | os.PathLike, cells: pd.DataFrame, edges: pd.DataFrame, meta: dict) -> Path:
    """Validate and write a snapshot folder; fills format, counts and created. Returns the folder."""
    out = Path(out)
    cells, edges = normalize_tables(cells, edges)
    meta = dict(meta)
    meta.update(format=FORMAT, format_version=FORMAT_VERSION, counts=summarize_counts(cells, edges))
    meta.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    meta.setdefault("timestamp", meta["created"])
    validate(cells, edges, meta, where=str(out))
    out.mkdir(parents=True, exist_ok=True)
    cells.to_csv(out / "cells.csv", index=False)
    # zstd parquet with dictionary-encoded root ids keeps ~80k edges well under 1 MB.
    edges.to_parquet(out / "edges.parquet", index=False, compression="zstd")
    if (out / "edges.csv").exists():
        (out / "edges.csv").unlink()  # one edges table per snapshot, never two that disagree
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")
    _CACHE.pop(str(out.resolve()), None)
    return out


# ----------------------------------------------------------------------------- load
_CACHE: dict[str, tuple[tuple, Column]] = {}


def _stamp(folder: Path) -> tuple:
    return tuple(p.stat().st_mtime_ns if p.exists() else 0
                 for p in (folder / "meta.json", folder / "cells.csv", folder / "edges.parquet", folder / "edges.csv"))


def load_column(snapshot: str | os.PathLike | None = None) -> Column:
    """Load (and validate) a column snapshot; None -> the bundled v1300 snapshot.

    Cached per process: the same folder, unchanged on disk, gives the same Column object.
    """
    folder = snapshot_folder(snapshot)
    if not folder.is_dir():
        what = "is a file, not a snapshot folder" if folder.exists() else "does not exist"
        raise BionicError(f"snapshot folder {folder} {what}; give a folder written by "
                          "`python -m bionic connectome fetch ... --out DIR` (`connectome stats --snapshot DIR`, "
                          "`fit --model.net.init_args.snapshot DIR`), or leave it unset for the bundled column")
    key = str(folder.resolve())
    stamp = _stamp(folder)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    column = _load_uncached(folder)
    _CACHE[key] = (stamp, column)
    return column


def _load_uncached(folder: Path) -> Column:
    where = str(folder)
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        raise _fail(where, "meta.json is missing (not a snapshot folder?)")
    text = _read(where, meta_path, lambda p: p.read_text(encoding="utf-8"))
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as err:
        raise _fail(where, f"meta.json is not valid JSON ({err.msg} at line {err.lineno})", _UNREADABLE) from None
    if not isinstance(meta, dict):
        raise _fail(where, f"meta.json holds a JSON {type(meta).__name__}, not an object of snapshot facts",
                    _UNREADABLE)
    if not (folder / "cells.csv").exists():
        raise _fail(where, "cells.csv is missing")
    cells = _read(where, folder / "cells.csv", lambda p: pd.read_csv(
        p, encoding="utf-8", dtype={"root_id": "Int64", "cell_type": str, "ei_class": str}))
    if "root_id" in cells and not cells["root_id"].isna().any():
        cells["root_id"] = cells["root_id"].astype("int64")
    if "outputs_measured" in cells:
        cells["outputs_measured"] = _as_bool(cells["outputs_measured"], where, "cells.outputs_measured")
    if (folder / "edges.parquet").exists():
        edges = _read(where, folder / "edges.parquet", pd.read_parquet, "not a Parquet file, or a truncated one")
    elif (folder / "edges.csv").exists():
        edges = _read(where, folder / "edges.csv", lambda p: pd.read_csv(p, encoding="utf-8"))
    else:
        raise _fail(where, "edges.parquet (or edges.csv) is missing")
    if "measured" in edges:
        edges["measured"] = _as_bool(edges["measured"], where, "edges.measured")
    validate(cells, edges, meta, where=where)
    return Column(cells=cells, edges=edges, meta=meta, path=folder)


_UNREADABLE = ("re-fetch the snapshot (`python -m bionic connectome fetch ... --out DIR`) or point to another "
               "snapshot folder (`connectome stats --snapshot DIR`, `fit --model.net.init_args.snapshot DIR`; "
               "unset = the bundled column)")


def _read(where: str, path: Path, read, damaged: str | None = None):
    """read(path), or one line naming the file when it cannot be parsed. damaged: the reason to
    give instead of the parser's message (pyarrow's are long and name a '<Buffer>')."""
    try:
        return read(path)
    # Anything the parsers raise on a damaged file (pyarrow's and pandas' errors are mostly, not
    # all, ValueErrors) means the same to the user: this file is unreadable.
    except Exception as err:  # noqa: BLE001
        if path.stat().st_size == 0:
            reason = "the file is empty"
        elif isinstance(err, UnicodeDecodeError):
            reason = "it is not UTF-8 text: binary, compressed or another encoding"
        else:
            reason = damaged or " ".join(str(err).split())[:160] or type(err).__name__
        raise _fail(where, f"{path.name} cannot be read ({reason})", _UNREADABLE) from None


def _as_bool(series: pd.Series, where: str, name: str) -> pd.Series:
    if series.dtype == bool:
        return series
    text = series.astype(str).str.strip().str.lower()
    ok = text.isin(["true", "false", "1", "0"])
    if not ok.all():
        raise _fail(where, f"{name} must be true/false (found {series[~ok].iloc[0]!r})")
    return text.isin(["true", "1"])


def cell_index(column: Column) -> pd.Series:
    """root_id -> row position in column.cells."""
    return pd.Series(np.arange(len(column.cells)), index=column.cells["root_id"].to_numpy())
