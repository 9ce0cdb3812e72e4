"""The ablation report on hand-made metrics.json files, against statistics worked out by hand."""

from __future__ import annotations

import csv
import json
import math
import re
import sys
import types
from pathlib import Path

import pytest

from bionic import EMOTIONS, report
from bionic.report import PAPER_DROPS, PAPER_MODELS, paper_row, std, welch

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO.parent / "shared" / "PAPER.md"

# test accuracy per seed (fractions), as metrics.json stores it
ACC = {"bionic": [0.60, 0.62, 0.58], "no_conv": [0.50, 0.47, 0.49], "baseline": [0.61, 0.63, 0.59]}
F1 = {"bionic": [0.55, 0.56, 0.54], "no_conv": [0.45, 0.45, 0.45], "baseline": [0.50, 0.52, 0.54]}


def write_run(runs: Path, variant: str, seed: int, acc: float, f1: float, **extra) -> Path:
    d = runs / variant / f"seed_{seed}"
    d.mkdir(parents=True, exist_ok=True)
    cm = [[10 if i == j else 1 for j in range(7)] for i in range(7)]
    metrics = {
        "model": "BaselineCNN" if variant == "baseline" else "BioNIC", "seed": seed, "run_dir": str(d),
        "test/acc": acc, "test/f1_macro": f1, "test/auroc": 0.8, "test/loss": 1.2,
        "per_class": {c: {"precision": 0.5, "recall": 0.1 * (k + 1) + 0.01 * seed, "f1": 0.5, "support": 10}
                      for k, c in enumerate(EMOTIONS)},
        "confusion_matrix": cm, "params": 1000 if variant == "baseline" else 2000,
        "synapses": None if variant == "baseline" else 500, "best_epoch": seed + 1, "epochs_trained": 4,
        "best_val_acc": acc, "time_per_epoch_s": 2.0,
        "history": [{"epoch": e, "train/loss": 2.0 - 0.1 * e, "val/acc": 0.3 + 0.05 * e} for e in range(4)],
        "config": {"trainer": {"max_epochs": 4}, "wandb": {"project": "bionic-test"}},
        **extra,
    }
    (d / "metrics.json").write_text(json.dumps(metrics))
    return d


@pytest.fixture
def runs(tmp_path) -> Path:
    runs = tmp_path / "runs"
    for variant in ACC:
        for seed, (a, f) in enumerate(zip(ACC[variant], F1[variant])):
            write_run(runs, variant, seed, a, f)
    return runs


def rows_by_variant(out: Path) -> dict[str, dict]:
    with open(out / "ablations.csv") as f:
        return {r["variant"]: r for r in csv.DictReader(f)}


