"""The ablation report: every run's metrics.json -> tables, statistics, figures.

`python -m bionic report RUNS [--out results] [--seeds 0 1 2] [--variants a b | --matrix]
                         [--reference bionic] [--wandb-mode online]`

Per variant: seeds found, mean ± std (ddof=1) of test accuracy and macro F1, the change
against full BioNIC paired by seed (runs of one seed share the split and the data order) with
the paired t-test's 95 % confidence interval and p-value, Holm-adjusted over the comparisons,
per-class recall, parameters, unmasked synapses, epochs to best, and the paper's numbers
beside ours. `--variants` and `--seeds` filter as they do for `ablations`. A run directory
without a readable metrics.json, or an expected seed a variant lacks, is listed under
"Missing runs"; nothing is dropped silently.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bionic import EMOTIONS
from bionic.errors import BionicError
from bionic.run_files import CONFIG, METRICS, run_folders

FLIP = "+flip"  # the suffix of a variant's flip-averaged test rows (model.test_flip)

# ---------------------------------------------------------------------------- the paper
# Prasanth & Tivnan, arXiv 2601.20876, as summarized in ../shared/PAPER.md (accuracy in %,
# drops in points when one feature is removed from full BioNIC).
PAPER_MODELS = {  # variant -> (paper row, accuracy mean, accuracy std, macro F1)
    "baseline": ("conventional CNN", 60.16, 0.45, 0.5510),
    "bionic": ("BioNIC", 59.77, 0.27, 0.5652),
}
PAPER_BIONIC_ACC = PAPER_MODELS["bionic"][1]
PAPER_DISGUST_RECALL = {"conventional CNN": 0.26, "BioNIC": 0.40}  # the rarest class
PAPER_ABLATIONS = {  # ablation file (the variant's name) -> (the paper's row, drop in points; None = not reported)
    "no_augmentation": ("data augmentation", -22.82),
    "no_conv": ("convolutional layers", -12.14),
    "no_layer_norm": ("LayerNorm", -9.12),
    "no_label_smoothing": ("label smoothing", -2.16),
    "no_lr_scheduler": ("LR scheduler", -1.01),
    "no_mask": ("connectome mask", -1.01),
    "no_intra_layer": ("intra-layer connections", -0.60),
    "no_lateral_inhibition": ("lateral inhibition", -0.24),
    "no_graded_inhibition": ("graded inhibition", -0.12),
    "no_hebbian": ("Hebbian plasticity", None),
    "no_synaptic_noise": ("synaptic noise", None),
    "no_weight_decay": ("weight decay", None),
}


@dataclass(frozen=True)
class PaperRow:
    label: str  # the paper's row, "" when the paper has no such run
    acc: float | None = None  # accuracy, %
    acc_std: float | None = None
    f1: float | None = None
    delta: float | None = None  # change against BioNIC, points
    note: str = ""


def paper_row(variant: str) -> PaperRow:
    if variant in PAPER_MODELS:
        label, acc, std, f1 = PAPER_MODELS[variant]
        return PaperRow(label, acc, std, f1, None if variant == "bionic" else round(acc - PAPER_BIONIC_ACC, 2))
    if variant in PAPER_ABLATIONS:
        label, drop = PAPER_ABLATIONS[variant]
        if drop is None:
            return PaperRow(f"no {label}", note="not reported")
        return PaperRow(f"no {label}", round(PAPER_BIONIC_ACC + drop, 2), delta=drop)
    if variant.startswith("control_"):
        return PaperRow("", note="our null-model control; not in the paper")
    return PaperRow("", note="not in the paper")


# ---------------------------------------------------------------------------- collecting
@dataclass
class Missing:
    variant: str
    seed: int
    reason: str


@dataclass
class VariantRuns:
    name: str
    seeds: list[int] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)  # same order as seeds
    # The variant whose runs these are, scored another way (flip-averaged): its Δ is against that
    # variant's plain rows, and it is outside the Holm family. None: an ordinary variant.
    rescored_from: str | None = None

    def by_seed(self, key: str, scale: float = 1.0) -> dict[int, float]:
        return {s: scale * float(m[key]) for s, m in zip(self.seeds, self.metrics)}


def variant_order(name: str) -> tuple:
    rank = {"baseline": 0, "bionic": 1}.get(name, 2 if name.startswith("no_") else 3 if name.startswith("control_") else 4)
    return rank, name


def collect(runs_dir: Path, seeds=None, variants=None, expect=(), known=()) -> tuple[list[VariantRuns], list[Missing], list[int]]:
    """Read RUNS/<variant>/seed_<s>/metrics.json.

    `variants` and `seeds` filter, as in `ablations`: only those are reported, and each one asked
    for is expected (listed as missing when it has no finished run). Without them, every variant
    and seed found is reported, plus the variants in `expect` (`--matrix`: the whole matrix). A
    name in `variants` must be a variant found under RUNS or one of `known` (the ablation files)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise BionicError(f"{runs_dir} is not a directory; run `make ablations` first or pass the runs folder")
    found = run_folders(runs_dir)  # unfinished ones too: they are listed as missing, with why
    if variants:
        valid = sorted(set(found) | set(known), key=variant_order)
        unknown = [n for n in variants if n not in valid]
        if unknown:
            raise BionicError(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(valid)}")
        names = set(variants)
    else:
        names = set(found) | set(expect)
    if not names:
        raise BionicError(f"no runs under {runs_dir} (expected {runs_dir}/<variant>/seed_<s>/); run `make ablations` first")
    if seeds:
        expected = sorted(set(int(s) for s in seeds))
    else:
        expected = sorted({s for n, d in found.items() if n in names for s in d})
    out, missing = [], []
    for name in sorted(names, key=variant_order):
        vr = VariantRuns(name)
        for seed in expected:
            run_dir = found.get(name, {}).get(seed)
            metrics, reason = read_metrics(run_dir) if run_dir else (None, "not run")
            if metrics is None:
                missing.append(Missing(name, seed, reason))
            else:
                vr.seeds.append(seed)
                vr.metrics.append(metrics)
        out.append(vr)
    return out, missing, expected


