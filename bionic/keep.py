"""Keep finished runs for the record: their files into results/, the best checkpoint as weights.

`python -m bionic keep RUNS DEST [--no-checkpoints]`

Copies every finished run under RUNS (a `<variant>/seed_<s>/` folder with a metrics.json) that
DEST does not hold yet to `DEST/<variant>/seed_<s>/`: metrics.json, history.json, config.yaml,
confusion_matrix.png, and `checkpoints/best.ckpt` as `best.ckpt` without the optimizer, scheduler
and weight-averaging state (a third of the size; `python -m bionic test --config
DEST/.../config.yaml --ckpt_path DEST/.../best.ckpt` needs only the weights). A run DEST already
holds is never overwritten: it is listed, and flagged when its metrics.json differs.
`--no-checkpoints` keeps the record alone, as for the ablation matrix and the tuning proxies.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from pathlib import Path

from bionic.errors import BionicError
from bionic.run_files import BEST, CONFIG, CONFUSION_MATRIX, HISTORY, METRICS, finished_runs

RECORD = (METRICS, HISTORY, CONFIG, CONFUSION_MATRIX)
KEPT_CHECKPOINT = "best.ckpt"  # beside the record, not under checkpoints/
# What only resuming needs: Adam's moments double the file, and EMAWeightAveraging adds the
# non-averaged weights and its own copy (the saved state_dict already holds the averaged ones).
TRAINING_STATE = ("optimizer_states", "lr_schedulers", "current_model_state", "averaging_state")


def weights_only(src: Path, dst: Path) -> None:
    """`src`, a Lightning checkpoint, saved to `dst` without the state only resuming needs."""
    import torch

    ckpt = torch.load(src, map_location="cpu", weights_only=False)  # our own file
    for key in TRAINING_STATE:
        ckpt.pop(key, None)
    torch.save(ckpt, dst)


def keep_run(run: Path, dest: Path, checkpoint: bool = True) -> str:
    """Copy one finished run to `dest`; a line saying what was done."""
    if (dest / METRICS).exists():
        same = filecmp.cmp(run / METRICS, dest / METRICS, shallow=False)
        return f"already kept: {dest}{'' if same else f' (its {METRICS} differs from {run}; left as is)'}"
    dest.mkdir(parents=True, exist_ok=True)
    for name in RECORD:
        if (run / name).is_file():
            shutil.copy2(run / name, dest / name)
    if checkpoint and (run / BEST).is_file():
        # metrics.json last, so an interrupted copy is not taken for a kept run next time
        weights_only(run / BEST, dest / KEPT_CHECKPOINT)
    shutil.copy2(run / METRICS, dest / METRICS)
    missing = checkpoint and not (dest / KEPT_CHECKPOINT).exists()
    return f"kept {run} -> {dest}{' (no checkpoints/best.ckpt to keep)' if missing else ''}"


def keep(runs: Path, dest: Path, checkpoints: bool = True) -> list[str]:
    if not runs.is_dir():
        raise BionicError(f"no runs folder at {runs}; pass the --runs folder of `python -m bionic ablations`")
    found = finished_runs(runs)
    if not found:
        raise BionicError(f"{runs} holds no finished run (<variant>/seed_<s>/metrics.json); "
                          "let the runs finish, or pass another folder")
    return [keep_run(run, dest / run.relative_to(runs), checkpoints) for run in found]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bionic keep", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, help="the runs folder, e.g. runs/headline")
    p.add_argument("dest", type=Path, help="where the record goes, e.g. results/headline/runs")
    p.add_argument("--no-checkpoints", dest="checkpoints", action="store_false",
                   help="keep metrics, history, config and confusion matrix only")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        lines = keep(args.runs, args.dest, args.checkpoints)
    except BionicError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0
