"""--startup: a real `python -m bionic fit` from process start to its first training step."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bionic.bench.build import config_args
from bionic.bench.timers import FIRST_STEP_ENV, FirstStepClock
from bionic.errors import BionicError

# How a fit is started: the project's own entry point (tests swap it).
FIT = [sys.executable, "-m", "bionic", "fit"]
# The fit's extra callback, by class path as a user would give it.
CLOCK_ARG = f"--trainer.callbacks+={FirstStepClock.__module__}.{FirstStepClock.__qualname__}"


def time_startup(root: Path, data_root: str, runs: int, extra: list[str], variant: str = "bionic") -> dict:
    """`python -m bionic fit` of the variant's configs as a user starts it (its W&B mode included),
    from just before the process starts to its first training step; best of `runs` (the data is
    cached by then: the bench loaded it first)."""
    base = Path(tempfile.mkdtemp(prefix="bionic-bench-startup-"))
    times = []
    try:
        for i in range(runs):
            stamp = base / f"first_step_{i}"
            cmd = [*FIT, *config_args(root, variant), "--data.root", str(data_root),
                   "--trainer.default_root_dir", str(base / f"run_{i}"), CLOCK_ARG, *extra]
            env = dict(os.environ, **{FIRST_STEP_ENV: str(stamp)})
            start = time.time()
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                  cwd=root)
            if not stamp.is_file():
                tail = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
                raise BionicError(f"the start-up fit ended (exit {proc.returncode}) before its first step: "
                                  f"{tail[0] if tail else 'no output'}")
            times.append(float(stamp.read_text()) - start)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return {"variant": variant, "runs_s": times, "startup_s": min(times), "extra_args": list(extra)}
