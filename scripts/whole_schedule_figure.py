"""What early stopping cut: each run it ended before its one-cycle schedule did, beside the same
seed trained to the schedule's end, as validation accuracy per epoch (docs/tuning.md, round 16).

    python scripts/whole_schedule_figure.py \
        --pair results/headline/runs results/headline/whole_schedule/runs \
        --pair results/headline_e200/runs results/headline_e200/whole_schedule/runs \
        --out docs/img/whole_schedule.png

Each --pair is (runs made with early stopping, the same variants and seeds trained to the end).
One panel per run of the first folder that stopped before its `trainer.max_epochs` (one that has
no counterpart in the second yet is listed, not drawn): its validation
curve up to the stop, the whole-schedule run's over all epochs (a continuation of the same run,
or a rerun of the seed, as the folders hold them), a dot at each one's best epoch. Validation only:
it is what the checkpoint is chosen on; the test figures are in the tables.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bionic.errors import BionicError
from bionic.report import save_figure
from bionic.run_files import run_folders


def panel_order(panel: tuple) -> tuple:
    """Panels by budget, then model and seed."""
    variant, seed, budget = panel[:3]
    return budget, variant, seed


def stopped_pairs(stopped_root: Path, whole_root: Path) -> tuple[list[tuple[str, int, int, list, list]], list[str]]:
    """([(variant, seed, max_epochs, stopped history, whole-schedule history)] for each run of
    `stopped_root` that ended early and has a finished counterpart in `whole_root`, [a line for
    each one that has none yet, so that what the figure leaves out is said])."""
    whole = run_folders(whole_root)
    if not whole:
        raise BionicError(f"no runs under {whole_root} (expected <variant>/seed_<s>/)")
    out, left_out = [], []
    for variant, seeds in run_folders(stopped_root).items():
        for seed, run in seeds.items():
            metrics = run / "metrics.json"
            if not metrics.is_file():
                continue
            m = json.loads(metrics.read_text())
            budget = int(m["config"]["trainer"]["max_epochs"])
            if m["epochs_trained"] >= budget:
                continue
            other = whole.get(variant, {}).get(seed)
            if other is None or not (other / "metrics.json").is_file():
                left_out.append(f"{variant} seed {seed} stopped early in {stopped_root} and has no finished run in "
                                f"{whole_root} yet: not drawn")
                continue
            out.append((variant, seed, budget, json.loads((run / "history.json").read_text()),
                        json.loads((other / "history.json").read_text())))
    return sorted(out, key=panel_order), left_out


def continued(stopped: list, whole: list) -> bool:
    """Whether the whole-schedule run resumed the stopped one (their shared epochs are the same
    epochs) rather than training the seed again (a rerun differs from the first epoch on)."""
    return [h["val/acc"] for h in whole[:len(stopped)]] == [h["val/acc"] for h in stopped]


def draw(panels: list, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.6 * rows), squeeze=False, sharey=True)
    for ax, (variant, seed, budget, stopped, whole) in zip(axes.flat, panels):
        for history, colour, label in ((whole, "tab:grey", "whole schedule"), (stopped, "tab:red", "early stopping")):
            epochs = [h["epoch"] + 1 for h in history]
            acc = [100 * h["val/acc"] for h in history]
            ax.plot(epochs, acc, lw=0.9, color=colour, label=label)
            best = max(range(len(acc)), key=acc.__getitem__)
            ax.scatter([epochs[best]], [acc[best]], s=16, color=colour, zorder=3)
        ax.axvline(len(stopped), ls="--", lw=0.7, color="tab:red")
        ax.set_xlim(0, budget)
        how = "continued" if continued(stopped, whole) else "rerun"
        ax.set_title(f"{variant} seed {seed}, {budget} epochs ({how})", fontsize=9)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("validation accuracy, %")
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    axes.flat[0].set_ylim(bottom=50)
    axes.flat[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("dashed: where early stopping ended the run; dots: best epochs (the kept checkpoints)", fontsize=9)
    save_figure(fig, out, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pair", nargs=2, type=Path, action="append", required=True, metavar=("STOPPED", "WHOLE"),
                   help="a runs folder made with early stopping and its whole-schedule counterpart")
    p.add_argument("--out", type=Path, default=Path("docs/img/whole_schedule.png"))
    args = p.parse_args(argv)
    try:
        panels, left_out = [], []
        for stopped, whole in args.pair:
            drawn, missing = stopped_pairs(stopped, whole)
            panels += drawn
            left_out += missing
        panels.sort(key=panel_order)  # the pairs' panels, merged
        if not panels:
            raise BionicError("no run in the STOPPED folders ended before its schedule; nothing to draw")
        draw(panels, args.out)
    except BionicError as err:
        raise SystemExit(f"error: {err}")
    for variant, seed, budget, stopped, whole in panels:
        best = max(h["val/acc"] for h in stopped)
        print(f"{variant} seed {seed} ({budget} epochs): stopped at {len(stopped)}, best val {100 * best:.2f}; "
              f"whole schedule ({'continued' if continued(stopped, whole) else 'rerun'}) best val "
              f"{100 * max(h['val/acc'] for h in whole):.2f}")
    for line in left_out:
        print(line)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
