"""Keep a lent GPU's runs inside its deadline: stop the lowest-priority run while any would not finish.

`python3 scripts/gpu_watch.py PLAN DEADLINE_EPOCH_S`

PLAN has one line per started run, highest priority first: `PID RUN_DIR`. Each PID leads its own
process group (a `bionic ablations` runner started with setsid, and its fit). Runs on one GPU share
it, so stopping one speeds up the others; a run that cannot finish before the device call ends
is lost anyway (nothing of it comes back but its history). Every CHECK_S seconds, once each live
run has EPOCHS_TO_JUDGE epochs timed since the last stop, a run's projected finish is its epochs
left times its median recent epoch, plus TEST_S for its test. If any projection overruns the time
left, the last run of the plan still fitting is stopped (SIGTERM to its group: the fit exits 143 and its
runner reports it), unless an earlier stop did not make the run it was for any faster (then the runs
are each held up by their own CPU core, not by sharing the GPU, and a stop would only lose a run).
At the deadline every group still alive is stopped.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path

import yaml

CHECK_S = 20
EPOCHS_TO_JUDGE = 3
TEST_S = 40.0


def alive(pid: int) -> bool:
    """Running, and not a zombie its parent has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def history(run_dir: Path) -> list[dict]:
    try:
        return json.loads((run_dir / "history.json").read_text())
    except (OSError, ValueError):
        return []


def max_epochs(run_dir: Path) -> int:
    """The budget the fit saved in its config.yaml (the recipe's 100 before it is written)."""
    try:
        return int(yaml.safe_load((run_dir / "config.yaml").read_text())["trainer"]["max_epochs"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return 100


def stop(pid: int, why: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} gpu_watch: stopping pid {pid}: {why}", flush=True)
    try:
        os.killpg(os.getpgid(pid), signal.SIGTERM)
    except ProcessLookupError:
        pass


def name(run_dir: Path) -> str:
    """ROOT/VARIANT/seed_S, short enough for a progress line."""
    return "/".join(run_dir.parts[-3:])


def main(plan_path: str, deadline: float) -> None:
    lines = [line.split(maxsplit=1) for line in Path(plan_path).read_text().splitlines() if line.strip()]
    plan = [(int(pid), Path(run_dir)) for pid, run_dir in lines]
    # Epochs timed before the last stop ran under more sharing: judge only the ones after it.
    judged_from = {d: 0 for _, d in plan}
    # Stopping a run only helps the others while they share the GPU. When each run is held up by
    # its own CPU core instead, a stop would only lose a run: after one that did not speed up the
    # run it was for, no more are made.
    stops_help, last_stop = True, None  # last_stop: (run it was for, its epoch time then)
    while True:
        live = [(pid, d) for pid, d in plan if alive(pid)]
        left = deadline - time.time()
        if not live:
            return
        if left <= 0:
            for pid, d in live:
                stop(pid, f"deadline reached ({d})")
            return
        projections = {}  # run -> (seconds it still needs, its epoch time, "epochs done/budget")
        for _, d in live:
            if (d / "fit.done").is_file():  # only its test is left
                projections[d] = (TEST_S, 0.0, "fitted")
                continue
            done, budget = history(d), max_epochs(d)
            fresh = [e["time_s"] for e in done[judged_from[d]:] if e.get("time_s")]
            if len(fresh) < EPOCHS_TO_JUDGE:
                break
            epoch_s = statistics.median(fresh[-EPOCHS_TO_JUDGE:])
            projections[d] = ((budget - len(done)) * epoch_s + TEST_S, epoch_s, f"{len(done)}/{budget}")
        else:
            worst = max(projections, key=lambda d: projections[d][0])
            need = projections[worst][0]
            times = ", ".join(f"{name(d)} {progress} at {s:.1f} s/epoch" for d, (_, s, progress) in projections.items())
            print(f"{time.strftime('%H:%M:%S')} gpu_watch: {left:.0f} s left; {times}", flush=True)
            if last_stop is not None:
                was_for, before = last_stop
                now = projections[was_for][1] if was_for in projections else None
                if now is not None and now > 0.9 * before:
                    stops_help = False
                    print(f"gpu_watch: {name(was_for)} ran no faster after the stop ({before:.1f} -> {now:.1f} "
                          "s/epoch): the runs do not wait on each other; no more stops before the deadline",
                          flush=True)
                last_stop = None
            fitting = [(pid, d) for pid, d in live if not (d / "fit.done").is_file()]
            if stops_help and need > left and len(live) > 1 and fitting:
                pid, d = fitting[-1]  # a run already testing is about to finish: never stop it
                stop(pid, f"{worst} needs {need:.0f} s, {left:.0f} s are left; {d} has the lowest priority")
                judged_from = {run_dir: len(history(run_dir)) for _, run_dir in plan}
                if d != worst:
                    last_stop = (worst, projections[worst][1])
        time.sleep(CHECK_S)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
