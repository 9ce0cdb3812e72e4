"""The ablation report on hand-made metrics.json files, against statistics worked out by hand.

The expected p-values and quantiles come from closed forms, not from scipy (which the report
uses): Student's t with 2 degrees of freedom (3 paired seeds) has the CDF 1/2 + t / (2 sqrt(2 + t^2)),
so the two-sided p is 1 - |t| / sqrt(2 + t^2) and the 0.975 quantile is 0.95 / sqrt(2 * 0.975 * 0.025)
= 4.3027 (the textbook table value); with 1 degree of freedom (2 seeds) it is the Cauchy
distribution: p = 1 - (2/pi) atan|t|, quantile tan(0.475 pi) = 12.706.
"""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from bionic import EMOTIONS, report
from bionic.report import PAPER_ABLATIONS, PAPER_MODELS, holm, paired, paper_row, std

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO.parent / "shared" / "PAPER.md"

# test accuracy per seed (fractions), as metrics.json stores it
ACC = {"bionic": [0.60, 0.62, 0.58], "no_conv": [0.50, 0.47, 0.49], "baseline": [0.61, 0.64, 0.59]}
F1 = {"bionic": [0.55, 0.56, 0.54], "no_conv": [0.45, 0.45, 0.45], "baseline": [0.50, 0.52, 0.54]}
T2_975 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # t(0.975, df=2)
T1_975 = math.tan(0.475 * math.pi)  # t(0.975, df=1)


def p_two_sided_df2(t: float) -> float:
    return 1 - abs(t) / math.sqrt(2 + t * t)


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
        "splits": {"test": {"source": "PublicTest", "n": 3589}},
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


