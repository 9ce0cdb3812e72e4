"""scripts/whole_schedule_figure.py: the runs early stopping ended before their schedule, each
beside the same seed trained to the end, continued or rerun."""

from __future__ import annotations

import json

import pytest

from bionic.errors import BionicError
from helpers.scripts import load_script


@pytest.fixture(scope="module")
def figure():
    return load_script("whole_schedule_figure")


def run(root, variant: str, seed: int, val: list[float], budget: int = 5):
    d = root / variant / f"seed_{seed}"
    d.mkdir(parents=True)
    history = [{"epoch": e, "val/acc": v} for e, v in enumerate(val)]
    (d / "history.json").write_text(json.dumps(history))
    (d / "metrics.json").write_text(json.dumps({"test/acc": 0.5, "epochs_trained": len(val),
                                                "config": {"trainer": {"max_epochs": budget}}}))


def test_only_the_runs_stopped_early_are_drawn_continued_or_rerun(figure, tmp_path):
    stopped, whole = tmp_path / "stopped", tmp_path / "whole"
    run(stopped, "bionic", 0, [0.40, 0.55, 0.50])  # stopped after 3 of 5 epochs
    run(stopped, "bionic", 1, [0.40, 0.50, 0.52, 0.53, 0.54])  # trained its whole schedule
    run(stopped, "baseline", 0, [0.45, 0.58, 0.56])
    run(whole, "bionic", 0, [0.40, 0.55, 0.50, 0.57, 0.58])  # the same run carried on
    run(whole, "bionic", 1, [0.40, 0.50, 0.52, 0.53, 0.54])
    run(whole, "baseline", 0, [0.44, 0.57, 0.58, 0.59, 0.60])  # the seed trained again

    panels, left_out = figure.stopped_pairs(stopped, whole)
    assert left_out == []
    assert [(v, s, budget, len(a), len(b)) for v, s, budget, a, b in panels] == [("baseline", 0, 5, 3, 5),
                                                                                 ("bionic", 0, 5, 3, 5)]
    assert [figure.continued(a, b) for _v, _s, _budget, a, b in panels] == [False, True]

    out = tmp_path / "whole_schedule.png"
    assert figure.main(["--pair", str(stopped), str(whole), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_stopped_run_without_its_whole_schedule_counterpart_is_listed_not_drawn(figure, tmp_path, capsys):
    stopped, whole = tmp_path / "stopped", tmp_path / "whole"
    run(stopped, "bionic", 2, [0.40, 0.55, 0.50])
    run(whole, "bionic", 0, [0.40, 0.55, 0.50, 0.57, 0.58])
    panels, left_out = figure.stopped_pairs(stopped, whole)
    assert panels == [] and len(left_out) == 1 and "bionic seed 2 stopped early" in left_out[0]
    with pytest.raises(SystemExit, match="nothing to draw"):
        figure.main(["--pair", str(stopped), str(whole), "--out", str(tmp_path / "x.png")])
    with pytest.raises(BionicError, match="no runs under"):
        figure.stopped_pairs(stopped, tmp_path / "empty")
