"""scripts/lever_figure.py: each lever's runs against the recipe's run of the same seed, as the
difference in best validation accuracy so far."""

from __future__ import annotations

import json

import pytest

from bionic.errors import BionicError
from helpers.scripts import load_script


@pytest.fixture(scope="module")
def figure():
    return load_script("lever_figure")


def run(root, seed: int, val: list[float], finished: bool = True):
    d = root / "bionic_wide" / f"seed_{seed}"
    d.mkdir(parents=True)
    (d / "history.json").write_text(json.dumps([{"epoch": e, "val/acc": v} for e, v in enumerate(val)]))
    if finished:
        (d / "metrics.json").write_text(json.dumps({"test/acc": 0.6}))


def test_a_lever_is_its_best_so_far_minus_the_recipes_of_the_same_seed(figure, tmp_path, capsys):
    recipe, lever = tmp_path / "recipe", tmp_path / "lever"
    run(recipe, 0, [0.50, 0.60, 0.55, 0.62])
    run(recipe, 1, [0.52, 0.58, 0.61, 0.60])  # best so far 52, 58, 61, 61
    run(lever, 1, [0.55, 0.54, 0.59, 0.63])  # best so far 55, 55, 59, 63
    run(lever, 2, [0.60, 0.61, 0.62, 0.64])  # no recipe run of seed 2
    run(lever, 0, [0.40, 0.50], finished=False)  # still training

    baseline = figure.finished(recipe)
    assert figure.recipe_spread(baseline) == pytest.approx(0.7071, abs=1e-4)  # best 62 and 61
    runs, left_out = figure.paired(baseline, lever)
    assert [(v, s) for v, s, _d in runs] == [("bionic_wide", 1)]
    assert runs[0][2] == pytest.approx([3.0, -3.0, -2.0, 2.0])
    assert len(left_out) == 1 and "seed 2" in left_out[0] and "not drawn" in left_out[0]

    out = tmp_path / "levers.png"
    assert figure.main([str(recipe), "--lever", "BatchNorm", str(lever), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "BatchNorm: seed 1 +2.00; mean +2.00" in printed and "seed 2" in printed


def test_a_longer_lever_is_held_against_the_recipes_final_best(figure, tmp_path):
    recipe, lever = tmp_path / "recipe", tmp_path / "lever"
    run(recipe, 0, [0.50, 0.60, 0.55])  # best so far 50, 60, 60: finished after 3 epochs
    run(recipe, 1, [0.50, 0.61, 0.58])
    run(lever, 0, [0.40, 0.55, 0.58, 0.59, 0.63])  # a longer schedule: 40, 55, 58, 59, 63
    runs, _ = figure.paired(figure.finished(recipe), lever)
    assert runs[0][2] == pytest.approx([-10.0, -5.0, -2.0, -1.0, 3.0])
    short = tmp_path / "short"
    run(short, 1, [0.62])  # shorter than the recipe: its best stays 62
    runs, _ = figure.paired(figure.finished(recipe), short)
    assert runs[0][2] == pytest.approx([12.0, 1.0, 1.0])


def test_nothing_to_pair_is_a_clear_error(figure, tmp_path):
    recipe, lever = tmp_path / "recipe", tmp_path / "lever"
    run(recipe, 0, [0.50, 0.60])
    run(recipe, 1, [0.50, 0.61])
    run(lever, 5, [0.55, 0.62])
    with pytest.raises(SystemExit, match="nothing to draw"):
        figure.main([str(recipe), "--lever", "x", str(lever), "--out", str(tmp_path / "x.png")])
    with pytest.raises(BionicError, match="no finished runs under"):
        figure.paired(figure.finished(recipe), tmp_path / "empty")
    with pytest.raises(BionicError, match="two finished seeds"):
        figure.recipe_spread(figure.finished(lever))