# ---------------------------------------------------------------------------- statistics
def test_statistics_equal_the_hand_computation(runs, tmp_path):
    out = tmp_path / "results"
    result = report.report(runs, out, plots=False)
    rows = {r["variant"]: r for r in result["rows"]}
    no_conv, bionic = rows["no_conv"], rows["bionic"]

    # bionic 60, 62, 58 %: mean 60, deviations 0, +2, -2 -> variance (0+4+4)/2 = 4, std 2
    assert bionic["acc_mean"] == pytest.approx(60.0) and bionic["acc_std"] == pytest.approx(2.0)
    # no_conv 50, 47, 49 %: mean 146/3, deviations 4/3, -5/3, 1/3 -> variance (16+25+1)/9/2 = 7/3
    assert no_conv["acc_mean"] == pytest.approx(146 / 3)
    assert no_conv["acc_std"] == pytest.approx(math.sqrt(7 / 3))
    assert no_conv["f1_mean"] == pytest.approx(0.45) and no_conv["f1_std"] == pytest.approx(0.0, abs=1e-12)
    # Welch: se^2 = 7/3/3 + 4/3 = 19/9; df = (19/9)^2 / ((7/9)^2/2 + (4/3)^2/2)
    se = math.sqrt(19 / 9)
    df = (19 / 9) ** 2 / ((7 / 9) ** 2 / 2 + (4 / 3) ** 2 / 2)
    assert df == pytest.approx(3.740932642487047)
    diff = 146 / 3 - 60
    half = 2.8539434163007265 * se  # t(0.975, df=3.7409) from tables / scipy.stats.t.ppf
    assert no_conv["delta_acc"] == pytest.approx(diff)
    assert no_conv["delta_acc_ci_low"] == pytest.approx(diff - half, rel=1e-6)
    assert no_conv["delta_acc_ci_high"] == pytest.approx(diff + half, rel=1e-6)
    assert no_conv["delta_acc_ci_high"] == pytest.approx(-7.186649685920637, rel=1e-6)
    # p = 2 * P(T_df > |diff| / se): t = -7.8001
    assert no_conv["p_welch_acc"] == pytest.approx(0.0019103414493353967, rel=1e-6)
    # per-class recall: mean over seeds 0, 1, 2 of 0.1 * (k + 1) + 0.01 * seed
    assert no_conv["recall_disgust"] == pytest.approx(0.2 + 0.01)
    # best_epoch 1, 2, 3 (0-based) -> epochs to best 2, 3, 4 -> mean 3
    assert (no_conv["params"], no_conv["synapses"], no_conv["epochs_to_best_mean"]) == ("2000", "500", 3.0)
    assert (rows["baseline"]["params"], rows["baseline"]["synapses"]) == ("1000", "")
    assert math.isnan(bionic["delta_acc"]), "no delta of the reference against itself"

    csv_row = rows_by_variant(out)["no_conv"]
    assert float(csv_row["p_welch_acc"]) == pytest.approx(0.0019103414493353967, rel=1e-6)
    assert csv_row["seeds_found"] == "3" and csv_row["paper_delta_acc"] == "-12.14"
    md = (out / "ablations.md").read_text()
    assert "| no_conv | 3/3 | 48.67 ± 1.53 | -11.33 [-15.48, -7.19] | 0.00191 | 0.4500 ± 0.0000 |" in md
    assert "| bionic | 3/3 | 60.00 ± 2.00 | — | n/a | 0.5500 ± 0.0100 | — | BioNIC | 59.77 ± 0.27 | — | 0.5652 |" in md


def test_welch_edge_cases():
    assert math.isnan(std([0.5])) and std([1.0, 3.0]) == pytest.approx(math.sqrt(2))
    one = welch([50.0], [60.0, 62.0])
    assert one.diff == pytest.approx(-11.0) and math.isnan(one.lo) and math.isnan(one.p), "one seed: no CI"
    flat = welch([50.0, 50.0], [60.0, 60.0])
    assert (flat.lo, flat.hi) == (-10.0, -10.0) and math.isnan(flat.p)


# ---------------------------------------------------------------------------- missing runs
def test_missing_and_partial_runs_are_listed(runs, tmp_path, capsys):
    unfinished = runs / "no_conv" / "seed_3"  # a seed only this variant started
    unfinished.mkdir()
    (unfinished / "run.log").write_text("Traceback: killed\n")
    write_run(runs, "no_mask", 0, 0.59, 0.55)  # a variant with one seed of four
    broken = runs / "control_random" / "seed_1"
    broken.mkdir(parents=True)
    (broken / "metrics.json").write_text("{ half written")
    out = tmp_path / "results"
    assert report.main([str(runs), "--out", str(out), "--no-plots", "--variants", "no_hebbian"]) == 0
    printed = capsys.readouterr().out
    md = (out / "ablations.md").read_text()
    missing = md.split("## Missing runs")[1]
    assert re.search(r"\| no_conv \| 3 \| no metrics.json \(unfinished or failed; see .*no_conv/seed_3/run.log\) \|", missing)
    for seed in (0, 1, 2):
        assert f"| bionic | 3 | not run |" in missing
        assert f"| no_hebbian | {seed} | not run |" in missing, "an expected variant never started"
    for seed in (1, 2, 3):
        assert f"| no_mask | {seed} | not run |" in missing
    assert "| control_random | 1 | unreadable" in missing
    assert "missing: no_mask seed 3: not run" in printed
    rows = rows_by_variant(out)
    assert (rows["no_mask"]["seeds_found"], rows["no_mask"]["seeds_expected"]) == ("1", "4")
    assert rows["no_hebbian"]["seeds_found"] == "0" and rows["no_hebbian"]["acc_mean"] == ""
    assert "| no_mask | 1/4 (partial) | 59.00 | -1.00 |" in md, "one seed: a delta but no CI"


