"""--epoch: one full training epoch of each EPOCH_VARIANTS through its own Lightning loop, against
its FLOP floor at the same threads."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import torch

from bionic.bench.build import build
from bionic.bench.floor import gemm_flops_per_s, training_flops
from bionic.bench.machine import machine_info
from bionic.bench.timers import EpochTimer
from bionic.errors import BionicError

EPOCH_VARIANTS = ("baseline", "bionic")


def time_epoch(root: Path, variant: str, data_root: str, batch_size: int, run_dir: Path, extra: list[str]) -> dict:
    """One full training epoch of the variant through its own Lightning loop (data, augmentation,
    forward, backward, optimizer, scheduler, plasticity, logging), validation on and timed apart."""
    cli = build(root, variant, data_root, batch_size, run_dir, 1, [
        "--trainer.max_steps=-1", "--trainer.max_epochs=1", "--trainer.limit_val_batches=1.0", *extra])
    timer = EpochTimer()
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if not timer.epochs:
        raise BionicError(f"the {variant} epoch ran no training batch; check --data.root")
    epoch = timer.epochs[-1]
    return {**epoch, "samples_per_s": epoch["samples"] / epoch["train_s"], "threads": torch.get_num_threads(),
            "net": cli.model.net}


def epoch_figures(root: Path, data_root: str, batch_size: int, threads: int | None, extra: list[str],
                  device) -> dict:
    """Each EPOCH_VARIANTS epoch and the fp32 GEMM rate on `threads` threads (None: every usable core),
    and epoch / floor, floor = training FLOPs of the epoch's samples / that GEMM rate."""
    before = torch.get_num_threads()
    threads = threads or machine_info()["cores_usable"] or before
    torch.set_num_threads(threads)
    scratch = Path(tempfile.mkdtemp(prefix="bionic-bench-"))
    try:
        out = {"threads": threads, "gemm_fp32_flops_per_s": gemm_flops_per_s(device)}
        for name in EPOCH_VARIANTS:
            print(f"bench: one {name} epoch on {threads} thread(s) ...", file=sys.stderr, flush=True)
            v = time_epoch(root, name, data_root, batch_size, scratch / f"epoch_{name}", extra)
            net = v.pop("net")
            flops = training_flops(net, batch_size, device) / batch_size * v["samples"]
            v["flops"] = flops
            v["floor_s"] = flops / out["gemm_fp32_flops_per_s"]
            v["vs_floor"] = v["train_s"] / v["floor_s"]
            out[name] = v
    finally:
        torch.set_num_threads(before)
        shutil.rmtree(scratch, ignore_errors=True)
    return out
