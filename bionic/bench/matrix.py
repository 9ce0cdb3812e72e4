"""--matrix: the ablation matrix through its own runner, one run at a time and then several at a time."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# How the matrix is run: the ablation runner's own CLI (tests swap in a fake program).
ABLATIONS = [sys.executable, "-m", "bionic", "ablations"]
# The default short matrix: a few variants of both families, seed 0, capped batches, so the
# figure is the runner's parallelism (start-up, fit and test of several runs) in minutes.
SHORT_MATRIX = ("baseline", "bionic", "no_hebbian", "no_layer_norm")
SHORT_MATRIX_ARGS = ("--trainer.limit_train_batches", "60", "--trainer.limit_val_batches", "10",
                     "--trainer.limit_test_batches", "10")


def time_matrix(root: Path, data_root: str, jobs: int, epochs: int, variants: list[str] | None,
                runs_dir: Path | None, extra: list[str]) -> dict:
    """The ablation matrix (seed 0; `variants`, None = all) through `python -m bionic ablations`, one
    run after another, then `jobs` at a time, each into fresh run directories (so nothing is skipped)."""
    base = runs_dir or Path(tempfile.mkdtemp(prefix="bionic-bench-matrix-"))
    out = {"seeds": [0], "epochs": epochs, "variants": variants or "all", "extra_args": list(extra), "modes": {}}
    try:
        for label, j in (("sequential", 1), ("parallel", jobs)):
            runs = base / f"jobs_{j}"
            if runs.exists():
                shutil.rmtree(runs)
            cmd = [*ABLATIONS, "--seeds", "0", "--epochs", str(epochs), "--runs", str(runs), "--jobs", str(j),
                   "--root", str(root)]
            if variants:
                cmd += ["--variants", *variants]
            cmd += ["--", "--data.root", str(data_root), *extra]
            print(f"matrix ({label}, jobs={j}): {' '.join(cmd)}", file=sys.stderr, flush=True)
            t = time.perf_counter()
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            wall = time.perf_counter() - t
            out["modes"][label] = {"jobs": j, "wall_s": wall, "returncode": proc.returncode,
                                   "runs_done": sum(1 for _ in runs.glob("*/seed_0/metrics.json")),
                                   "tail": proc.stdout.strip().splitlines()[-3:]}
    finally:
        if runs_dir is None:
            shutil.rmtree(base, ignore_errors=True)
    seq, par = out["modes"]["sequential"]["wall_s"], out["modes"]["parallel"]["wall_s"]
    out["speedup"] = seq / par if par > 0 else None
    return out
