"""The ablation matrix as a W&B grid sweep, so several machines can share it.

`python -m bionic.sweep [--seeds 0 1 2] [--variants a b] [--epochs N] [--runs runs]
                        [--out runs/sweep.yaml] [-- extra LightningCLI args]`

writes a sweep definition whose grid is variant x seed and whose command is
`python -m bionic sweep-agent --variant=V --seed=S ...`: each agent runs one cell of the
matrix through the same code path as `make ablations` (bionic.ablations). The definition is
generated from the files in ablations/, so it cannot drift from the matrix; `make sweep`
writes it and registers it with `wandb sweep`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from bionic.ablations import DEFAULT_SEEDS, default_root, plan, split_extra
from bionic.errors import BionicError


def wandb_project(root: Path, default: str = "bionic") -> str:
    """The W&B project the runs log to (configs/bionic.yaml's wandb.project)."""
    try:
        config = yaml.safe_load((Path(root) / "configs" / "bionic.yaml").read_text()) or {}
        return (config.get("wandb") or {}).get("project") or default
    except (OSError, yaml.YAMLError, AttributeError):
        return default


def sweep_config(root: Path, seeds=DEFAULT_SEEDS, variants=None, epochs: int | None = None,
                 runs: str | Path = "runs", extra=(), project: str | None = None) -> dict:
    runs_planned = plan(root, runs, seeds, variants)
    names = list(dict.fromkeys(r.variant.name for r in runs_planned))
    seeds = list(dict.fromkeys(r.seed for r in runs_planned))
    # `${args}` expands to `--variant=V --seed=S`; the rest is fixed for the whole sweep.
    # `python` is whatever the agent's PATH gives: start agents inside the project's venv.
    command = ["${env}", "python", "-m", "bionic", "sweep-agent", "${args}", "--runs", str(runs)]
    if epochs is not None:
        command += ["--epochs", str(epochs)]
    if extra:
        command += ["--", *extra]
    return {
        "name": "bionic-ablations",
        "project": project or wandb_project(root),
        # Not run (the command above names the entry point), but the agent requires the key.
        "program": "bionic/__main__.py",
        "method": "grid",
        # For a grid the metric only orders the sweep's table; test metrics live in metrics.json.
        "metric": {"name": "val/acc", "goal": "maximize"},
        "parameters": {"variant": {"values": names}, "seed": {"values": seeds}},
        "command": command,
    }


def main(argv=None) -> int:
    own, extra = split_extra(list(sys.argv[1:] if argv is None else argv))
    p = argparse.ArgumentParser(prog="python -m bionic.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    p.add_argument("--variants", nargs="+", default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--runs", default="runs")
    p.add_argument("--root", type=Path, default=None)
    p.add_argument("--project", default=None, help="W&B project (default: configs/bionic.yaml's wandb.project)")
    p.add_argument("--out", type=Path, default=None, help="write here (default: stdout)")
    args = p.parse_args(own)
    try:
        config = sweep_config(args.root or default_root(), args.seeds, args.variants, args.epochs,
                              args.runs, extra, args.project)
    except BionicError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = yaml.safe_dump(config, sort_keys=False)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        cells = len(config["parameters"]["variant"]["values"]) * len(config["parameters"]["seed"]["values"])
        print(f"wrote {args.out}: grid of {cells} runs (variant x seed)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
