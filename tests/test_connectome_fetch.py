"""Getting the column: CAVE through caveclient's own mock, the public Allen release through a
local stand-in, and the one-line errors of the fetch command."""

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import responses
from caveclient.tools.testing import CAVEclientMock, default_info

from bionic.connectome import build_wiring, load_column
from bionic.connectome import allen as allen_release
from bionic.connectome.cave import CELL_TABLE, PROOFREADING_TABLE, fetch_cave
from bionic.connectome.cli import main
from bionic.connectome.download import RemoteFile
from bionic.errors import BionicError

REPO = Path(__file__).resolve().parents[1]
SOURCE_MD = next((p for p in (REPO / "shared" / "data" / "microns_column" / "SOURCE.md",
                              REPO.parent / "shared" / "data" / "microns_column" / "SOURCE.md") if p.exists()), None)

DATASTACK = "minnie65_public"
VERSION = 1300
SYNAPSE_TABLE = "synapses_pni_2"
ROOT0 = 864691135000000000


# ----------------------------------------------------------------------------- CAVE service stand-in
def service_frames():
    """Frames with exactly the columns the materialization service returns (SOURCE.md)."""
    rng = np.random.default_rng(7)
    raw_types = ["4P", "4P", "23P", "23P", "23P", "5P-PT", "5P-IT", "5P-NP", "6P-IT", "WM-P", "6P-U",
                 "BC", "MC", "Unsure I", "23P", "4P"]
    classes = ["aibs_coarse_inhibitory" if t in ("BC", "MC", "Unsure I") else "aibs_coarse_excitatory" for t in raw_types]
    roots = ROOT0 + np.arange(len(raw_types)) * 7919
    roots[-2] = 0              # no segment: dropped
    roots[-1] = roots[0]       # two nuclei share a root id: both dropped
    n = len(raw_types)
    cells = pd.DataFrame({
        "id": 250_000 + np.arange(n), "pt_root_id": roots,
        "pt_position_x": rng.integers(700_000, 760_000, n) * 1.0, "pt_position_y": rng.integers(300_000, 1_000_000, n) * 1.0,
        "pt_position_z": rng.integers(800_000, 900_000, n) * 1.0,
        "classification_system": classes, "cell_type": raw_types,
    })
    proof = pd.DataFrame({
        "id": np.arange(n), "pt_root_id": roots, "valid_id": roots,
        "status_axon": "t", "status_dendrite": "t",
        "strategy_axon": ["axon_fully_extended", "axon_partially_extended", "none"] * 5 + ["none"],
        "strategy_dendrite": "dendrite_extended",
    })
    outside = ROOT0 + 10**8  # a target outside the column: the query filters it out
    m = 400
    pool = np.concatenate([roots[1:-2], [outside]])
    pre = rng.choice(pool, m)
    post = rng.choice(pool, m)
    post[:5] = pre[:5]  # autapses: synapse_query removes them
    syn = pd.DataFrame({"id": 10**8 + np.arange(m), "size": rng.integers(100, 30_000, m),
                        "pre_pt_supervoxel_id": rng.integers(10**16, 10**17, m), "pre_pt_root_id": pre,
                        "post_pt_supervoxel_id": rng.integers(10**16, 10**17, m), "post_pt_root_id": post})
    for side in ("pre", "post", "ctr"):
        for axis in "xyz":
            syn[f"{side}_pt_position_{axis}"] = rng.integers(0, 10**6, m) * 1.0
    return cells, proof, syn


def _arrow(df):
    sink = pa.BufferOutputStream()
    table = pa.Table.from_pandas(df, preserve_index=False)
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


