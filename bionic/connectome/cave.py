"""The column straight from CAVE (caveclient), pinned to one materialization version.

The calls are the ones in SOURCE.md: the column cells of `allen_v1_column_types_slanted_ref`,
their proofreading status, and every synapse among them (`synapse_query(pre_ids, post_ids)`),
aggregated per (pre, post) pair. Token handling is caveclient's own: the token lives in
~/.cloudvolume/secrets/cave-secret.json (written by `client.auth.save_token`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bionic.connectome.celltypes import harmonized_cells
from bionic.connectome.snapshot import write_snapshot
from bionic.errors import BionicError

DATASTACK = "minnie65_public"
CELL_TABLE = "allen_v1_column_types_slanted_ref"
PROOFREADING_TABLE = "proofreading_status_and_strategy"
RESOLUTION_NM = [1, 1, 1]
TOKEN_HELP = ("get a token at https://global.daf-apis.com/auth/api/v1/create_token and save it with "
              "`python -c \"from caveclient import CAVEclient; CAVEclient().auth.save_token(token='YOUR_TOKEN')\"` "
              "(caveclient keeps it in ~/.cloudvolume/secrets/cave-secret.json); until then the bundled snapshot "
              "stays the default")


def make_client(datastack: str = DATASTACK, version: int | None = None):
    """A CAVEclient pinned to `version`; one clear line when there is no token or no network."""
    try:
        from caveclient import CAVEclient
        from caveclient.auth import AuthClient
    except ImportError:
        raise BionicError("caveclient is not installed; `pip install caveclient`, or keep the bundled snapshot") from None
    if not AuthClient().token:
        raise BionicError(f"no CAVE token found; {TOKEN_HELP}")
    try:
        return CAVEclient(datastack, version=version)
    except Exception as err:  # requests errors, unknown datastack or version: all end the fetch
        raise BionicError(f"could not open CAVE datastack {datastack} at version {version} ({_reason(err)}); "
                          "check the network and the version; the bundled snapshot stays the default") from None


def _reason(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:200]


def _http_status(err: Exception) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def query_column(client, version: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(cells, proofreading, synapses) frames exactly as the materialization service returns them."""
    mat = client.materialize
    cells = mat.query_table(CELL_TABLE, split_positions=True, desired_resolution=RESOLUTION_NM)
    ids = cells.query("pt_root_id != 0").pt_root_id.drop_duplicates(keep=False).to_numpy()
    proof = mat.query_table(PROOFREADING_TABLE, filter_in_dict={"pt_root_id": ids.tolist()},
                            split_positions=True, desired_resolution=RESOLUTION_NM)
    synapses = mat.synapse_query(pre_ids=ids, post_ids=ids, split_positions=True, desired_resolution=RESOLUTION_NM)
    return cells, proof, synapses


def fetch_cave(out: str | Path, version: int = 1300, datastack: str = DATASTACK, client=None) -> Path:
    """Query the column at `version` and write a snapshot to `out`. `client` lets tests pass a
    caveclient CAVEclientMock; by default a real client is made (token required)."""
    client = client if client is not None else make_client(datastack, version)
    try:
        cells_raw, proof, synapses = query_column(client, version)
        timestamp = client.materialize.get_timestamp(version)
    except BionicError:
        raise
    except Exception as err:
        status = _http_status(err)
        if status in (401, 403):
            raise BionicError(f"CAVE refused the token (HTTP {status}); {TOKEN_HELP}") from None
        raise BionicError(f"CAVE query failed at version {version} ({_reason(err)}); materializations expire, "
                          f"so check the version is still available, or keep using the bundled snapshot") from None
    return column_to_snapshot(cells_raw, proof, synapses, out, datastack=datastack, version=version,
                              timestamp=timestamp.isoformat() if hasattr(timestamp, "isoformat") else str(timestamp),
                              caveclient_version=_caveclient_version())


def _caveclient_version() -> str:
    try:
        import caveclient

        return str(caveclient.__version__)
    except Exception:
        return "unknown"


def column_to_snapshot(cells_raw: pd.DataFrame, proof: pd.DataFrame, synapses: pd.DataFrame, out: str | Path,
                       datastack: str, version: int, timestamp: str, caveclient_version: str = "") -> Path:
    """Turn the three service frames into a snapshot (harmonized types, aggregated edges)."""
    sel = cells_raw[cells_raw["pt_root_id"] != 0]
    sel = sel[~sel["pt_root_id"].duplicated(keep=False)]  # one root id, two nuclei: merged cells, unusable
    cells, n_unknown = harmonized_cells(sel, sel["classification_system"])
    strategy = proof.drop_duplicates("pt_root_id").set_index("pt_root_id")["strategy_axon"]
    cells = cells.assign(**{
        "classification_system": sel["classification_system"].to_numpy(),
        "nucleus_id": sel["id"].to_numpy(),
        "soma_x_nm": sel["pt_position_x"].to_numpy(), "soma_y_nm": sel["pt_position_y"].to_numpy(),
        "soma_z_nm": sel["pt_position_z"].to_numpy(),
        "axon_proofreading": sel["pt_root_id"].map(strategy).fillna("none").to_numpy(),
    })
    ids = cells["root_id"].to_numpy()
    inside = (synapses["pre_pt_root_id"].isin(ids) & synapses["post_pt_root_id"].isin(ids)
              & (synapses["pre_pt_root_id"] != synapses["post_pt_root_id"]))
    edges = (synapses[inside].groupby(["pre_pt_root_id", "post_pt_root_id"])
             .agg(n_synapses=("id", "size"), total_size=("size", "sum")).reset_index()
             .rename(columns={"pre_pt_root_id": "pre_root_id", "post_pt_root_id": "post_root_id"}))
    edges["measured"] = True
    meta = {
        "datastack": datastack,
        "materialization_version": int(version),
        "source": "cave",
        "timestamp": timestamp,
        "measured": {"cells": True, "edges": "all"},
        "wiring_source": {
            "snapshot": f"cave {datastack} v{version}",
            "full_cell_level_connectome": True,
            "measured": f"all: {len(cells)} cells of {CELL_TABLE} and every synapse among them "
                        f"({int(edges.n_synapses.sum())} synapses, {len(edges)} connections) at v{version}",
            "sampled": "nothing",
            "edges_measured": int(len(edges)),
            "edges_sampled": 0,
        },
        "tables": {"cells": CELL_TABLE, "proofreading": PROOFREADING_TABLE, "synapses": "synapse_query (datastack default)"},
        "harmonization": {"relabelled_unknown_types": n_unknown,
                          "dropped_cells": int(len(cells_raw) - len(sel)), "synapse_rows": int(len(synapses))},
        "caveclient": caveclient_version,
    }
    return write_snapshot(out, cells, edges, meta)
