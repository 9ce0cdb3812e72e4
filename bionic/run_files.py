"""The names of the files in a run directory (bionic.runs documents the layout and writes them).

Its own module, without Lightning or torch, so the tools that only read run directories
(`ablations`, `report`, `keep`) name the files from the same place as the code that writes them.
"""

from __future__ import annotations

from pathlib import Path

METRICS = "metrics.json"
HISTORY = "history.json"
CONFIG = "config.yaml"
SPLITS = "splits.json"
IDENTITY = "identity.json"
CONFUSION_MATRIX = "confusion_matrix.png"
CHECKPOINTS = "checkpoints"
BEST = Path(CHECKPOINTS) / "best.ckpt"
LAST = Path(CHECKPOINTS) / "last.ckpt"


def seed_of(path: Path) -> int | None:
    """The seed of a `seed_<s>` folder; None for any other name."""
    try:
        return int(path.name.removeprefix("seed_")) if path.name.startswith("seed_") else None
    except ValueError:
        return None


def run_folders(runs: Path) -> dict[str, dict[int, Path]]:
    """Every `<variant>/seed_<s>` folder under `runs`, finished or not: {variant: {seed: folder}}."""
    runs, found = Path(runs), {}
    if not runs.is_dir():
        return found
    for variant in sorted(p for p in runs.iterdir() if p.is_dir()):
        seeds = {seed_of(d): d for d in sorted(variant.iterdir()) if d.is_dir() and seed_of(d) is not None}
        if seeds:
            found[variant.name] = seeds
    return found


def finished_runs(runs: Path) -> list[Path]:
    """The `<variant>/seed_<s>` folders under `runs` that hold a metrics.json, in order."""
    return sorted(d for seeds in run_folders(runs).values() for d in seeds.values() if (d / METRICS).is_file())