class FakeMaterialization:
    """Serves the materialization endpoints the real client calls, as HTTP responses."""

    def __init__(self, frames, fail_status=None):
        self.cells, self.proof, self.syn = frames
        self.fail_status = fail_status
        self.bodies = {}

    def metadata(self, request):
        table = request.url.split("/table/")[1].split("/")[0]
        body = {"table_name": table, "schema": "x", "voxel_resolution_x": 4.0, "voxel_resolution_y": 4.0,
                "voxel_resolution_z": 40.0, "reference_table": "nucleus_detection_v0" if table == CELL_TABLE else None}
        return 200, {}, json.dumps(body)

    def query(self, request):
        if self.fail_status:
            return self.fail_status, {}, json.dumps({"message": "denied"})
        data = json.loads(request.body)
        table = data["tables"][0][0] if "tables" in data else request.url.split("/table/")[1].split("/")[0]
        self.bodies[table] = data
        frame = {CELL_TABLE: self.cells, PROOFREADING_TABLE: self.proof, SYNAPSE_TABLE: self.syn}[table]
        for column, values in (data.get("filter_in_dict") or {}).get(table, {}).items():
            frame = frame[frame[column].isin(values)]
        return 200, {"Content-Type": "data.arrow", "dataframe_resolution": "1.0, 1.0, 1.0"}, _arrow(frame)

    def register(self, rsps, server):
        api = f"{server}/materialize/api/v3/datastack/{DATASTACK}"
        rsps.add(responses.GET, f"{api}/version/{VERSION}",
                 json={"time_stamp": "2025-01-13T10:10:01.203215", "expires_on": "2080-06-05T10:10:01.203215",
                       "version": VERSION, "valid": True})
        rsps.add_callback(responses.GET, re.compile(re.escape(api) + r"/version/\d+/table/[^/]+/metadata"), self.metadata)
        rsps.add_callback(responses.POST, re.compile(re.escape(api) + r"/version/\d+/(table/[^/]+/)?query"), self.query)


@pytest.fixture()
def cave_client():
    info = default_info()
    info["synapse_table"] = SYNAPSE_TABLE
    return CAVEclientMock(datastack_name=DATASTACK, materialization=True, info_file=info,
                          available_materialization_versions=[VERSION], set_version=VERSION)


def test_cave_fetch_end_to_end_with_caveclient_mock(tmp_path, cave_client):
    frames = service_frames()
    service = FakeMaterialization(frames)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        service.register(rsps, cave_client.materialize._server_address)
        out = fetch_cave(tmp_path / "cave", version=VERSION, client=cave_client)
    column = load_column(out)
    cells, proof, syn = frames
    good = cells[(cells.pt_root_id != 0) & ~cells.pt_root_id.duplicated(keep=False)]
    assert column.cells.root_id.tolist() == good.pt_root_id.tolist()
    assert column.cells.cell_type.tolist() == ["4P", "23P", "23P", "23P", "5P-ET", "5P-IT", "5P-NP", "6P-IT",
                                               "6P-CT", "6P-IT", "BC", "MC", "Unsure-I"]
    assert column.cells.nucleus_id.tolist() == good.id.tolist()
    # the client sent the column's ids to the synapse table, and the edges aggregate what came back
    assert "tables" in service.bodies[CELL_TABLE]  # reference table joined to nucleus_detection_v0, as live
    sent = service.bodies[SYNAPSE_TABLE]["filter_in_dict"][SYNAPSE_TABLE]
    assert sorted(sent["pre_pt_root_id"]) == sorted(good.pt_root_id.tolist()) == sorted(sent["post_pt_root_id"])
    inside = syn[syn.pre_pt_root_id.isin(good.pt_root_id) & syn.post_pt_root_id.isin(good.pt_root_id)
                 & (syn.pre_pt_root_id != syn.post_pt_root_id)]
    want = inside.groupby(["pre_pt_root_id", "post_pt_root_id"]).agg(n=("id", "size"), s=("size", "sum")).reset_index()
    got = column.edges.sort_values(["pre_root_id", "post_root_id"])
    assert got.n_synapses.tolist() == want.n.tolist() and got.total_size.tolist() == want.s.tolist()
    assert got.measured.all() and int(got.n_synapses.sum()) == len(inside)
    meta = column.meta
    assert meta["source"] == "cave" and meta["materialization_version"] == VERSION
    assert meta["timestamp"].startswith("2025-01-13T10:10:01")
    assert meta["wiring_source"]["full_cell_level_connectome"] is True
    strategy = dict(zip(proof.pt_root_id, proof.strategy_axon))
    assert column.cells.axon_proofreading.tolist() == [strategy[r] for r in good.pt_root_id]
    wiring = build_wiring(column, groups={"L4": ["4P"], "L23": ["23P"], "L5": ["5P-IT", "5P-ET", "5P-NP"]})
    assert wiring.sizes == [1, 3, 3] and wiring.wiring_source["version"] == VERSION


