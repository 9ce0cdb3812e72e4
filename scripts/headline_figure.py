"""Issue 14's headline as one figure: every seed's test accuracy for each model and epoch budget,
the paper's two models beside them, and BioNIC's gap to its baseline paired by seed.

    python scripts/headline_figure.py results/headline/whole_schedule/runs \
        results/headline_e200/whole_schedule/runs results/headline/wide_e100/runs --out docs/img/headline.png

Left panel: one row per (variant, epoch budget) found in the runs folders (the budget is each
run's `trainer.max_epochs`, so the 40-epoch wide runs beside the 100-epoch headline get a row of
their own); a dot per seed, the mean as a bar with the seed std (ddof 1) as its whiskers; the
paper's means ± std below; dashed lines at target 1's 59.8 % and target 3's 63 %. Right panel:
per budget, the baseline's test accuracy minus BioNIC's for each seed both have, their mean with
the paired t 95 % interval (`bionic.report.paired`, as in the report), and target 2's 1.0 point.
Test accuracy only: these runs were chosen on validation, and the figure chooses nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bionic.errors import BionicError
from bionic.report import PAPER_MODELS, collect, mean, paired, save_figure, std

TARGET_ACC = 59.8  # issue 14, target 1: BioNIC's mean test accuracy
TARGET_GAP = 1.0  # target 2: BioNIC behind its baseline by at most this many points
TARGET_WIDE = 63.0  # target 3: bionic_wide's mean


def accuracies(runs_dirs: list[Path]) -> dict[tuple[str, int], dict[int, float]]:
    """{(variant, max_epochs): {seed: test accuracy in %}} over every finished run of the folders.
    A seed found twice for one variant and budget (two folders holding the same run) is an error:
    which of them the figure shows would otherwise be an accident of the argument order."""
    out: dict[tuple[str, int], dict[int, float]] = {}
    for runs_dir in runs_dirs:
        variants, _missing, _seeds = collect(Path(runs_dir))
        for vr in variants:
            for seed, metrics in zip(vr.seeds, vr.metrics):
                key = (vr.name, int(metrics["config"]["trainer"]["max_epochs"]))
                if seed in out.setdefault(key, {}):
                    raise BionicError(f"{vr.name} seed {seed} at {key[1]} epochs is in two of the runs folders "
                                      f"({', '.join(map(str, runs_dirs))}); pass each run once")
                out[key][seed] = 100 * float(metrics["test/acc"])
    if not out:
        raise BionicError(f"no finished runs under {', '.join(map(str, runs_dirs))}; pass results/<study>/runs folders")
    return out


def gaps(acc: dict[tuple[str, int], dict[int, float]]) -> dict[int, tuple[dict[int, float], object]]:
    """{budget: ({seed: baseline - bionic}, paired statistics)} for each budget that has both."""
    out = {}
    for (variant, epochs), bionic in sorted(acc.items(), key=lambda kv: kv[0][1]):
        baseline = acc.get(("baseline", epochs))
        if variant != "bionic" or not baseline:
            continue
        shared = sorted(set(bionic) & set(baseline))
        out[epochs] = ({s: baseline[s] - bionic[s] for s in shared}, paired(baseline, bionic))
    return out


def draw(acc: dict[tuple[str, int], dict[int, float]], by_budget: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(acc, key=lambda k: (k[1], k[0]))  # by budget, then name: baseline, bionic, bionic_wide
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.5 * (len(rows) + 4)), width_ratios=(3, 2))
    labels = []
    for y, key in enumerate(rows):
        values = list(acc[key].values())
        colour = {"baseline": "tab:orange", "bionic": "tab:blue"}.get(key[0], "tab:green")
        left.scatter(values, [y] * len(values), s=18, color=colour, alpha=0.7, zorder=3)
        if len(values) > 1:
            left.errorbar(mean(values), y, xerr=std(values), fmt="|", ms=14, color="black", capsize=3, zorder=4)
        labels.append(f"{key[0]}, {key[1]} epochs ({len(values)} seed{'s' if len(values) > 1 else ''})")
    for i, (row, acc_mean, acc_std, _f1) in enumerate(PAPER_MODELS.values()):
        y = len(rows) + i
        left.errorbar(acc_mean, y, xerr=acc_std, fmt="D", ms=5, color="grey", capsize=3)
        labels.append(f"paper: {row}")
    left.axvline(TARGET_ACC, ls="--", lw=0.8, color="tab:blue")
    left.axvline(TARGET_WIDE, ls="--", lw=0.8, color="tab:green")
    left.set_yticks(range(len(labels)), labels)
    left.invert_yaxis()
    left.set_title(f"dashed: target 1 (BioNIC {TARGET_ACC} %), target 3 (wide {TARGET_WIDE:.0f} %)", fontsize=9)
    left.set_xlabel("test accuracy, % (PublicTest); dots: seeds, bar: mean ± std")

    for y, (epochs, (per_seed, stats)) in enumerate(by_budget.items()):
        right.scatter(list(per_seed.values()), [y] * len(per_seed), s=18, color="tab:purple", alpha=0.7, zorder=3)
        if stats.n > 1:
            right.errorbar(stats.diff, y, xerr=[[stats.diff - stats.lo], [stats.hi - stats.diff]],
                           fmt="o", ms=5, color="black", capsize=3, zorder=4)
    right.axvline(0, lw=0.8, color="black")
    right.axvline(TARGET_GAP, ls="--", lw=0.8, color="tab:purple")
    right.set_yticks(range(len(by_budget)), [f"{e} epochs ({len(g)} pairs)" for e, (g, _) in by_budget.items()])
    right.set_ylim(len(by_budget) - 0.5, -0.5)
    right.set_title(f"gap per seed; dashed: target 2 ({TARGET_GAP} point)", fontsize=9)
    right.set_xlabel("baseline − BioNIC, points (mean, 95 % CI)")
    save_figure(fig, out, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="results/<study>/runs folders")
    p.add_argument("--out", type=Path, default=Path("docs/img/headline.png"))
    args = p.parse_args(argv)
    try:
        acc = accuracies(args.runs)
        by_budget = gaps(acc)
        draw(acc, by_budget, args.out)
    except BionicError as err:
        raise SystemExit(f"error: {err}")
    for epochs, (_per_seed, stats) in by_budget.items():
        print(f"{epochs} epochs: baseline - bionic {stats.diff:+.2f} points over {stats.n} seeds "
              f"(95 % CI {stats.lo:+.2f} to {stats.hi:+.2f})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
