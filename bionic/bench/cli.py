"""The bench's arguments, and `run`: every figure of one bench, in the order they are measured."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from bionic.ablations import default_root, non_negative, positive
from bionic.bench.build import DEFAULT_VARIANTS, VARIANTS, build
from bionic.bench.data import time_loading, time_pipeline
from bionic.bench.epoch import epoch_figures
from bionic.bench.floor import GEMM_N, gemm_flops_per_s, training_flops
from bionic.bench.inference import INFERENCE_VARIANTS, time_inference
from bionic.bench.machine import load_average, machine_info, peak_rss_mb
from bionic.bench.matrix import SHORT_MATRIX, SHORT_MATRIX_ARGS, time_matrix
from bionic.bench.startup import time_startup
from bionic.bench.targets import check_targets
from bionic.bench.train import summarize_training, time_training, write_profile


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bionic bench",
        description="Training, data, inference speed and memory of the baseline and BioNIC, side by side; "
                    "writes bench.json. Arguments after `--` go to every LightningCLI parse (and matrix run).")
    p.add_argument("--data.root", dest="data_root", default="data/fer2013", help="FER-2013 (either layout)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(DEFAULT_VARIANTS),
                   help=f"the variants timed (default: {' '.join(DEFAULT_VARIANTS)}; a target whose "
                        "variant is left out is not measured)")
    p.add_argument("--steps", type=positive, default=50, help="measured training steps per variant")
    p.add_argument("--warmup", type=non_negative, default=10, help="training steps discarded first")
    p.add_argument("--batch-size", type=positive, default=None,
                   help="training batch size for every variant (default: the recipe's, as `fit` trains)")
    p.add_argument("--repeats", type=positive, default=1,
                   help="rounds over the variants (interleaved); step figures are medians over all rounds")
    p.add_argument("--infer-batch", type=positive, default=512, help="batch size of the inference throughput")
    p.add_argument("--out", type=Path, default=Path("bench.json"))
    p.add_argument("--threads", type=positive, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--root", type=Path, default=None, help="repository with configs/ (default: here)")
    p.add_argument("--profile", action="store_true",
                   help="torch.profiler over the measured steps; tables go beside --out as profile_<variant>.txt")
    p.add_argument("--check", action="store_true", help="exit 1 when a ratio target is missed")
    p.add_argument("--epoch", action="store_true",
                   help="also time one full training epoch (and its validation) of the baseline and BioNIC "
                        "through the Lightning loop on --epoch-threads threads, against the FLOP floor")
    p.add_argument("--epoch-threads", type=positive, default=None,
                   help="torch threads of the epoch timing (default: every usable core)")
    p.add_argument("--startup", action="store_true",
                   help="also time a fit's start-up: `python -m bionic fit` from process start to its first "
                        "training step, data cached (best of --startup-runs)")
    p.add_argument("--startup-runs", type=positive, default=2)
    p.add_argument("--matrix", action="store_true",
                   help="also time a short ablation matrix (seed 0, --matrix-variants, capped batches) "
                        "one run at a time vs --matrix-jobs at a time")
    p.add_argument("--matrix-jobs", type=positive, default=2)
    p.add_argument("--matrix-epochs", type=positive, default=1)
    p.add_argument("--matrix-variants", nargs="+", default=list(SHORT_MATRIX),
                   help=f"variants of the timed matrix (default: {' '.join(SHORT_MATRIX)}; 'all': every variant)")
    p.add_argument("--matrix-runs", type=Path, default=None, help="where matrix runs go (default: a temp dir)")
    p.add_argument("--matrix-args", default=shlex.join(SHORT_MATRIX_ARGS),
                   help="extra LightningCLI args for the matrix runs only, one string given with '=' "
                        f"(default: '{shlex.join(SHORT_MATRIX_ARGS)}'; '' for full epochs)")
    p.add_argument("--full", action="store_true", help="--epoch --startup --matrix: every target (make bench)")
    return p


def run(args, extra: list[str]) -> dict:
    """bench.json's content: the machine, then per variant its training steps (rounds interleaved),
    inference and data figures, the FLOP floor, then --epoch, --startup, --matrix, and the targets."""
    if args.threads:
        torch.set_num_threads(args.threads)
    root = (args.root or default_root()).resolve()
    variants = list(dict.fromkeys(args.variants))
    # the data pipeline is timed on BioNIC's DataModule, or the first variant's when BioNIC is left out
    pipeline_variant = "bionic" if "bionic" in variants else variants[0]
    result = {
        "machine": machine_info(),
        "load": {"start": load_average()},
        "settings": {"data_root": str(args.data_root), "steps": args.steps, "warmup": args.warmup,
                     "batch_size": args.batch_size, "repeats": args.repeats, "infer_batch": args.infer_batch,
                     "threads": torch.get_num_threads(), "extra_args": extra,
                     "variants": variants,
                     "configs": {k: VARIANTS[k][0] + VARIANTS[k][1] for k in variants}},
        "train": {}, "inference": {}, "profiles": {},
    }
    scratch = Path(tempfile.mkdtemp(prefix="bionic-bench-"))
    timers: dict[str, list] = {name: [] for name in variants}
    nets = {}
    try:
        data = None
        # Rounds interleave the variants, so a change in the machine's load hits all of them alike.
        for rnd in range(args.repeats):
            for name in variants:
                print(f"bench: {name} (round {rnd + 1}/{args.repeats}) ...", file=sys.stderr, flush=True)
                cli = build(root, name, args.data_root, args.batch_size, scratch / f"{name}_{rnd}",
                            args.warmup + args.steps, extra)
                if data is None:  # before any fit, so the first load shows a cold cache when there is one
                    data = time_loading(cli.datamodule)
                    result["settings"]["batch_size"] = cli.datamodule.hparams.batch_size
                timer = time_training(cli, args.warmup, args.profile and rnd == 0)
                timers[name].append(timer)
                device = timer.device
                result["train"][name] = summarize_training(cli, timers[name])
                if rnd > 0:
                    continue
                nets[name] = cli.model.net
                if args.profile:
                    result["profiles"][name] = write_profile(timer, args.out.parent / f"profile_{name}.txt")
                if name in INFERENCE_VARIANTS:
                    result["inference"][name] = time_inference(cli.model, device, args.steps, args.infer_batch)
                if name == pipeline_variant:
                    data["pipeline_variant"] = name
                    data.update(time_pipeline(cli.datamodule, device, max(args.steps, 5)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    fastest = max(result["train"].items(), key=lambda kv: kv[1]["samples_per_s"])
    data["model_samples_per_s"] = fastest[1]["samples_per_s"]
    data["model_consuming"] = fastest[0]
    result["data"] = data
    result["device"] = str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    result["memory"] = {"peak_rss_mb": peak_rss_mb(),
                        "gpu_max_allocated_mb": (torch.cuda.max_memory_allocated() / 2**20
                                                 if device.type == "cuda" else None)}
    gemm = gemm_flops_per_s(device)
    result["floor"] = {"gemm_fp32_flops_per_s": gemm, "gemm_n": GEMM_N}
    for name, v in result["train"].items():
        flops = training_flops(nets[name], v["batch_size"], device)
        v["flops_per_sample"] = flops / v["batch_size"]
        v["step_vs_floor"] = v["step_ms"] / 1e3 / (flops / gemm)
    result["epoch"] = (epoch_figures(root, args.data_root, result["settings"]["batch_size"], args.epoch_threads,
                                     extra, device)
                       if args.epoch or args.full else None)
    result["startup"] = (time_startup(root, args.data_root, args.startup_runs, extra)
                         if args.startup or args.full else None)
    matrix_variants = None if args.matrix_variants == ["all"] else args.matrix_variants
    result["matrix"] = (time_matrix(root, args.data_root, args.matrix_jobs, args.matrix_epochs, matrix_variants,
                                    args.matrix_runs, extra + shlex.split(args.matrix_args))
                        if args.matrix or args.full else None)
    result["targets"] = check_targets(result)
    result["load"]["end"] = load_average()
    return result
