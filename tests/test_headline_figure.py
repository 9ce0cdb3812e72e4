"""scripts/headline_figure.py: test accuracy per (variant, epoch budget) across runs folders, the
per-seed gap to the baseline with the report's paired interval, and a figure of both."""

from __future__ import annotations

import pytest

from bionic.errors import BionicError
from bionic.report import paired
from helpers.scripts import load_script
from test_report import write_run


@pytest.fixture(scope="module")
def headline():
    return load_script("headline_figure")


def study(root, epochs: int, acc: dict[str, list[float]]):
    for variant, values in acc.items():
        for seed, a in enumerate(values):
            write_run(root, variant, seed, a, 0.5, config={"trainer": {"max_epochs": epochs}})
    return root


def test_rows_by_budget_and_the_gap_paired_by_seed(headline, tmp_path):
    short = study(tmp_path / "e100" / "runs", 100, {"baseline": [0.60, 0.61, 0.62], "bionic": [0.58, 0.60, 0.59]})
    # the wide runs sit in the 100-epoch folder but trained 40 epochs: a row of their own
    study(short, 40, {"bionic_wide": [0.63, 0.62]})
    long = study(tmp_path / "e200" / "runs", 200, {"baseline": [0.62, 0.61], "bionic": [0.61, 0.615, 0.60]})

    acc = headline.accuracies([short, long])
    assert set(acc) == {("baseline", 100), ("bionic", 100), ("bionic_wide", 40), ("baseline", 200), ("bionic", 200)}
    assert acc[("bionic", 200)] == pytest.approx({0: 61.0, 1: 61.5, 2: 60.0})

    gaps = headline.gaps(acc)
    assert list(gaps) == [100, 200]
    per_seed, stats = gaps[200]
    assert per_seed == pytest.approx({0: 1.0, 1: -0.5})  # seed 2 has no baseline: not a pair
    assert stats == paired({0: 62.0, 1: 61.0}, {0: 61.0, 1: 61.5, 2: 60.0})
    assert gaps[100][1].diff == pytest.approx((2 + 1 + 3) / 3)

    out = tmp_path / "headline.png"
    assert headline.main([str(short), str(long), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_in_two_folders_or_no_runs_is_one_clear_error(headline, tmp_path):
    a = study(tmp_path / "a" / "runs", 100, {"bionic": [0.6]})
    b = study(tmp_path / "b" / "runs", 100, {"bionic": [0.6]})
    with pytest.raises(BionicError, match="bionic seed 0 at 100 epochs is in two of the runs folders"):
        headline.accuracies([a, b])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="error: no runs under"):
        headline.main([str(tmp_path / "empty"), "--out", str(tmp_path / "x.png")])