def test_no_runs_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no runs under") and err.count("\n") == 1


# ---------------------------------------------------------------------------- the paper
def test_every_ablation_file_has_its_paper_row():
    for path in sorted((REPO / "ablations").glob("no_*.yaml")):
        assert paper_row(path.stem).label, f"{path.name} maps to no row of the paper's ablation table"
    assert paper_row("no_augmentation").acc == 36.95 and paper_row("no_augmentation").delta == -22.82
    assert paper_row("no_mask").delta == -1.01 and paper_row("no_hebbian").note == "not reported"
    assert paper_row("baseline").acc == 60.16 and paper_row("baseline").delta == 0.39
    assert paper_row("control_random").label == ""


@pytest.mark.skipif(not PAPER.is_file(), reason="PAPER.md is not beside the repository")
def test_paper_numbers_match_paper_md():
    text = PAPER.read_text()
    for label, drop in PAPER_DROPS.items():
        if drop is not None:
            assert f"{drop:.2f}" in text, label
    for label, acc, sd, f1 in PAPER_MODELS.values():
        assert f"{acc:.2f} ± {sd:.2f} %" in text and f"{f1:.4f}" in text, label
    for label, recall in report.PAPER_DISGUST_RECALL.items():
        assert f"recall {recall:.2f}" in text, label


# ---------------------------------------------------------------------------- figures, W&B
def test_figures_are_written(runs, tmp_path):
    out = tmp_path / "results"
    made = report.report(runs, out)["figures"]
    assert made == ["delta_accuracy.png", "confusion_matrices.png", "training_curves.png"]
    for name in made:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in (out / "ablations.md").read_text()


class FakeWandb(types.ModuleType):
    def __init__(self):
        super().__init__("wandb")
        self.calls = []

    def init(self, **kwargs):
        self.calls.append(("init", kwargs))
        return self

    def Table(self, columns, data):
        return {"columns": columns, "data": data}

    def log(self, data):
        self.calls.append(("log", data))

    def finish(self):
        self.calls.append(("finish",))


def test_wandb_table_only_when_online(runs, tmp_path, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    report.report(runs, tmp_path / "a", plots=False, wandb_mode="offline")
    assert fake.calls == []
    report.report(runs, tmp_path / "b", plots=False, wandb_mode="online")
    (_, init), (_, logged), _ = fake.calls
    assert init["project"] == "bionic-test" and init["job_type"] == "report"
    table = logged["ablations"]
    assert table["columns"][0] == "variant" and [r[0] for r in table["data"]] == ["baseline", "bionic", "no_conv"]


def test_matrix_flag_expects_every_variant(runs, tmp_path):
    out = tmp_path / "results"
    assert report.main([str(runs), "--out", str(out), "--no-plots", "--matrix", "--root", str(REPO)]) == 0
    missing = (out / "ablations.md").read_text().split("## Missing runs")[1]
    never_run = [p.stem for p in (REPO / "ablations").glob("*_*.yaml") if p.stem not in ACC]
    assert len(never_run) >= 10
    for name in never_run:
        assert f"| {name} | 0 | not run |" in missing
    assert "| bionic |" not in missing and "| no_conv |" not in missing
