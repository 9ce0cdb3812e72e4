"""Speed and memory of the baseline and BioNIC, side by side in one run: `python -m bionic bench` (`make bench`).

    python -m bionic bench [--data.root DIR] [--steps N] [--warmup N] [--batch-size 64]
                           [--variants baseline bionic bionic_no_plasticity bionic_wide]
                           [--out bench.json] [--threads N] [--profile] [--check]
                           [--epoch [--epoch-threads N]] [--startup] [--full]
                           [--matrix [--matrix-jobs J] [--matrix-epochs 1] [--matrix-variants ...]]
                           [-- extra LightningCLI args for every model and matrix run]

Every model is built by the project's own LightningCLI parser from configs/ and trained by its own
Trainer for warm-up + N steps, so a step is what a real fit does: forward, loss, metrics, backward,
optimizer and scheduler step, plasticity. Only what would write files or need a validation set is
off (checkpoints, logger, validation, early stopping). A StepTimer callback times each step and the
plasticity hooks inside it; figures are medians over the measured steps, so a busy machine's worst
moments do not set them, and the load average is recorded beside them. TARGETS is the one table of
targets, each checked in the same run (ratios, so the machine cancels out).

--epoch times one full epoch of the baseline and of BioNIC on every core against the FLOP floor
(training FLOPs of the epoch, the masked matrices counted as dense products, / fp32 GEMM rate at
the same threads); --startup times a fit from process start to its first step; --matrix a short
ablation matrix one run at a time and --matrix-jobs at a time. --full (make bench) does all three.

Where each part lives:
    timers.py   the clock (now, sync, median_s) and the callbacks: StepTimer, EpochTimer, FirstStepClock
    targets.py  TARGETS, the one table of targets, and check_targets
    table.py    the printed tables
    cli.py      the arguments and `run`, which measures everything below in order
    build.py    the variants, each built by the project's LightningCLI
    train.py, inference.py, data.py, floor.py   step figures, inference, data loading, the FLOP floor
    epoch.py, startup.py, matrix.py             --epoch, --startup, --matrix
    machine.py  the machine, its load average, this process's memory
"""

from __future__ import annotations

import sys

from bionic.ablations import split_extra
from bionic.bench.cli import parser, run
from bionic.bench.table import print_table
from bionic.errors import BionicError
from bionic.runs import write_json


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, extra = split_extra(argv)
    args = parser().parse_args(own)
    try:
        result = run(args, extra)
    except BionicError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_json(args.out, result)
    print_table(result)
    print(f"wrote {args.out}", file=sys.stderr)
    missed = [name for name, v in result["targets"].items() if v["pass"] is False]
    if missed and args.check:
        print(f"missed target(s): {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0

