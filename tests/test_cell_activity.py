"""scripts/cell_activity.py: each group's rate and silent share per epoch from a run's
history.json or, for older runs, its W&B log, into a JSON that holds them and a figure."""

from __future__ import annotations

import json
import sys

import pytest

from helpers.scripts import load_script
from helpers.wandb_records import log_offline


@pytest.fixture(scope="module")
def cell_activity():
    return load_script("cell_activity")


def test_series_json_and_figure_from_a_real_offline_log(cell_activity, tmp_path, monkeypatch):
    run = tmp_path / "study_x" / "bionic" / "seed_0"
    run.mkdir(parents=True)
    # As Lightning logs them: step rows without an epoch value, then the epoch's means.
    rows = [{"plasticity/D/rate_step": 0.3}]
    rows += [{"epoch": e, "plasticity/D/rate_epoch": 0.25 - 0.05 * e, "plasticity/D/silent_epoch": 0.1 * e,
              "plasticity/A/rate_epoch": 0.25} for e in range(3)]
    log_offline(run, rows)

    got = cell_activity.series(run, ["A", "D"])
    assert got == {e: {"A": {"rate": 0.25}, "D": {"rate": pytest.approx(0.25 - 0.05 * e),
                                                  "silent": pytest.approx(0.1 * e)}} for e in range(3)}
    assert cell_activity.study(run) == "study_x"

    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["cell_activity.py", str(run), "--out", str(out), "--groups", "A", "D"])
    cell_activity.main()
    saved = json.loads((out / "cell_activity.json").read_text())
    assert saved[str(run)]["2"]["D"]["silent"] == pytest.approx(0.2)
    assert (out / "cell_activity.png").read_bytes()[:4] == b"\x89PNG"


def test_history_json_is_read_first_so_kept_runs_draw_too(cell_activity, tmp_path):
    run = tmp_path / "study_y" / "runs" / "bionic" / "seed_0"  # as `bionic keep` lays it out
    run.mkdir(parents=True)
    rows = [{"epoch": e, "val/acc": 0.5, "plasticity/D/rate": 0.2 + 0.01 * e, "plasticity/D/silent": 0.0}
            for e in (1, 0)]
    (run / "history.json").write_text(json.dumps(rows))  # no W&B log: as `bionic keep` leaves a run
    assert cell_activity.series(run, ["D"]) == {0: {"D": {"rate": 0.2, "silent": 0.0}},
                                                1: {"D": {"rate": 0.21, "silent": 0.0}}}
    assert cell_activity.study(run) == "study_y"
    (run / "history.json").write_text(json.dumps([{"epoch": 0, "val/acc": 0.5}]))  # an older run: its W&B log
    with pytest.raises(cell_activity.BionicError, match="no offline W&B log"):
        cell_activity.series(run, ["D"])