def run_report(*args: str) -> subprocess.CompletedProcess:
    """`python -m bionic report ...`, the command a user types."""
    return subprocess.run([sys.executable, "-m", "bionic", "report", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


# ---------------------------------------------------------------------------- statistics
def test_statistics_equal_the_hand_computation(runs, tmp_path):
    out = tmp_path / "results"
    result = report.report(runs, out, plots=False)
    rows = {r["variant"]: r for r in result["rows"]}
    no_conv, bionic, baseline = rows["no_conv"], rows["bionic"], rows["baseline"]

    # bionic 60, 62, 58 %: mean 60, deviations 0, +2, -2 -> variance (0+4+4)/2 = 4, std 2
    assert bionic["acc_mean"] == pytest.approx(60.0) and bionic["acc_std"] == pytest.approx(2.0)
    # no_conv 50, 47, 49 %: mean 146/3, deviations 4/3, -5/3, 1/3 -> variance (16+25+1)/9/2 = 7/3
    assert no_conv["acc_mean"] == pytest.approx(146 / 3)
    assert no_conv["acc_std"] == pytest.approx(math.sqrt(7 / 3))
    assert no_conv["f1_mean"] == pytest.approx(0.45) and no_conv["f1_std"] == pytest.approx(0.0, abs=1e-12)

    # Paired by seed: no_conv - bionic = -10, -15, -9; mean -34/3; deviations 4/3, -11/3, 7/3
    # -> variance (16 + 121 + 49) / 9 / 2 = 31/3, se = sqrt(31/3 / 3) = sqrt(31)/3, t = -34/sqrt(31)
    diff, se = -34 / 3, math.sqrt(31) / 3
    assert no_conv["pairs"] == 3
    assert no_conv["delta_acc"] == pytest.approx(diff)
    assert no_conv["delta_acc_ci_low"] == pytest.approx(diff - T2_975 * se, rel=1e-9)
    assert no_conv["delta_acc_ci_high"] == pytest.approx(diff + T2_975 * se, rel=1e-9)
    assert T2_975 == pytest.approx(4.303, abs=5e-4), "the t table's value"
    p_no_conv = p_two_sided_df2(diff / se)  # = 1 - 34/sqrt(1218)
    assert p_no_conv == pytest.approx(1 - 34 / math.sqrt(1218))
    assert no_conv["p_acc"] == pytest.approx(p_no_conv, rel=1e-9)
    # baseline - bionic = 1, 2, 1: mean 4/3, variance (1 + 4 + 1)/9/2 = 1/3, se = 1/3, t = 4
    p_baseline = p_two_sided_df2(4.0)  # = 1 - 4/sqrt(18)
    assert baseline["delta_acc"] == pytest.approx(4 / 3)
    assert baseline["p_acc"] == pytest.approx(p_baseline, rel=1e-9)
    # Holm over the two comparisons: the smaller p times 2, the larger times 1, kept monotone
    assert 2 * p_no_conv < p_baseline
    assert no_conv["p_holm_acc"] == pytest.approx(2 * p_no_conv, rel=1e-9)
    assert baseline["p_holm_acc"] == pytest.approx(p_baseline, rel=1e-9)
    # macro F1, no_conv - bionic = -0.10, -0.11, -0.09: mean -0.1, std 0.01, t = -0.1 / (0.01/sqrt(3))
    assert no_conv["delta_f1"] == pytest.approx(-0.1)
    assert no_conv["p_f1"] == pytest.approx(p_two_sided_df2(-10 * math.sqrt(3)), rel=1e-6)

    # per-class recall: mean over seeds 0, 1, 2 of 0.1 * (k + 1) + 0.01 * seed
    assert no_conv["recall_disgust"] == pytest.approx(0.2 + 0.01)
    # best_epoch 1, 2, 3 (0-based) -> epochs to best 2, 3, 4 -> mean 3
    assert (no_conv["params"], no_conv["synapses"], no_conv["epochs_to_best_mean"]) == ("2000", "500", 3.0)
    assert (baseline["params"], baseline["synapses"]) == ("1000", "")
    assert math.isnan(bionic["delta_acc"]) and math.isnan(bionic["p_holm_acc"]), "no delta of the reference against itself"

    csv_row = rows_by_variant(out)["no_conv"]
    assert float(csv_row["p_acc"]) == pytest.approx(p_no_conv, rel=1e-6)
    assert float(csv_row["p_holm_acc"]) == pytest.approx(2 * p_no_conv, rel=1e-6)
    assert csv_row["seeds_found"] == "3" and csv_row["paper_delta_acc"] == "-12.14"
    md = (out / "ablations.md").read_text()
    lo, hi = diff - T2_975 * se, diff + T2_975 * se
    assert (f"| no_conv | 3/3 | 48.67 ± 1.53 | -11.33 [{lo:+.2f}, {hi:+.2f}] | {p_no_conv:.3g} | {2 * p_no_conv:.3g} "
            "| 0.4500 ± 0.0000 |") in md
    assert "| bionic | 3/3 | 60.00 ± 2.00 | — | n/a | n/a | 0.5500 ± 0.0100 | — | BioNIC | 59.77 ± 0.27 | — | 0.5652 |" in md
    assert "paired t-test" in md and "Holm" in md and "2 comparisons" in md
    assert "test split (PublicTest, 3,589 images)" in md


def test_paired_t_test_by_hand():
    # two seeds: differences -10, -15 -> mean -12.5, std 5/sqrt(2), se 2.5, t = -5, df = 1 (Cauchy)
    two = paired({0: 50.0, 1: 47.0}, {0: 60.0, 1: 62.0})
    assert (two.n, two.diff) == (2, pytest.approx(-12.5))
    assert two.p == pytest.approx(1 - 2 / math.pi * math.atan(5.0), rel=1e-9)
    assert (two.lo, two.hi) == (pytest.approx(-12.5 - T1_975 * 2.5), pytest.approx(-12.5 + T1_975 * 2.5))
    assert T1_975 == pytest.approx(12.706, abs=5e-4)
    # only the seeds both sides have are paired: seeds 1 and 2 -> differences 1, 3
    part = paired({0: 1.0, 1: 2.0, 2: 4.0}, {1: 1.0, 2: 1.0, 3: 9.0})
    assert (part.n, part.diff) == (2, pytest.approx(2.0))
    # the same shift at every seed: unpaired the spread of each side would hide it; paired it is exact
    shift = paired({0: 50.0, 1: 60.0, 2: 70.0}, {0: 51.0, 1: 61.0, 2: 71.0})
    assert (shift.diff, shift.lo, shift.hi) == (pytest.approx(-1.0), pytest.approx(-1.0), pytest.approx(-1.0))
    assert math.isnan(shift.p), "no spread to test against"
    one = paired({0: 50.0}, {0: 60.0, 1: 62.0})
    assert (one.n, one.diff) == (1, -10.0) and math.isnan(one.lo) and math.isnan(one.p), "one pair: no CI"
    none = paired({3: 50.0}, {0: 60.0})
    assert none.n == 0 and math.isnan(none.diff)
    assert math.isnan(std([0.5])) and std([1.0, 3.0]) == pytest.approx(math.sqrt(2))


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.01, math.nan, 0.04])  # an untested row is not in the family: m = 2
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    assert holm([0.6, 0.7]) == [1.0, 1.0], "capped at 1"
    assert holm([]) == []


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
    assert report.main([str(runs), "--out", str(out), "--no-plots", "--matrix", "--root", str(REPO)]) == 0
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
    labels = {r["variant"]: report.bar_label(r) for r in report.report(runs, out, plots=False)["rows"]}
    assert labels["no_mask"] == "no_mask (1 of 4 seeds)", "the figure says a bar is unfinished"
    assert labels["bionic"] == "bionic (3 of 4 seeds)" and labels["no_conv"] == "no_conv (3 of 4 seeds)"


def test_no_runs_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no runs under") and err.count("\n") == 1