def read_metrics(run_dir: Path) -> tuple[dict | None, str]:
    """A run's metrics, or None and why when it has none yet. A metrics.json that reads but
    holds a malformed table is an error: it is not an unfinished run, and nothing should quietly
    drop it or plot it wrong."""
    path = run_dir / METRICS
    if not path.is_file():
        log = run_dir / "run.log"
        see = f"; see {log}" if log.is_file() else ""
        return None, f"no {METRICS} (unfinished or failed{see})"
    try:
        metrics = json.loads(path.read_text())
        float(metrics["test/acc"]), float(metrics["test/f1_macro"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        return None, f"unreadable {path}: {type(err).__name__}: {err}"
    problem = malformed(metrics)
    if problem:
        raise BionicError(f"{path}: {problem}; rerun that run's test (python -m bionic test --config "
                          f"{run_dir / CONFIG} --ckpt_path ...) or move {run_dir} out of the runs folder")
    return metrics, ""


def malformed(metrics: dict) -> str:
    """What is wrong with the tables the report reads from one metrics.json ("" when nothing)."""
    k = len(EMOTIONS)
    cm = metrics.get("confusion_matrix")
    if cm is not None:
        rows_ok = isinstance(cm, list) and len(cm) == k and all(isinstance(r, list) and len(r) == k for r in cm)
        if not rows_ok or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                                  for r in cm for v in r):
            return f"confusion_matrix is not a {k}x{k} table of non-negative counts"
    per_class = metrics.get("per_class")
    if per_class is not None:
        if not isinstance(per_class, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("recall"), (int, float)) for v in per_class.values()):
            return "per_class is not a table of classes with a numeric recall"
    for key in ("best_epoch", "epochs_trained", "time_per_epoch_s"):
        value = metrics.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"{key} is {value!r}, not a number"
    return ""


# ---------------------------------------------------------------------------- statistics
def mean(xs) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def std(xs) -> float:
    """Sample standard deviation (ddof=1), as papers report mean ± std over seeds."""
    if len(xs) < 2:
        return math.nan
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


@dataclass(frozen=True)
class Paired:
    diff: float  # mean over the shared seeds of (variant - reference)
    lo: float  # 95 % confidence interval of that mean difference
    hi: float
    p: float  # two-sided paired t-test
    n: int  # seeds both sides have