def test_cave_refused_token_is_one_line(tmp_path, cave_client):
    service = FakeMaterialization(service_frames(), fail_status=401)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        service.register(rsps, cave_client.materialize._server_address)
        with pytest.raises(BionicError) as err:
            fetch_cave(tmp_path / "cave", version=VERSION, client=cave_client)
    assert "HTTP 401" in str(err.value) and "save_token" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "cave" / "meta.json").exists()


def test_cave_without_token_says_how_to_set_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))  # caveclient looks in ~/.cloudvolume/secrets
    code = main(["fetch", "--source", "cave", "--version", "1300", "--out", str(tmp_path / "snap")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "no CAVE token" in err and "save_token" in err and "bundled snapshot stays the default" in err


def test_cave_without_network_is_one_line(tmp_path, monkeypatch, capsys):
    import caveclient
    import requests

    secrets = tmp_path / ".cloudvolume" / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "cave-secret.json").write_text(json.dumps({"token": "abc"}))
    monkeypatch.setenv("HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise requests.exceptions.ConnectionError("Failed to establish a new connection: no route to host")

    monkeypatch.setattr(caveclient, "CAVEclient", offline)
    code = main(["fetch", "--source", "cave", "--out", str(tmp_path / "snap")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "could not open CAVE datastack minnie65_public at version 1300" in err and "bundled snapshot" in err


# ----------------------------------------------------------------------------- Allen release stand-in
def release_frames():
    """Stand-in files with the release's real columns (v1718_cell_info.csv, *_synapses.feather)."""
    rng = np.random.default_rng(11)
    types = ["4P", "4P", "23P", "23P", "5P-PT", "5P-IT", "6P-IT", "6P-CT", "BC", "MC", None, "23P", "4P"]
    n = len(types)
    roots = ROOT0 + 10**7 + np.arange(n) * 104729
    cells = pd.DataFrame({
        "id": 300_000 + np.arange(n), "pt_root_id": roots,
        "pt_position_x": rng.integers(170_000, 190_000, n), "pt_position_y": rng.integers(80_000, 240_000, n),
        "pt_position_z": rng.integers(20_000, 22_000, n),
        "pt_position_x_tform": rng.random(n), "pt_position_y_tform": rng.random(n), "pt_position_z_tform": rng.random(n),
        "cell_type": types,
        "broad_type": ["inhibitory" if t in ("BC", "MC") else "excitatory" for t in types],
        "is_column": [True] * (n - 2) + [False, True],
        "status_axon": [True] * (n - 1) + [False],
        "status_dendrite": True,
        "strategy_axon": "axon_fully_extended", "strategy_dendrite": "dendrite_extended", "coreg": False,
    })
    m = 300
    pre = rng.choice(roots, m)
    post = rng.choice(roots, m)
    syn = pd.DataFrame({"syn_id": 2 * 10**8 + np.arange(m), "size": rng.integers(100, 30_000, m),
                        "pre_pt_root_id": pre, "post_pt_root_id": post,
                        "ctr_pt_position": [rng.integers(0, 10**5, 3) for _ in range(m)], "tag": "column"})
    return cells, syn


def _stand_in(tmp_path):
    cells, syn = release_frames()
    src = tmp_path / "remote"
    src.mkdir()
    cells.to_csv(src / "v1718_cell_info.csv", index=False)
    syn.to_feather(src / "v1718_v1_column_synapses.feather")
    remote = {}
    for name in ("v1718_cell_info.csv", "v1718_v1_column_synapses.feather"):
        digest = hashlib.sha256((src / name).read_bytes()).hexdigest()
        remote[name] = RemoteFile(name, (src / name).as_uri(), digest, (src / name).stat().st_size)
    return cells, syn, remote


def test_allen_release_fetch_with_local_stand_in(tmp_path, capsys):
    cells, syn, remote = _stand_in(tmp_path)
    out = allen_release.fetch_allen(tmp_path / "allen", cache=tmp_path / "cache",
                                    synapses=remote["v1718_v1_column_synapses.feather"],
                                    cell_info=remote["v1718_cell_info.csv"])
    assert "downloading v1718_cell_info.csv" in capsys.readouterr().err
    column = load_column(out)
    kept = cells.iloc[:-2]  # not in the column / axon not proofread
    assert column.cells.root_id.tolist() == kept.pt_root_id.tolist()
    assert column.cells.cell_type.tolist() == ["4P", "4P", "23P", "23P", "5P-ET", "5P-IT", "6P-IT", "6P-CT",
                                               "BC", "MC", "Unsure-E"]
    assert column.cells.soma_z_nm.tolist() == (kept.pt_position_z * 40).tolist()
    ids = set(kept.pt_root_id)
    inside = syn[syn.pre_pt_root_id.isin(ids) & syn.post_pt_root_id.isin(ids) & (syn.pre_pt_root_id != syn.post_pt_root_id)]
    assert int(column.edges.n_synapses.sum()) == len(inside)
    assert int(column.edges.total_size.sum()) == int(inside["size"].sum())
    assert len(column.edges) == len(inside.groupby(["pre_pt_root_id", "post_pt_root_id"]))
    assert column.meta["source"] == "allen-v1718" and column.meta["materialization_version"] == 1718
    assert column.meta["harmonization"]["relabelled_unknown_types"] == 1

    # second fetch: served from the cache, even with the "remote" gone
    for f in (tmp_path / "remote").iterdir():
        f.unlink()
    allen_release.fetch_allen(tmp_path / "allen2", cache=tmp_path / "cache",
                              synapses=remote["v1718_v1_column_synapses.feather"],
                              cell_info=remote["v1718_cell_info.csv"])
    assert "cached at" in capsys.readouterr().err
    assert load_column(tmp_path / "allen2").edges.equals(column.edges)


def test_allen_checksum_mismatch_is_refused(tmp_path):
    _, _, remote = _stand_in(tmp_path)
    good = remote["v1718_cell_info.csv"]
    bad = RemoteFile(good.name, good.url, "0" * 64, good.size)
    with pytest.raises(BionicError) as err:
        allen_release.fetch_allen(tmp_path / "allen", cache=tmp_path / "cache",
                                  synapses=remote["v1718_v1_column_synapses.feather"], cell_info=bad)
    assert "checksum mismatch for v1718_cell_info.csv" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "cache" / good.name).exists()
    assert not list((tmp_path / "cache").glob("*.partial"))
    assert not (tmp_path / "allen").exists()


def test_allen_unreachable_download_is_one_line(tmp_path):
    missing = RemoteFile("v1718_cell_info.csv", (tmp_path / "absent.csv").as_uri(), "0" * 64)
    with pytest.raises(BionicError, match="could not download") as err:
        allen_release.fetch_allen(tmp_path / "allen", cache=tmp_path / "cache", synapses=missing, cell_info=missing)
    assert "\n" not in str(err.value)


def test_allen_release_files_are_pinned_as_in_source_md():
    for remote in (allen_release.SYNAPSES, allen_release.CELL_INFO):
        assert remote.url == ("https://raw.githubusercontent.com/AllenInstitute/connectomics_at_cosyne/"
                              f"513a6fe738f91ce179650f1cadf26d4a4728b21a/docs/resources/data/{remote.name}")
    if SOURCE_MD is None:
        pytest.skip("SOURCE.md is not beside the repo")
    text = SOURCE_MD.read_text()
    for remote in (allen_release.SYNAPSES, allen_release.CELL_INFO):
        match = re.search(re.escape(remote.name) + r"`\s*\(([\d,]+) bytes;.*?SHA-256\s+([0-9a-f]{64})", text, re.S)
        assert match, remote.name
        assert int(match.group(1).replace(",", "")) == remote.size and match.group(2) == remote.sha256


def test_allen_rejects_another_version(capsys, tmp_path):
    assert main(["fetch", "--source", "allen-v1718", "--version", "1300", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "materialization 1718" in err
