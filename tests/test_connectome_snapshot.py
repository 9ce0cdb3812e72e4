"""Snapshot format, validation, and the bundled v1300 snapshot against the real shared data."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bionic.connectome import BUNDLED_DIR, build_wiring, load_column, write_snapshot
from bionic.connectome.bundled import MEASURED_TYPES, build_bundled
from bionic.errors import BionicError
from helpers.toy import toy_frames

REPO = Path(__file__).resolve().parents[1]
SHARED = next((p for p in (REPO / "shared" / "data" / "microns_column",
                           REPO.parent / "shared" / "data" / "microns_column") if p.is_dir()), None)
needs_shared = pytest.mark.skipif(SHARED is None, reason="shared/data/microns_column is not beside the repo")


@pytest.fixture()
def toy_dir(tmp_path):
    cells, edges, meta = toy_frames(seed=3)
    return write_snapshot(tmp_path / "toy", cells, edges, meta)


# ----------------------------------------------------------------------------- format
def test_write_then_load_round_trips(toy_dir):
    cells, edges, _ = toy_frames(seed=3)
    column = load_column(toy_dir)
    assert sorted(p.name for p in toy_dir.iterdir()) == ["cells.csv", "edges.parquet", "meta.json"]
    pd.testing.assert_frame_equal(column.cells[cells.columns.tolist()], cells, check_dtype=False)
    pd.testing.assert_frame_equal(column.edges.reset_index(drop=True), edges.reset_index(drop=True), check_dtype=False)
    meta = column.meta
    for key in ("datastack", "materialization_version", "source", "timestamp", "counts", "measured", "wiring_source"):
        assert key in meta
    assert meta["counts"]["synapses"] == int(edges.n_synapses.sum())


def test_load_is_cached_and_refreshed_on_rewrite(toy_dir):
    first = load_column(toy_dir)
    assert load_column(str(toy_dir)) is first
    cells, edges, meta = toy_frames(seed=4)
    write_snapshot(toy_dir, cells, edges, meta)
    again = load_column(toy_dir)
    assert again is not first and len(again.edges) == len(edges)


def test_hand_made_snapshot_with_edges_csv_loads(toy_dir):
    edges = pd.read_parquet(toy_dir / "edges.parquet")
    (toy_dir / "edges.parquet").unlink()
    edges.to_csv(toy_dir / "edges.csv", index=False)
    assert len(load_column(toy_dir).edges) == len(edges)


def _break(toy_dir, cells=None, edges=None, meta=None):
    c = pd.read_csv(toy_dir / "cells.csv")
    e = pd.read_parquet(toy_dir / "edges.parquet")
    m = json.loads((toy_dir / "meta.json").read_text())
    c, e = (cells(c) if cells else c), (edges(e) if edges else e)
    if meta:
        meta(m)
    c.to_csv(toy_dir / "cells.csv", index=False)
    e.to_parquet(toy_dir / "edges.parquet", index=False)
    (toy_dir / "meta.json").write_text(json.dumps(m))


def _dup_cell(c):
    return pd.concat([c, c.iloc[[0]]], ignore_index=True)


def _retype(c):
    c.loc[0, "cell_type"] = "L2a"
    return c


def _stray_edge(e):
    e.loc[0, "post_root_id"] = 12345
    return e


def _autapse(e):
    e.loc[0, "post_root_id"] = e.loc[0, "pre_root_id"]
    return e


def _dup_edge(e):
    return pd.concat([e, e.iloc[[0]]], ignore_index=True)


def _zero_syn(e):
    e.loc[0, "n_synapses"] = 0
    return e


def _drop_measured(e):
    return e.drop(columns=["measured"])


def _wrong_ei(c):
    c.loc[c.cell_type == "BC", "ei_class"] = "E"
    return c


def _bad_count(m):
    m["counts"]["edges"] += 1


@pytest.mark.parametrize("cells, edges, meta, phrase", [
    (_dup_cell, None, lambda m: m["counts"].update(cells=m["counts"]["cells"] + 1), "more than once"),
    (_retype, None, None, "unknown cell type(s) L2a"),
    (None, _stray_edge, None, "not in the cells table"),
    (None, _autapse, None, "autapses"),
    (None, _dup_edge, lambda m: m["counts"].update(edges=m["counts"]["edges"] + 1), "more than once"),
    (None, _zero_syn, None, "n_synapses must be >= 1"),
    (None, _drop_measured, None, "lacks column(s) measured"),
    (_wrong_ei, None, None, "ei_class that disagrees"),
    (None, None, _bad_count, "counts edges="),
])
def test_invalid_snapshot_is_one_clear_line(toy_dir, cells, edges, meta, phrase):
    _break(toy_dir, cells, edges, meta)
    with pytest.raises(BionicError) as err:
        load_column(toy_dir)
    message = str(err.value)
    assert phrase in message and "\n" not in message and str(toy_dir) in message


def test_missing_or_broken_files_are_one_line(tmp_path, toy_dir):
    with pytest.raises(BionicError, match="does not exist"):
        load_column(tmp_path / "nowhere")
    (toy_dir / "meta.json").write_text("{not json")
    with pytest.raises(BionicError, match="not valid JSON"):
        load_column(toy_dir)
    (toy_dir / "meta.json").unlink()
    with pytest.raises(BionicError, match="meta.json is missing"):
        load_column(toy_dir)


# A damaged file of a snapshot folder -> (file, how it is damaged, what the one line says).
DAMAGE = {
    "parquet-truncated": ("edges.parquet", lambda b: b[: len(b) // 2], "not a Parquet file, or a truncated one"),
    "parquet-garbage": ("edges.parquet", lambda b: bytes(range(256)) * 8, "not a Parquet file"),
    "parquet-empty": ("edges.parquet", lambda b: b"", "the file is empty"),
    "cells-binary": ("cells.csv", gzip.compress, "not UTF-8 text"),
    "cells-garbled": ("cells.csv", lambda b: b'root_id,cell_type\n"864691135000000001,4P\n', "EOF inside string"),
    "cells-empty": ("cells.csv", lambda b: b"", "the file is empty"),
    "meta-binary": ("meta.json", lambda b: b"\xff\xfe" + b, "not UTF-8 text"),
}


def _damage(folder: Path, case: str) -> tuple[str, str]:
    name, damage, phrase = DAMAGE[case]
    (folder / name).write_bytes(damage((folder / name).read_bytes()))
    return name, phrase


def _is_the_line(message: str, folder: Path, name: str, phrase: str) -> None:
    assert "\n" not in message.strip() and "Traceback" not in message
    assert str(folder) in message and f"{name} cannot be read" in message and phrase in message
    assert "re-fetch" in message and "--model.net.init_args.snapshot" in message


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_file_is_one_line_naming_it(toy_dir, case, capsys):
    name, phrase = _damage(toy_dir, case)
    with pytest.raises(BionicError) as err:
        load_column(toy_dir)
    _is_the_line(str(err.value), toy_dir, name, phrase)
    from bionic.connectome.cli import main

    assert main(["stats", "--snapshot", str(toy_dir)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1 and not captured.out
    _is_the_line(captured.err, toy_dir, name, phrase)


def test_a_damaged_snapshot_through_python_m_bionic(toy_dir):
    name, phrase = _damage(toy_dir, "parquet-truncated")
    r = subprocess.run([sys.executable, "-m", "bionic", "connectome", "stats", "--snapshot", str(toy_dir)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    _is_the_line(r.stderr, toy_dir, name, phrase)


@pytest.mark.parametrize("case", ["parquet-truncated", "parquet-empty", "cells-binary", "missing", "a-file"])
def test_fit_with_a_bad_snapshot_is_one_line_and_writes_nothing(toy_dir, fer_root, tmp_path, case, capsys):
    from bionic.cli import run_cli

    if case == "missing":
        snapshot, name, phrase = tmp_path / "nowhere", None, "does not exist"
    elif case == "a-file":
        snapshot, name, phrase = toy_dir / "meta.json", None, "is a file, not a snapshot folder"
    else:
        snapshot = toy_dir
        name, phrase = _damage(toy_dir, case)
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        run_cli(["fit", "--config", str(REPO / "configs" / "bionic.yaml"), "--model.net.init_args.snapshot", str(snapshot),
                 "--data.root", str(fer_root), "--trainer.default_root_dir", str(run_dir), "--wandb.mode", "disabled"])
    assert stop.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, errors
    if name is None:
        assert str(snapshot) in errors[0] and phrase in errors[0] and "--model.net.init_args.snapshot" in errors[0]
    else:
        _is_the_line(errors[0], toy_dir, name, phrase)
    assert not run_dir.exists()


def test_meta_json_must_be_an_object(toy_dir):
    (toy_dir / "meta.json").write_text("[1, 2]")
    with pytest.raises(BionicError, match="meta.json holds a JSON list"):
        load_column(toy_dir)


def test_write_refuses_an_invalid_column(tmp_path):
    cells, edges, meta = toy_frames()
    edges.loc[0, "pre_root_id"] = 1
    with pytest.raises(BionicError, match="pre_root_id not in the cells table"):
        write_snapshot(tmp_path / "bad", cells, edges, meta)
    assert not (tmp_path / "bad" / "meta.json").exists()


# ----------------------------------------------------------------------------- bundled
def test_bundled_snapshot_is_small_and_the_default():
    size = sum(p.stat().st_size for p in BUNDLED_DIR.iterdir())
    assert size < 2_000_000
    column = load_column()
    assert column is load_column(None) and column.meta["materialization_version"] == 1300
    ws = column.meta["wiring_source"]
    assert ws["full_cell_level_connectome"] is False and ws["edges_measured"] == 461
    assert ws["edges_sampled"] == int((~column.edges.measured).sum())


def test_bundled_groups_have_the_v1300_sizes():
    assert build_wiring(load_column()).sizes == [266, 349, 185, 363]


@needs_shared
def test_bundled_cells_are_the_real_v1300_cells():
    real = pd.read_csv(SHARED / "cells.csv")
    cells = load_column().cells
    assert cells["root_id"].tolist() == real["root_id"].tolist()
    assert cells["cell_type"].tolist() == real["cell_type"].tolist()
    assert cells["ei_class"].tolist() == real["ei_class"].tolist()


@needs_shared
def test_bundled_measured_edges_are_the_real_et_edges():
    real = pd.read_csv(SHARED / "edges_l5et_to_column.csv")
    column = load_column()
    measured = column.edges[column.edges.measured]
    key = ["pre_root_id", "post_root_id"]
    got = measured.sort_values(key)[key + ["n_synapses", "total_size"]].reset_index(drop=True)
    want = real.sort_values(key)[key + ["n_synapses", "total_size"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    # every output of an ET-set cell is measured; nothing sampled is mixed into those rows
    et_cells = set(real.pre_root_id)
    assert set(column.cells.root_id[column.cells.outputs_measured]) == et_cells
    assert not column.edges[~column.edges.measured].pre_root_id.isin(et_cells).any()


@needs_shared
def test_sampled_block_densities_match_the_calibration():
    """Tolerance: 4 binomial standard errors + 0.001 per (pre type, post type) block, against
    density_scale x the v1718 figure density (sampled pre cells only)."""
    column = load_column()
    scale = column.meta["sampling"]["density_scale"]
    assert 0.85 < scale < 1.0
    calib = pd.read_csv(SHARED / "type_pair_connection_density_v1718.csv").set_index(["pre_cell_type", "post_cell_type"])
    cells = column.cells.set_index("root_id")
    sampled_pre = cells[~cells.outputs_measured]
    edges = column.edges[~column.edges.measured]
    pair_types = pd.DataFrame({"a": edges.pre_root_id.map(cells.cell_type).to_numpy(),
                               "b": edges.post_root_id.map(cells.cell_type).to_numpy()})
    observed = pair_types.value_counts()
    checked = 0
    for a in MEASURED_TYPES:
        for b in MEASURED_TYPES:
            n_a = int((sampled_pre.cell_type == a).sum())
            n_b = int((cells.cell_type == b).sum())
            pairs = n_a * n_b - (n_a if a == b else 0)
            if pairs == 0:
                continue
            want = scale * calib.loc[(a, b), "connection_density"]
            got = observed.get((a, b), 0) / pairs
            assert abs(got - want) <= 4 * np.sqrt(want * (1 - want) / pairs) + 1e-3, (a, b, got, want)
            checked += 1
    assert checked == 121
    d = lambda a, b: observed.get((a, b), 0) / ((cells.cell_type == a).sum() * (cells.cell_type == b).sum())  # noqa: E731
    assert d("4P", "23P") > 2 * d("23P", "4P")  # the canonical L4 -> L2/3 asymmetry


@needs_shared
def test_sampled_synapse_counts_match_published_totals():
    edges = load_column().edges
    sampled = edges[~edges.measured]
    assert abs(sampled.n_synapses.mean() - 145_598 / 78_301) < 0.05
    assert abs((sampled.n_synapses >= 3).mean() - 13_528 / 78_301) < 0.01
    # the model's total density is the published one (78,301 connections among 1,348 cells)
    n = 1331
    assert abs(len(edges) / (n * (n - 1)) - 78_301 / (1348 * 1347)) < 0.002


@needs_shared
def test_bundled_data_is_what_the_build_script_writes(tmp_path):
    rebuilt = load_column(build_bundled(SHARED, tmp_path / "v1300", seed=0))
    shipped = load_column()
    pd.testing.assert_frame_equal(rebuilt.edges, shipped.edges)
    pd.testing.assert_frame_equal(rebuilt.cells, shipped.cells)
    other = load_column(build_bundled(SHARED, tmp_path / "seed1", seed=1))
    assert not other.edges.equals(shipped.edges)
    assert other.edges.measured.sum() == shipped.edges.measured.sum()