def paired(a: dict[int, float], b: dict[int, float], level: float = 0.95) -> Paired:
    """Paired t-test by seed: runs of one seed share the data split and the data order, so the
    per-seed difference removes what the seed does to both. Needs two or more shared seeds."""
    from scipy import stats

    shared = sorted(set(a) & set(b))
    d = [a[s] - b[s] for s in shared]
    n = len(d)
    diff = mean(d)
    if n < 2:
        return Paired(diff, math.nan, math.nan, math.nan, n)
    se = std(d) / math.sqrt(n)
    if se == 0:  # the same difference at every seed: no spread to test against
        return Paired(diff, diff, diff, math.nan, n)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(diff) / se, n - 1))
    return Paired(diff, diff - half, diff + half, p, n)


def holm(ps: list[float]) -> list[float]:
    """Holm's step-down adjustment for a family of p-values; nan (not tested) stays nan and is
    not counted in the family."""
    tested = sorted((i for i, p in enumerate(ps) if not math.isnan(p)), key=lambda i: ps[i])
    out, running = [math.nan] * len(ps), 0.0
    for k, i in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - k) * ps[i]))
        out[i] = running
    return out


def unique(values) -> str:
    vals = sorted({v for v in values if v is not None})
    if not vals:
        return ""
    return str(vals[0]) if len(vals) == 1 else f"{vals[0]}-{vals[-1]}"


def summarize(vr: VariantRuns, ref: VariantRuns | None, expected_n: int) -> dict:
    """One row of the report (accuracy in %, deltas in points, F1 as a fraction); the Holm
    columns are filled in by `adjust` once every row is known."""
    acc = [100 * float(m["test/acc"]) for m in vr.metrics]
    f1 = [float(m["test/f1_macro"]) for m in vr.metrics]
    row = {
        "variant": vr.name,
        "seeds_found": len(acc),
        "seeds_expected": expected_n,
        "seeds": " ".join(map(str, vr.seeds)),
        "acc_mean": mean(acc), "acc_std": std(acc),
        "f1_mean": mean(f1), "f1_std": std(f1),
    }
    compare = ref is not None and ref.name != vr.name
    row["rescored_from"] = vr.rescored_from or ""
    none = Paired(math.nan, math.nan, math.nan, math.nan, 0)
    d_acc = paired(vr.by_seed("test/acc", 100), ref.by_seed("test/acc", 100)) if compare else none
    d_f1 = paired(vr.by_seed("test/f1_macro"), ref.by_seed("test/f1_macro")) if compare else none
    row.update({
        "pairs": d_acc.n,
        "delta_acc": d_acc.diff, "delta_acc_ci_low": d_acc.lo, "delta_acc_ci_high": d_acc.hi,
        "p_acc": d_acc.p, "p_holm_acc": math.nan,
        "delta_f1": d_f1.diff, "delta_f1_ci_low": d_f1.lo, "delta_f1_ci_high": d_f1.hi,
        "p_f1": d_f1.p, "p_holm_f1": math.nan,
    })
    for c in EMOTIONS:
        row[f"recall_{c}"] = mean([float(m["per_class"][c]["recall"]) for m in vr.metrics
                                   if c in (m.get("per_class") or {})])
    row["params"] = unique(m.get("params") for m in vr.metrics)
    row["synapses"] = unique(m.get("synapses") for m in vr.metrics)
    # best_epoch is 0-based (the checkpoint's epoch index): epochs to best = best_epoch + 1
    row["epochs_to_best_mean"] = mean([m["best_epoch"] + 1 for m in vr.metrics if m.get("best_epoch") is not None])
    row["epochs_trained_mean"] = mean([m["epochs_trained"] for m in vr.metrics if m.get("epochs_trained") is not None])
    row["max_epochs"] = unique(((m.get("config") or {}).get("trainer") or {}).get("max_epochs") for m in vr.metrics)
    row["time_per_epoch_s"] = mean([m["time_per_epoch_s"] for m in vr.metrics if m.get("time_per_epoch_s") is not None])
    reached = [t for t in (minutes_to(m.get("history"), PAPER_BIONIC_ACC) for m in vr.metrics) if t is not None]
    row["minutes_to_paper_acc"] = mean(reached)
    row["seeds_reaching_paper_acc"] = len(reached)
    paper = paper_row(vr.name)
    row.update({"paper_row": paper.label, "paper_acc": paper.acc, "paper_acc_std": paper.acc_std,
                "paper_f1": paper.f1, "paper_delta_acc": paper.delta, "paper_note": paper.note})
    return row


