"""Levers against their recipe, paired by seed: each lever run's best validation accuracy so far
minus that of the recipe's run of the same seed, epoch by epoch, and at the end of the run
(docs/tuning.md, rounds 20-26: the wide front end's levers at 100 epochs, and its 150-epoch
schedule, whose curve past epoch 100 is against the recipe's final best).

    python scripts/lever_figure.py results/headline/wide_e100/runs \
        --lever "decay 5e-2" results/tuning/e100/wide_wd5e-2/runs \
        --lever "stronger augmentation" results/tuning/e100/wide_aug/runs \
        --lever "last conv 192" results/tuning/e100/wide_c192/runs \
        --lever "EMA 0.999" results/tuning/e100/wide_ema/runs \
        --lever "BatchNorm" results/tuning/e100/wide_bn/runs \
        --lever "fourth conv" results/tuning/e100/wide_conv4/runs \
        --out docs/img/wide_levers.png

Every folder holds `<variant>/seed_<s>/` runs; a lever's run is paired with the recipe's run of
the same variant and seed, finished runs only (one without a partner is listed, not drawn). The
grey band is one standard deviation of the recipe's best validation accuracy over its seeds: a
lever inside it moves validation by no more than a seed does. Validation only: it is what the
levers are judged on; the test figures are in the tables.
"""

from __future__ import annotations

import argparse
import statistics
from itertools import accumulate
from pathlib import Path

from bionic.errors import BionicError
from bionic.report import save_figure
from bionic.run_files import METRICS, run_folders
from bionic.runs import best_epoch, read_history


def best_so_far(history: list[dict]) -> list[float]:
    """The best validation accuracy reached by each epoch, in %."""
    return list(accumulate((100 * h["val/acc"] for h in history), max))


def held(curve: list[float], epochs: int) -> list[float]:
    """`curve` over at least `epochs` epochs: a finished run's best stays what it was after its
    last epoch, so a lever with a longer schedule (round 26) is compared, past the recipe's end,
    with the recipe's final best."""
    return curve + curve[-1:] * (epochs - len(curve))


def finished(root: Path) -> dict[tuple[str, int], list[dict]]:
    """{(variant, seed): history} of the finished runs under `root`."""
    return {(variant, seed): read_history(run)
            for variant, seeds in run_folders(root).items() for seed, run in seeds.items()
            if (run / METRICS).is_file()}


def paired(recipe: dict, lever_root: Path) -> tuple[list[tuple[str, int, list[float]]], list[str]]:
    """([(variant, seed, lever minus recipe best-so-far, epoch by epoch over the longer of the two
    runs)] for each finished lever run with a recipe partner, [a line for each one without])."""
    runs = finished(lever_root)
    if not runs:
        raise BionicError(f"no finished runs under {lever_root} (expected <variant>/seed_<s>/metrics.json)")
    out, left_out = [], []
    for (variant, seed), history in sorted(runs.items()):
        partner = recipe.get((variant, seed))
        if partner is None:
            left_out.append(f"{variant} seed {seed} of {lever_root} has no finished recipe run of that seed: not drawn")
            continue
        lever, base = held(best_so_far(history), len(partner)), held(best_so_far(partner), len(history))
        out.append((variant, seed, [a - b for a, b in zip(lever, base)]))
    return out, left_out


def recipe_spread(recipe: dict) -> float:
    """The standard deviation of the recipe's best validation accuracy over its seeds, in points."""
    best = [100 * best_epoch(h)[1] for h in recipe.values()]
    if len(best) < 2:
        raise BionicError("the recipe folder needs two finished seeds or more for its spread")
    return statistics.stdev(best)


def draw(levers: list[tuple[str, list]], spread: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (curves, ends) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    colours = plt.get_cmap("tab10").colors
    for ax in (curves, ends):
        ax.axhspan(-spread, spread, color="0.9", zorder=0)
        ax.axhline(0, color="0.4", lw=0.8)
    for i, (name, runs) in enumerate(levers):
        colour = colours[i % len(colours)]
        for j, (_variant, seed, delta) in enumerate(runs):
            curves.plot(range(1, len(delta) + 1), delta, color=colour, lw=0.9,
                        label=name if j == 0 else None)
        final = [delta[-1] for _v, _s, delta in runs]
        ends.scatter([i] * len(final), final, color=colour, s=22, zorder=3)
        for (_v, seed, _d), y in zip(runs, final):
            ends.annotate(str(seed), (i, y), xytext=(4, -3), textcoords="offset points", fontsize=7)
        ends.plot([i - 0.25, i + 0.25], [statistics.mean(final)] * 2, color=colour, lw=2)
    curves.set_xlabel("epoch")
    curves.set_ylabel("best validation so far, lever − recipe (points)")
    curves.set_ylim(-4, 4)  # the first epochs swing further; the verdict is in the tail
    curves.legend(fontsize=7, loc="lower right")
    ends.set_xticks(range(len(levers)), [name for name, _ in levers], rotation=20, ha="right", fontsize=8)
    ends.set_ylabel("best validation, lever − recipe (points)")
    ends.set_title("at the end: a dot a seed (its number), the bar their mean", fontsize=9)
    fig.suptitle(f"paired by seed; grey: ± the recipe's seed-to-seed spread of best validation ({spread:.2f} points)",
                 fontsize=9)
    save_figure(fig, out, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", type=Path, help="the recipe's runs folder: <variant>/seed_<s>/")
    p.add_argument("--lever", nargs=2, action="append", required=True, metavar=("NAME", "RUNS"),
                   help="a lever's name on the figure and its runs folder")
    p.add_argument("--out", type=Path, default=Path("docs/img/wide_levers.png"))
    args = p.parse_args(argv)
    try:
        recipe = finished(args.recipe)
        spread = recipe_spread(recipe)
        levers = []
        for name, root in args.lever:
            runs, missing = paired(recipe, Path(root))
            for line in missing:  # listed, not drawn
                print(line)
            if runs:
                levers.append((name, runs))
        if not levers:
            raise BionicError("no lever run has a recipe run of its seed; nothing to draw")
        draw(levers, spread, args.out)
    except BionicError as err:
        raise SystemExit(f"error: {err}")
    print(f"recipe: {len(recipe)} finished runs, best validation spread {spread:.2f} points")
    for name, runs in levers:
        final = [delta[-1] for _v, _s, delta in runs]
        per_seed = ", ".join(f"seed {s} {d[-1]:+.2f}" for _v, s, d in runs)
        print(f"{name}: {per_seed}; mean {statistics.mean(final):+.2f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