# ---------------------------------------------------------------------------- one vocabulary
def test_variants_and_seeds_filter_as_for_ablations(runs, tmp_path):
    """`--variants` / `--seeds` mean what they mean for `ablations`: only these, each expected."""
    write_run(runs, "no_mask", 0, 0.59, 0.55)
    write_run(runs, "no_conv", 5, 0.40, 0.40)
    out = tmp_path / "results"
    assert report.main([str(runs), "--out", str(out), "--no-plots", "--root", str(REPO),
                        "--variants", "no_conv", "no_hebbian", "--seeds", "0", "1", "2"]) == 0
    rows = rows_by_variant(out)
    assert list(rows) == ["bionic", "no_conv", "no_hebbian"], "only those asked for, and the reference"
    assert rows["no_conv"]["seeds"] == "0 1 2", "seed 5 is not asked for"
    assert float(rows["no_conv"]["acc_mean"]) == pytest.approx(146 / 3)
    assert (rows["no_hebbian"]["seeds_found"], rows["no_hebbian"]["seeds_expected"]) == ("0", "3")
    missing = (out / "ablations.md").read_text().split("## Missing runs")[1]
    assert [f"| no_hebbian | {s} | not run |" in missing for s in (0, 1, 2)] == [True] * 3
    assert "no_mask" not in missing and "| 5 |" not in missing


def test_unknown_variant_is_one_line_with_the_valid_names(runs, tmp_path):
    r = run_report(str(runs), "--out", str(tmp_path / "r"), "--variants", "no_convolution")
    assert r.returncode == 2, r.stderr
    line, = r.stderr.strip().splitlines()
    assert line.startswith("error: unknown variant(s) no_convolution; known: baseline, bionic, ")
    names = line.split("known: ")[1].split(", ")
    assert set(p.stem for p in (REPO / "ablations").glob("*.yaml")) <= set(names), "the ablation files are the names"
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------- bad input
def test_out_naming_an_existing_file_is_one_line(runs, tmp_path):
    out = tmp_path / "report.md"
    out.write_text("my notes\n")
    r = run_report(str(runs), "--out", str(out))
    assert r.returncode == 2, r.stderr
    line, = r.stderr.strip().splitlines()
    assert line.startswith(f"error: --out {out} is a file") and "pass a folder" in line
    assert out.read_text() == "my notes\n", "nothing overwritten"
    r = run_report(str(runs), "--out", str(out / "sub"))
    assert r.returncode == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr


@pytest.mark.parametrize("bad", [
    [[1, 2], [3]],  # ragged
    [[1] * 7] * 6,  # 6 rows for 7 classes
    [[1] * 7] * 6 + [[1, 1, 1, "x", 1, 1, 1]],  # not a count
    [[1] * 7] * 6 + [[1, 1, 1, -4, 1, 1, 1]],  # negative
    "7x7",
])
def test_malformed_confusion_matrix_is_one_line(runs, tmp_path, bad):
    run_dir = write_run(runs, "no_conv", 1, 0.47, 0.45, confusion_matrix=bad)
    out = tmp_path / "results"
    r = run_report(str(runs), "--out", str(out))
    assert r.returncode == 2, r.stderr
    line, = r.stderr.strip().splitlines()
    assert line.startswith(f"error: {run_dir / 'metrics.json'}: confusion_matrix is not a 7x7 table")
    assert not out.exists(), "nothing half written"


def test_malformed_per_class_is_one_line(runs, tmp_path):
    write_run(runs, "no_conv", 1, 0.47, 0.45, per_class={"angry": 0.5})
    r = run_report(str(runs), "--out", str(tmp_path / "r"), "--no-plots")
    assert r.returncode == 2 and "per_class is not a table" in r.stderr and r.stderr.count("\n") == 1, r.stderr


# ---------------------------------------------------------------------------- wiring controls
def test_controls_say_which_question_they_answer(runs, tmp_path):
    sampled = {"full_cell_level_connectome": False, "mask_connections": {"measured": 227, "sampled": 19529}}
    for seed in (0, 1, 2):
        write_run(runs, "control_shuffled", seed, 0.59, 0.55, wiring_source=sampled)
    report.report(runs, tmp_path / "a", plots=False)
    md = (tmp_path / "a" / "ablations.md").read_text()
    assert "partly sampled (227 of 19,756 mask connections measured" in md
    assert "not whether cell-level specificity matters" in md

    measured = {"full_cell_level_connectome": True}
    for seed in (0, 1, 2):
        write_run(runs, "control_shuffled", seed, 0.59, 0.55, wiring_source=measured)
    report.report(runs, tmp_path / "b", plots=False)
    md = (tmp_path / "b" / "ablations.md").read_text()
    assert "fully measured snapshot" in md and "partly sampled" not in md

    write_run(runs, "control_shuffled", 1, 0.59, 0.55, wiring_source=sampled)  # mixed sources
    report.report(runs, tmp_path / "c", plots=False)
    assert "cannot be stated" in (tmp_path / "c" / "ablations.md").read_text()
    report.report(runs, tmp_path / "d", plots=False, variants=["no_conv"])
    assert "wiring controls" not in (tmp_path / "d" / "ablations.md").read_text().lower()