def minutes_to(history: list[dict], acc: float) -> float | None:
    """Training minutes (epoch times summed, validation included) until validation accuracy first
    reaches `acc` %, from a run's history; None when it never does or the history has no times."""
    total = 0.0
    for epoch in history or []:
        if "time_s" not in epoch:
            return None
        total += float(epoch["time_s"])
        if 100 * float(epoch.get("val/acc", -1)) >= acc:
            return total / 60
    return None


def adjust(rows: list[dict]) -> int:
    """Holm-adjust the p-values of every comparison against the reference, accuracy and macro F1
    each as one family; returns the family size (comparisons with a p-value). Rescored rows
    (`+flip`) compare a variant with itself, so they are not of the family."""
    family = [r for r in rows if not r["rescored_from"]]
    for metric in ("acc", "f1"):
        for row, p in zip(family, holm([r[f"p_{metric}"] for r in family])):
            row[f"p_holm_{metric}"] = p
    return sum(not math.isnan(r["p_acc"]) for r in family)


def with_flip_rows(variants: list[VariantRuns]) -> list[VariantRuns]:
    """After each variant tested with `--model.test_flip true`, its flip-averaged figures as a
    variant of their own, `<variant>+flip`, so they are never mixed into the plain rows."""
    out = []
    for vr in variants:
        out.append(vr)
        flipped = [(seed, {**m, **m["flip"], "flip": None}) for seed, m in zip(vr.seeds, vr.metrics) if m.get("flip")]
        if flipped:
            out.append(VariantRuns(vr.name + FLIP, [s for s, _ in flipped], [m for _, m in flipped], vr.name))
    return out


def controls_note(variants: list[VariantRuns]) -> str:
    """Which question the wiring controls answer, for the wiring these runs were built from
    (`wiring_source` in each control run's metrics.json)."""
    sources = [m.get("wiring_source") or {} for vr in variants if vr.name.startswith("control_") for m in vr.metrics]
    if not sources:
        return ""
    kept = ("Both wiring controls keep the density of every group-to-group block of the mask (`control_shuffled`: "
            "each cell's in- and out-degree within each block; `control_random`: only each block's density).")
    full = {s.get("full_cell_level_connectome") for s in sources}
    if full == {True}:
        return (f"{kept} The wiring is a fully measured snapshot, so a control's Δ is what the cell-level pattern "
                "inside the blocks adds: beyond the degrees (`control_shuffled`), beyond the density (`control_random`).")
    if full == {False}:
        counts = sources[0].get("mask_connections") or {}
        measured, sampled = counts.get("measured"), counts.get("sampled")
        part = (f" ({measured:,} of {measured + sampled:,} mask connections measured, the rest sampled from "
                "cell-type-pair statistics)") if isinstance(measured, int) and isinstance(sampled, int) else ""
        return (f"{kept} The wiring of these runs is partly sampled{part}: inside a block its pattern is mostly drawn "
                "from type-pair statistics, so a control's Δ says what that type-level structure adds, not whether "
                "cell-level specificity matters. With a fully measured snapshot (fetched from CAVE or the public "
                "release) the same rows answer that stronger question.")
    return ("The control runs do not record one wiring source (`wiring_source.full_cell_level_connectome`), so "
            "which question their Δ answers cannot be stated: measured and sampled wiring answer different ones.")


def test_split_of(variants: list[VariantRuns]) -> str:
    """Which images the test accuracy is on, as the runs' metrics.json record it."""
    tests = [(m.get("splits") or {}).get("test") or {} for vr in variants for m in vr.metrics]
    splits = {(t.get("source"), t.get("n")) for t in tests} - {(None, None)}
    if len(splits) != 1:
        return ""
    source, n = splits.pop()
    return f"{source}, {n:,} images" if n is not None else str(source)


