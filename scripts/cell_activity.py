"""How each laminar group's activity evolves over training: a figure from the runs' own W&B logs.

    python scripts/cell_activity.py runs/headline_e200/bionic/seed_{0,1,2} runs/exc10_e200/bionic/seed_{0,1,2} \
        --out results/tuning/e200/exc10/cell_activity

The homeostasis callback measures, per group and training epoch, the mean rate of its cells
(`plasticity/<group>/rate`) and the share of cells silent for a whole batch
(`plasticity/<group>/silent`). Runs made since 2026-12-05 (round 13) hold both in history.json,
averaged over every step of the epoch, so kept runs carry them; older runs have them only in
their offline W&B log (the mean over the logged steps, one in 50; bionic.wandb_log reads it),
which keeping a run drops. Writes OUT/cell_activity.json ({run: {epoch: {group: {rate,
silent}}}}, so the figure can be redrawn without the logs) and
OUT/cell_activity.png (rate and silent share per group against the epoch, one line per run, one
colour per study: the folder that holds the run's variant).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bionic.errors import BionicError
from bionic.run_files import HISTORY
from bionic.wandb_log import per_epoch

MEASURES = ("rate", "silent")


def key(group: str, measure: str, suffix: str = "") -> str:
    return f"plasticity/{group}/{measure}{suffix}"


def series(run: Path, groups: list[str]) -> dict[int, dict[str, dict[str, float]]]:
    """{epoch: {group: {rate, silent}}} from the run's history.json, or else its offline W&B log."""
    history = run / HISTORY
    rows = json.loads(history.read_text()) if history.is_file() else []
    if any(key(g, m) in row for row in rows for g in groups for m in MEASURES):
        epochs, suffix = {int(row["epoch"]): row for row in rows}, ""
    else:  # "_epoch": Lightning's name for the epoch mean of a step-logged value
        suffix = "_epoch"
        epochs = per_epoch(run, [key(g, m, suffix) for g in groups for m in MEASURES])
    return {epoch: {g: {m: round(values[key(g, m, suffix)], 5) for m in MEASURES if key(g, m, suffix) in values}
                    for g in groups}
            for epoch, values in sorted(epochs.items())}


def study(run: Path) -> str:
    """runs/exc10_e200/bionic/seed_0 -> exc10_e200, and a kept run's
    results/tuning/e40/layer_norm_bias_off/runs/bionic/seed_0 -> layer_norm_bias_off: what the runs
    of one comparison share."""
    folder = run.resolve().parent.parent
    return folder.parent.name if folder.name == "runs" else folder.name


def draw(data: dict[str, dict[int, dict]], groups: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    studies = sorted({study(Path(run)) for run in data})
    colour = {s: f"C{i}" for i, s in enumerate(studies)}
    fig, axes = plt.subplots(len(MEASURES), len(groups), figsize=(3.2 * len(groups), 5.5), sharex=True,
                             squeeze=False)
    for run, epochs in data.items():
        line = colour[study(Path(run))]
        for row, measure in enumerate(MEASURES):
            for col, group in enumerate(groups):
                points = [(e, v[group][measure]) for e, v in epochs.items() if measure in v.get(group, {})]
                if points:
                    axes[row, col].plot(*zip(*points), color=line, lw=1, alpha=0.8)
    for col, group in enumerate(groups):
        axes[0, col].set_title(f"group {group}")
        axes[-1, col].set_xlabel("epoch")
    axes[0, 0].set_ylabel("mean rate (training batches)")
    axes[1, 0].set_ylabel("share of cells silent for a batch")
    handles = [plt.Line2D([], [], color=colour[s]) for s in studies]
    fig.legend(handles, studies, loc="upper center", ncol=len(studies), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", type=Path, nargs="+",
                   help="run folders (kept or not) whose history.json holds the cell activity, or with their W&B log")
    p.add_argument("--out", type=Path, required=True, help="folder for cell_activity.json and .png")
    p.add_argument("--groups", nargs="+", default=["A", "B", "C", "D"])
    args = p.parse_args()
    try:
        data = {str(run): series(run, args.groups) for run in args.runs}
    except BionicError as err:
        raise SystemExit(f"error: {err}") from None
    args.out.mkdir(parents=True, exist_ok=True)
    # One line per run and epoch: small enough to commit, and diffs stay readable.
    lines = [f"  {json.dumps(run)}: {{\n" + ",\n".join(f"    \"{e}\": {json.dumps(v)}" for e, v in epochs.items())
             + "\n  }" for run, epochs in data.items()]
    (args.out / "cell_activity.json").write_text("{\n" + ",\n".join(lines) + "\n}\n")
    draw(data, args.groups, args.out / "cell_activity.png")
    print(f"wrote {args.out / 'cell_activity.json'} and {args.out / 'cell_activity.png'}")


if __name__ == "__main__":
    main()