# ---------------------------------------------------------------------------- the paper
def test_every_ablation_file_has_its_paper_row():
    assert set(PAPER_ABLATIONS) == {p.stem for p in (REPO / "ablations").glob("no_*.yaml")}, \
        "the paper's table is keyed by the ablation file names"
    assert paper_row("no_augmentation").acc == 36.95 and paper_row("no_augmentation").delta == -22.82
    assert paper_row("no_mask").delta == -1.01 and paper_row("no_hebbian").note == "not reported"
    assert paper_row("baseline").acc == 60.16 and paper_row("baseline").delta == 0.39
    assert paper_row("control_random").label == ""
    assert paper_row("no_augment").label == "", "no loose spellings: only the file names"


@pytest.mark.skipif(not PAPER.is_file(), reason="PAPER.md is not beside the repository")
def test_paper_numbers_match_paper_md():
    text = PAPER.read_text()
    for label, drop in PAPER_ABLATIONS.values():
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


def test_an_unknown_reference_is_one_line(tmp_path, capsys):
    from bionic.report import main

    rc = main([str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--reference", "bionik"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: unknown --reference bionik; known: ")
    assert "bionic" in err[0] and not (tmp_path / "out").exists()


def test_minutes_to_the_paper_accuracy_sum_epoch_times_until_validation_first_reaches_it(tmp_path):
    runs = tmp_path / "runs"
    times, accs = [60.0, 90.0, 30.0, 30.0], [0.50, 0.59, 0.5977, 0.62]  # reached in epoch 3: 180 s
    history = [{"epoch": e, "time_s": t, "val/acc": a} for e, (t, a) in enumerate(zip(times, accs))]
    write_run(runs, "bionic", 0, 0.6, 0.55, history=history)
    write_run(runs, "bionic", 1, 0.6, 0.55, history=[dict(h, time_s=2 * h["time_s"]) for h in history])  # 6 min
    write_run(runs, "baseline", 0, 0.6, 0.55, history=[dict(h, **{"val/acc": 0.5}) for h in history])
    assert report.minutes_to(history, 59.77) == pytest.approx(3.0)
    assert report.minutes_to(history[:2], 59.77) is None
    assert report.minutes_to([{"val/acc": 0.7}], 59.77) is None, "no epoch times: unknown, not zero"
    out = tmp_path / "results"
    assert report.main([str(runs), "--out", str(out), "--no-plots"]) == 0
    rows = rows_by_variant(out)
    assert float(rows["bionic"]["minutes_to_paper_acc"]) == pytest.approx(4.5)  # mean of 3 and 6
    assert rows["bionic"]["seeds_reaching_paper_acc"] == "2" and rows["baseline"]["seeds_reaching_paper_acc"] == "0"
    md = (out / "ablations.md").read_text()
    assert "| 4.5 (2/2) |" in md and "| not reached (0/1) |" in md


def test_flip_averaged_runs_are_rows_of_their_own_outside_the_holm_family(runs, tmp_path):
    out_plain, out = tmp_path / "plain", tmp_path / "results"
    assert report.main([str(runs), "--out", str(out_plain), "--no-plots"]) == 0
    flip_acc = [0.63, 0.64, 0.62]  # bionic's plain: 0.60, 0.62, 0.58 -> +3, +2, +4 points
    for seed, acc in enumerate(flip_acc):
        path = runs / "bionic" / f"seed_{seed}" / "metrics.json"
        m = json.loads(path.read_text())
        m["flip"] = {"test/acc": acc, "test/f1_macro": 0.6, "test/auroc": 0.9, "per_class": m["per_class"],
                     "confusion_matrix": m["confusion_matrix"]}
        path.write_text(json.dumps(m))
    assert report.main([str(runs), "--out", str(out), "--no-plots"]) == 0
    before, rows = rows_by_variant(out_plain), rows_by_variant(out)
    assert set(rows) == set(before) | {"bionic+flip"}
    for variant in before:  # the plain rows, their Holm-adjusted p-values included, are unchanged
        assert rows[variant] == before[variant], variant
    flip = rows["bionic+flip"]
    assert float(flip["acc_mean"]) == pytest.approx(63.0)
    assert float(flip["delta_acc"]) == pytest.approx(3.0), "Δ against bionic's own plain figures"
    assert flip["p_holm_acc"] in ("", "nan")
    assert "Rows `<variant>+flip`" in (out / "ablations.md").read_text()