# ---------------------------------------------------------------------------- writing
def num(x, fmt: str = ".2f", sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return format(x, ("+" if sign else "") + fmt)


def partial(row: dict) -> bool:
    """True while a variant lacks some of the seeds the report expects."""
    return row["seeds_found"] < row["seeds_expected"]


def pm(m, s, fmt) -> str:
    return num(m, fmt) if math.isnan(s) else f"{num(m, fmt)} ± {num(s, fmt)}"


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()})


def write_runs_csv(variants: list[VariantRuns], path: Path) -> None:
    """One line per run, for anyone who wants to redo the statistics."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "seed", "test_acc", "test_f1_macro", "test_auroc", "best_epoch", "epochs_trained", "run_dir"])
        for vr in variants:
            for seed, m in zip(vr.seeds, vr.metrics):
                w.writerow([vr.name, seed, m["test/acc"], m["test/f1_macro"], m.get("test/auroc", ""),
                            m.get("best_epoch", ""), m.get("epochs_trained", ""), m.get("run_dir", "")])


def markdown(rows: list[dict], missing: list[Missing], runs_dir: Path, ref: str, figures: list[str],
             family: int = 0, split: str = "", controls: str = "") -> str:
    on = f" on the test split ({split})" if split else ""
    L = [
        "# BioNIC ablation report", "",
        f"From `{runs_dir}` on {datetime.now():%Y-%m-%d %H:%M}, by `python -m bionic report {runs_dir}`.",
        f"Accuracy is test accuracy in %{on}, mean ± std over seeds (std with ddof=1). Variants are paired by "
        f"seed, because runs of one seed share the data split and the data order: Δ is the mean over the seeds "
        f"both have of (variant − `{ref}`), in points, with the 95 % confidence interval and two-sided p-value of "
        f"a paired t-test (pairs − 1 degrees of freedom). p (Holm) adjusts p over the {family} "
        f"comparison{'' if family == 1 else 's'} against "
        f"`{ref}` with a p-value (Holm's step-down method; macro F1 is its own family). n/a where fewer than two "
        "seeds pair.", "",
        "## Accuracy, beside the paper", "",
        "| variant | seeds | test acc % | Δ acc vs " + ref + " [95 % CI] | p | p (Holm) | macro F1 | Δ F1 "
        "| paper row | paper acc % | paper Δ | paper F1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        seeds = f"{r['seeds_found']}/{r['seeds_expected']}" + (" (partial)" if partial(r) else "")
        if math.isnan(r["delta_acc"]):
            delta = "—" if r["variant"] == ref else "n/a"
        elif math.isnan(r["delta_acc_ci_low"]):
            delta = num(r["delta_acc"], sign=True)
        else:
            delta = f"{num(r['delta_acc'], sign=True)} [{num(r['delta_acc_ci_low'], sign=True)}, {num(r['delta_acc_ci_high'], sign=True)}]"
        paper_acc = pm(r["paper_acc"], r["paper_acc_std"] or math.nan, ".2f") if r["paper_acc"] is not None else ""
        L.append(" | ".join([
            f"| {r['variant']}", seeds, pm(r["acc_mean"], r["acc_std"], ".2f"), delta, num(r["p_acc"], ".3g"),
            num(r["p_holm_acc"], ".3g"),
            pm(r["f1_mean"], r["f1_std"], ".4f"), num(r["delta_f1"], ".4f", sign=True) if r["variant"] != ref else "—",
            r["paper_row"] or "—", paper_acc or r["paper_note"] or "—",
            num(r["paper_delta_acc"], sign=True) if r["paper_delta_acc"] is not None else "—",
            num(r["paper_f1"], ".4f") if r["paper_f1"] is not None else "—",
        ]) + " |")
    if not any(r["variant"] == ref and r["seeds_found"] for r in rows):
        L += ["", f"No finished `{ref}` run: no Δ, CI or p-value could be computed."]
    if any(r["rescored_from"] for r in rows):
        L += ["", f"Rows `<variant>{FLIP}`: the same runs scored with test-time flip averaging (`--model.test_flip "
              "true`: the mean of each image's and its mirror image's class probabilities). Their Δ is against the "
              "same variant's plain rows (the gain of flip averaging), and they are not in the Holm family."]
    if controls:
        L += ["", controls]
    L += ["", "Paper accuracy for an ablation row is BioNIC's 59.77 % plus the paper's drop; the paper's Δ for the "
          "baseline is its CNN accuracy minus BioNIC's. The paper trains up to 400 epochs with early stopping: "
          "compare Δ, not absolute accuracy, when our epoch budget (below) is smaller.", "",
          "## Per-class recall (mean over seeds)", "",
          "| variant | " + " | ".join(EMOTIONS) + " |", "|---|" + "---|" * len(EMOTIONS)]
    for r in rows:
        L.append(f"| {r['variant']} | " + " | ".join(num(r[f'recall_{c}'], '.3f') for c in EMOTIONS) + " |")
    L += ["", "Paper, disgust recall: " + ", ".join(f"{k} {v:.2f}" for k, v in PAPER_DISGUST_RECALL.items()) + "."]
    L += ["", "## Size and training", "",
          "| variant | params | unmasked synapses | epochs to best (mean) | epochs trained (mean) | max_epochs | s/epoch "
          f"| minutes to {PAPER_BIONIC_ACC} % val (seeds reaching it) |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        to_paper = (f"{num(r['minutes_to_paper_acc'], '.1f')} ({r['seeds_reaching_paper_acc']}/{r['seeds_found']})"
                    if r["seeds_reaching_paper_acc"] else f"not reached (0/{r['seeds_found']})")
        L.append(f"| {r['variant']} | {r['params'] or '—'} | {r['synapses'] or '—'} | {num(r['epochs_to_best_mean'], '.1f')} "
                 f"| {num(r['epochs_trained_mean'], '.1f')} | {r['max_epochs'] or '—'} | {num(r['time_per_epoch_s'], '.1f')} "
                 f"| {to_paper} |")
    L += ["", f"Minutes to {PAPER_BIONIC_ACC} %: the training time (each epoch's time, validation included, summed) "
          "until validation accuracy first reached the paper's BioNIC accuracy, on the machine that trained the run, "
          "mean over the seeds that reached it."]
    L += ["", "## Missing runs", ""]
    if missing:
        L += ["Not in the statistics above; rerun `make ablations` with the same arguments to finish them.", "",
              "| variant | seed | why |", "|---|---|---|"]
        L += [f"| {m.variant} | {m.seed} | {m.reason} |" for m in missing]
    else:
        L.append("None: every variant has every seed.")
    if figures:
        L += ["", "## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------------------- figures
def save_figure(fig, path: Path, dpi: int) -> str:
    """Lay out, write (making the folder) and close a figure; its file name. The report's and the
    scripts' figures all end here."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path.name


