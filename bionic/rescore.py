"""Rescore kept runs from their checkpoints: each must still score what its metrics.json records;
`--flip` adds the flip-averaged figures to it.

`python -m bionic rescore KEPT [KEPT ...] --data.root ROOT [--flip]`

For every kept run under each KEPT folder (`<variant>/seed_<s>/` with metrics.json, config.yaml and
best.ckpt, as `python -m bionic keep` leaves them) this runs the command a reader would,
`python -m bionic test --config RUN/config.yaml --ckpt_path RUN/best.ckpt --data.root ROOT`, into a
scratch folder, and compares its test accuracy, macro F1 and confusion matrix with RUN/metrics.json.
A run that scores otherwise is reported and left as it is, and the exit status is 1.

`--flip` also scores each image averaged with its mirror image (`--model.test_flip true`) and writes
that block, `flip`, into RUN/metrics.json; nothing else in the file changes. A run whose metrics.json
has a flip block already must score it again. Runs kept without a checkpoint are listed and skipped.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

from bionic.errors import BionicError
from bionic.keep import KEPT_CHECKPOINT
from bionic.run_files import CONFIG, METRICS, finished_runs

# What "scores the same" means: the figures a reader quotes and the counts behind them.
# (test/loss and AUROC are left out: sums over thousands of floats, their last digits may move
# with another thread count or CPU while every prediction stays the same.)
COMPARED = ("test/acc", "test/f1_macro")
FLIP = "flip"


def differences(recorded: dict, rescored: dict) -> list[str]:
    """How `rescored` (a metrics.json or its flip block) scores otherwise than `recorded`; [] when alike."""
    out = [f"{key} {rescored.get(key)} (recorded {recorded.get(key)})" for key in COMPARED
           if not _close(recorded.get(key), rescored.get(key))]
    if recorded.get("confusion_matrix") != rescored.get("confusion_matrix"):
        out.append("the confusion matrix differs")
    return out


def _close(a, b) -> bool:
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, abs_tol=1e-6)


def scoring_command(run: Path, data_root: Path, scratch: Path, flip: bool) -> list[str]:
    return [sys.executable, "-m", "bionic", "test", "--config", str(run / CONFIG),
            "--ckpt_path", str(run / KEPT_CHECKPOINT), "--data.root", str(data_root),
            "--trainer.default_root_dir", str(scratch), "--wandb.mode", "disabled",
            "--trainer.enable_progress_bar", "false", *(["--model.test_flip", "true"] if flip else [])]


def rescore_run(run: Path, data_root: Path, flip: bool) -> tuple[bool, str]:
    """Test one kept run again; (whether it scored as recorded, a line saying what was found and done)."""
    if not (run / KEPT_CHECKPOINT).is_file():
        return True, f"skipped {run}: no {KEPT_CHECKPOINT} kept"
    recorded = json.loads((run / METRICS).read_text())
    with tempfile.TemporaryDirectory(prefix="bionic-rescore-") as scratch:
        done = subprocess.run(scoring_command(run, data_root, Path(scratch), flip), capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            return False, f"FAILED {run}: `python -m bionic test` exited {done.returncode}: {last}"
        rescored = json.loads((Path(scratch) / METRICS).read_text())
    wrong = differences(recorded, rescored)
    if wrong:
        return False, f"DIFFERS {run}: {'; '.join(wrong)}"
    line = f"same {run}: test/acc {rescored['test/acc']:.4f}"
    if not flip:
        return True, line
    if recorded.get(FLIP):
        wrong = differences(recorded[FLIP], rescored[FLIP])
        if wrong:
            return False, f"DIFFERS {run}: its flip block: {'; '.join(wrong)}"
        return True, f"{line}, flip {rescored[FLIP]['test/acc']:.4f} as recorded"
    from bionic.runs import write_json  # imports Lightning; only a run that gains a flip block needs it

    write_json(run / METRICS, {**recorded, FLIP: rescored[FLIP]})
    return True, f"{line}, flip {rescored[FLIP]['test/acc']:.4f} added to {run / METRICS}"


def rescore(kept: list[Path], data_root: Path, flip: bool = False, echo=print) -> bool:
    """Every kept run under the `kept` folders rescored in turn; True when all scored as recorded."""
    if not data_root.is_dir():
        raise BionicError(f"no FER-2013 folder at {data_root}; pass --data.root, the folder with train/ and test/")
    runs = []
    for folder in kept:
        found = finished_runs(folder) if folder.is_dir() else []
        if not found:
            raise BionicError(f"{folder} holds no kept run (<variant>/seed_<s>/metrics.json); "
                              "pass a folder that `python -m bionic keep` wrote, e.g. results/headline/runs")
        runs += found
    ok = True
    for i, run in enumerate(runs, 1):
        same, line = rescore_run(run, data_root, flip)
        ok &= same
        echo(f"[{i}/{len(runs)}] {line}", flush=True)
    return ok


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bionic rescore", description=__doc__.split("\n\n")[0])
    p.add_argument("kept", type=Path, nargs="+", help="folders of kept runs, e.g. results/headline/runs")
    p.add_argument("--data.root", dest="data_root", type=Path, required=True,
                   help="the FER-2013 folder to score on (any copy; the kept config's own root is not used)")
    p.add_argument("--flip", action="store_true",
                   help="also score with test-time flip averaging and add its block to each metrics.json")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        ok = rescore(args.kept, args.data_root, args.flip)
    except BionicError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("every run scored as recorded" if ok else "some runs did not score as recorded (lines DIFFERS/FAILED above)")
    return 0 if ok else 1
