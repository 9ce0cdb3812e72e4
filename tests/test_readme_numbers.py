"""The README's ablation table and its whole-schedule table are the committed reports'
(`ablations.csv`) to the printed digits, so a number there cannot drift from the runs it summarizes."""

from __future__ import annotations

import csv

from conftest import REPO

HEADER = "| variant | seeds | test acc % | Δ vs bionic [95 % CI] | p (Holm) | paper drop | disgust recall |"


def expected_row(r: dict) -> str:
    acc = f'{float(r["acc_mean"]):.2f} ± {float(r["acc_std"]):.2f}'
    if r["variant"] == "bionic":
        delta = p = paper = "—"
    else:
        delta = (f'{float(r["delta_acc"]):+.2f} [{float(r["delta_acc_ci_low"]):+.2f}, '
                 f'{float(r["delta_acc_ci_high"]):+.2f}]')
        p = f'{float(r["p_holm_acc"]):.3g}'
        paper = f'{float(r["paper_delta_acc"]):+.2f}' if r["paper_delta_acc"] else "not reported"
    return (f'| `{r["variant"]}` | {r["seeds_found"]} | {acc} | {delta} | {p} | {paper} | '
            f'{float(r["recall_disgust"]):.2f} |')


def readme_rows() -> list[str]:
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index(HEADER) + 2  # past the header and its |---| line
    rows = []
    for line in lines[start:]:
        if not line.startswith("| `"):
            break
        rows.append(line)
    return rows


def test_readme_ablation_rows_are_the_committed_reports():
    report = {r["variant"]: r for r in csv.DictReader(open(REPO / "results/ablations/ablations.csv"))}
    complete = [v for v, r in report.items()
                if not r["rescored_from"] and r["seeds_found"] == r["seeds_expected"]]
    rows = readme_rows()
    shown = [row.split("`")[1] for row in rows]
    assert shown == complete, "the README table lists exactly the report's complete variants, in its order"
    for row, variant in zip(rows, shown):
        assert row == expected_row(report[variant]), (
            f"README row for {variant} differs from results/ablations/ablations.csv; copy it from the rebuilt report")


WHOLE_SCHEDULE_HEADER = ("| epochs | seeds | BioNIC test % | baseline test % | baseline − BioNIC, points [95 % CI] "
                         "| with flip averaging, BioNIC / baseline | report |")
WHOLE_SCHEDULE_REPORTS = ["results/headline/whole_schedule", "results/headline_e200/whole_schedule"]


def whole_schedule_row(folder: str) -> str:
    r = {row["variant"]: row for row in csv.DictReader(open(REPO / folder / "ablations.csv"))}
    acc = {v: f'{float(r[v]["acc_mean"]):.2f} ± {float(r[v]["acc_std"]):.2f}' for v in r}
    b = r["baseline"]
    gap = f'{float(b["delta_acc"]):+.2f} [{float(b["delta_acc_ci_low"]):+.2f}, {float(b["delta_acc_ci_high"]):+.2f}]'
    return (f'| {r["bionic"]["max_epochs"]} | {r["bionic"]["seeds"]} | {acc["bionic"]} | {acc["baseline"]} | {gap} '
            f'| {acc["bionic+flip"]} / {acc["baseline+flip"]} | [{folder}]({folder}/ablations.md) |')


def test_readme_whole_schedule_rows_are_the_committed_reports():
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index(WHOLE_SCHEDULE_HEADER) + 2
    rows = lines[start:start + len(WHOLE_SCHEDULE_REPORTS)]
    for row, folder in zip(rows, WHOLE_SCHEDULE_REPORTS):
        assert row == whole_schedule_row(folder), (
            f"README whole-schedule row differs from {folder}/ablations.csv; copy it from the rebuilt report")
    assert not lines[start + len(WHOLE_SCHEDULE_REPORTS)].startswith("|"), "one row per whole-schedule report"