def bar_label(row: dict) -> str:
    """A variant's name on the figure, with its seed count while seeds are missing, so that an
    unfinished bar (one seed has no CI) is not read as a finished one."""
    if partial(row):
        return f"{row['variant']} ({row['seeds_found']} of {row['seeds_expected']} seeds)"
    return row["variant"]


def figures(rows: list[dict], variants: list[VariantRuns], out: Path, ref: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    # 1. change in accuracy per variant, with the paper's drop beside it
    others = [r for r in rows if r["variant"] != ref and not math.isnan(r["delta_acc"])]
    if others:
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(others) + 1.5))
        y = list(range(len(others)))[::-1]
        d = [r["delta_acc"] for r in others]
        colors = ["lightsteelblue" if partial(r) else "tab:blue" for r in others]
        ax.barh(y, d, color=colors, alpha=0.7, label="ours")
        # one seed has no interval: a zero-width cap would read as certainty
        ci = [i for i, r in enumerate(others) if not math.isnan(r["delta_acc_ci_low"])]
        if ci:
            ax.errorbar([d[i] for i in ci], [y[i] for i in ci], fmt="none", ecolor="black",
                        xerr=[[d[i] - others[i]["delta_acc_ci_low"] for i in ci],
                              [others[i]["delta_acc_ci_high"] - d[i] for i in ci]],
                        capsize=3, label="95 % CI, paired by seed")
        paper = [i for i, r in enumerate(others) if r["paper_delta_acc"] is not None]
        if paper:
            ax.scatter([others[i]["paper_delta_acc"] for i in paper], [y[i] for i in paper], marker="x",
                       color="black", zorder=3, label="paper")
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(y, [bar_label(r) for r in others])
        ax.set_xlabel(f"test accuracy change vs {ref} (points)")
        pale = "; pale: seeds missing" if any(map(partial, others)) else ""
        ax.set_title(f"bars: ours, mean over seeds; x: the paper{pale}", fontsize=9)
        ax.legend(loc="best", fontsize=8)
        made.append(save_figure(fig, out / "delta_accuracy.png", dpi=120))
    # 2. confusion matrices, summed over seeds, each row normalized (recall on the diagonal)
    with_cm = [vr for vr in variants if any(m.get("confusion_matrix") for m in vr.metrics)]
    if with_cm:
        cols = min(4, len(with_cm))
        nrows = math.ceil(len(with_cm) / cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 3.2 * nrows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, vr in zip(axes.flat, with_cm):
            cms = [m["confusion_matrix"] for m in vr.metrics if m.get("confusion_matrix")]
            k = len(cms[0])
            total = [[sum(cm[i][j] for cm in cms) for j in range(k)] for i in range(k)]
            norm = [[v / max(1, sum(row)) for v in row] for row in total]
            ax.axis("on")
            ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
            ax.set_title(f"{vr.name} ({len(cms)} seeds)", fontsize=9)
            labels = [e[:3] for e in EMOTIONS][:k]
            ax.set_xticks(range(k), labels, fontsize=7, rotation=90)
            ax.set_yticks(range(k), labels, fontsize=7)
            for i in range(k):
                ax.text(i, i, f"{norm[i][i]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if norm[i][i] > 0.5 else "black")
        fig.supxlabel("predicted")
        fig.supylabel("true")
        made.append(save_figure(fig, out / "confusion_matrices.png", dpi=110))
    # 3. training curves: mean over seeds per epoch
    with_hist = [vr for vr in variants if any(m.get("history") for m in vr.metrics)]
    if with_hist:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
        colors = plt.get_cmap("tab20")
        for i, vr in enumerate(with_hist):
            for ax, key in ((a1, "val/acc"), (a2, "train/loss")):
                by_epoch: dict[int, list[float]] = {}
                for m in vr.metrics:
                    for h in m.get("history") or []:
                        if h.get(key) is not None:
                            by_epoch.setdefault(int(h["epoch"]), []).append(float(h[key]))
                if by_epoch:
                    xs = sorted(by_epoch)
                    style = "-" if vr.name in (ref, "baseline") else "--"
                    ax.plot(xs, [mean(by_epoch[x]) for x in xs], style, color=colors(i % 20), label=vr.name, lw=1.2)
        a1.xaxis.get_major_locator().set_params(integer=True)
        a2.xaxis.get_major_locator().set_params(integer=True)
        a1.set(xlabel="epoch", ylabel="val/acc (mean over seeds)")
        a2.set(xlabel="epoch", ylabel="train/loss (mean over seeds)")
        a2.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        made.append(save_figure(fig, out / "training_curves.png", dpi=110))
    return made


# ---------------------------------------------------------------------------- W&B
def log_wandb(rows: list[dict], out: Path, made: list[str], project: str, mode: str) -> None:
    """Online only: a W&B Table of the report plus its figures, as a `report` job."""
    if mode != "online":
        return
    try:
        import wandb

        run = wandb.init(project=project, job_type="report", name="ablation-report", mode="online",
                         config={"report_dir": str(out)})
        columns = list(rows[0])
        table = wandb.Table(columns=columns, data=[[None if isinstance(v, float) and math.isnan(v) else v
                                                    for v in r.values()] for r in rows])
        run.log({"ablations": table, **{Path(f).stem: wandb.Image(str(out / f)) for f in made}})
        run.finish()
        print(f"logged the report table to W&B project {project}")
    except Exception as err:  # the files are written; W&B is a copy, so do not fail the report
        print(f"warning: could not log the report to W&B ({type(err).__name__}: {err}); the files are in {out}",
              file=sys.stderr)


# ---------------------------------------------------------------------------- entry point
def report(runs_dir: Path, out: Path, seeds=None, variants=None, ref: str = "bionic",
           wandb_mode: str | None = None, wandb_project: str | None = None, plots: bool = True,
           expect=(), known=()) -> dict:
    """Read the runs (see `collect` for `seeds`, `variants`, `expect`, `known`), write the report
    into `out`. The reference is read even when `variants` leaves it out: every Δ is against it."""
    out = Path(out)
    if known and ref not in known:
        raise BionicError(f"unknown --reference {ref}; known: {', '.join(known)}")
    if out.exists() and not out.is_dir():
        raise BionicError(f"--out {out} is a file; the report is a folder of tables and figures: pass a folder "
                          "(it is created when missing)")
    if variants and ref not in variants:
        variants = [*variants, ref] if (Path(runs_dir) / ref).is_dir() else variants
    found, missing, expected = collect(runs_dir, seeds, variants, expect, known)
    found = with_flip_rows(found)
    ref_runs = next((vr for vr in found if vr.name == ref), None)
    plain = {vr.name: vr for vr in found}
    # A +flip row's Δ is against its own variant's plain figures: the gain of flip averaging.
    rows = [summarize(vr, plain[vr.rescored_from] if vr.rescored_from else ref_runs, len(expected)) for vr in found]
    family = adjust(rows)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_csv(rows, out / "ablations.csv")
        write_runs_csv(found, out / "ablations_runs.csv")
        made = figures(rows, [vr for vr in found if vr.metrics], out, ref) if plots else []
        (out / "ablations.md").write_text(markdown(rows, missing, runs_dir, ref, made, family,
                                                   test_split_of(found), controls_note(found)))
    except OSError as err:
        raise BionicError(f"cannot write the report into {out}: {err.strerror or err}; pass another --out") from err
    project = wandb_project or next(((m.get("config") or {}).get("wandb", {}).get("project")
                                     for vr in found for m in vr.metrics if (m.get("config") or {}).get("wandb")), None)
    log_wandb(rows, out, made, project or "bionic", wandb_mode or os.environ.get("WANDB_MODE", "offline"))
    return {"rows": rows, "missing": missing, "figures": made}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bionic report", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, nargs="?", default=Path("runs"), help="the matrix's runs folder (default: runs)")
    p.add_argument("--out", type=Path, default=Path("results"), help="where the report goes (default: results)")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="only these seeds, each expected (default: every seed found)")
    p.add_argument("--variants", nargs="+", default=None,
                   help="only these variants (ablation file names, as for `ablations`), each expected; "
                        "the reference is always read (default: every variant found)")
    p.add_argument("--matrix", action="store_true",
                   help="expect every variant of the matrix (configs/ and ablations/), so one never started is listed")
    p.add_argument("--root", type=Path, default=None, help="repository with configs/ and ablations/ (default: as `ablations`)")
    p.add_argument("--reference", default="bionic", help="the variant deltas are taken against (default: bionic)")
    p.add_argument("--wandb-mode", choices=("online", "offline", "disabled"), default=None,
                   help="online also logs a W&B Table (default: $WANDB_MODE, else offline = no logging)")
    p.add_argument("--wandb-project", default=None)
    p.add_argument("--no-plots", action="store_true")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        matrix, known = matrix_variants(args.root, required=args.matrix or args.root is not None)
        result = report(args.runs, args.out, args.seeds, args.variants, args.reference, args.wandb_mode,
                        args.wandb_project, plots=not args.no_plots, expect=matrix if args.matrix else (),
                        known=known)
    except BionicError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    n_runs = sum(r["seeds_found"] for r in result["rows"])
    print(f"report: {len(result['rows'])} variants, {n_runs} runs, {len(result['missing'])} missing -> "
          f"{args.out / 'ablations.md'}, {args.out / 'ablations.csv'}, {len(result['figures'])} figures")
    for m in result["missing"]:
        print(f"  missing: {m.variant} seed {m.seed}: {m.reason}")
    return 0


def matrix_variants(root: Path | None, required: bool) -> tuple[list[str], list[str]]:
    """(the matrix's variants, every variant the repository defines: the vocabulary); empty
    without a repository unless `--matrix` needs them."""
    from bionic.ablations import default_root, discover_variants, matrix_of

    try:
        variants = discover_variants(root or default_root())
    except BionicError:
        if required:
            raise
        return [], []
    return list(matrix_of(variants)), list(variants)


if __name__ == "__main__":
    sys.exit(main())
