"""Which cells of a trained BioNIC never fire: per laminar group, on the validation images.

    python scripts/silent_cells.py results/headline/runs/bionic/seed_* --data ../shared/data/fer2013 [--untrained 2]

For every run folder (config.yaml + best.ckpt) it takes each group's rates on the validation
images (no augmentation, eval mode, as probe_groups.py does) and counts the cells that are silent
(zero on every image) and those active on fewer than 1 % of them. Beside the counts, for each
group: the mean rate against the homeostatic target, and the two per-cell offsets that decide
whether a cell fires: the excitability set by homeostasis (and how many cells sit at its cap,
model.plasticity.max_excitability) and the LayerNorm bias set by backprop. A group whose rate is
below target with its excitability at the cap is one homeostasis no longer regulates. For the
silent cells, their mean LayerNorm output and gain say what holds them below zero (a drive under
minus their excitability on every image).

The test split is not used: this is a diagnostic for the search of docs/tuning.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml

from bionic.data.fer2013 import read_fer2013
from bionic.nets import BioNIC
from bionic.plasticity import Plasticity, as_plasticity
from probe_groups import activity
from test_set_checks import load_net

RARE = 0.01  # a cell active on fewer than this share of the images counts as rarely active


def activity_and_drive(net: BioNIC, norm: dict, images: torch.Tensor):
    """probe_groups.activity's rates, and each group's LayerNorm output (its drive before the
    excitability) on the same images: {group name: [images, cells]}."""
    drive: dict[str, list[torch.Tensor]] = {}
    hooks = [group.norm.register_forward_hook(lambda m, i, out, name=name: drive.setdefault(name, []).append(out))
             for name, group in net.laminar_groups() if group.norm is not None]
    try:
        rates = activity(net, norm, images)
    finally:
        for hook in hooks:
            hook.remove()
    return rates, {name: torch.cat(parts) for name, parts in drive.items()}


def group_stats(net: BioNIC, rates: dict[str, torch.Tensor], max_excitability: float,
                drive: dict[str, torch.Tensor] | None = None) -> list[dict]:
    """One row per laminar group, from its rates [images, cells] (probe_groups.activity's keys) and,
    where given, its LayerNorm output (activity_and_drive): what holds the silent cells below zero."""
    rows = []
    for name, group in net.laminar_groups():
        r = rates[f"group {name}"]
        active = (r > 0).float().mean(0)
        silent = active == 0
        exc = group.excitability
        u = (drive or {}).get(name)
        quiet = bool(silent.any()) and u is not None
        rows.append({
            "group": name, "cells": r.shape[1],
            "silent": int(silent.sum()), "rare": int((active < RARE).sum()),
            "rate": float(r.mean()),
            "excitability": float(exc.mean()),
            "at_cap": int((exc.abs() >= max_excitability - 1e-6).sum()),
            "ln_bias": (float(group.norm.bias.detach().mean())
                        if group.norm is not None and group.norm.bias is not None else None),
            # The silent cells' mean LayerNorm output (below -excitability on every image) and gain.
            "silent_drive": float(u[:, silent].mean()) if quiet else None,
            "silent_gain": float(group.norm.weight.detach()[silent].mean()) if quiet else None,
        })
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", type=Path, nargs="+", help="run folders with config.yaml and best.ckpt")
    p.add_argument("--data", required=True, help="the FER-2013 root the runs were trained on")
    p.add_argument("--untrained", type=int, default=0, metavar="N",
                   help="also N untrained BioNICs (default settings, torch seeds 0..N-1), with the first run's "
                        "image normalization: where the cells start")
    args = p.parse_args()
    for run in args.runs:
        if not (run / "config.yaml").is_file() or not (run / "best.ckpt").is_file():
            raise SystemExit(f"error: {run} has no config.yaml and best.ckpt; pass kept run folders "
                             "(results/<study>/runs/<variant>/seed_<s>)")
    torch.set_num_threads(1)

    val = read_fer2013(args.data, None, 0.1, 0, False).images["val"]
    print(f"Silent cells on the {len(val):,} validation images (no augmentation); rare: active on fewer "
          f"than {RARE:.0%} of them. Rate: mean over cells and images; excitability and LayerNorm bias: "
          f"mean over cells; at cap: cells whose excitability is at ±max_excitability; silent cells' "
          f"drive and gain: their LayerNorm output (mean over images) and LayerNorm gain.\n")
    print("| run | group | cells | silent | rare | rate (target) | excitability (cap) | at cap | LayerNorm bias "
          "| silent cells' drive | silent cells' gain |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    nets = []
    for run in args.runs:
        config = yaml.safe_load((run / "config.yaml").read_text())
        plasticity = as_plasticity(config["model"].get("plasticity"))
        net, norm = load_net(run)
        if not isinstance(net, BioNIC):
            raise SystemExit(f"{run}: not a BioNIC run ({type(net).__name__} has no laminar groups)")
        nets.append((str(run), net, norm, plasticity))
    for seed in range(args.untrained):
        torch.manual_seed(seed)
        nets.append((f"untrained, seed {seed}", BioNIC().eval(), nets[0][2], Plasticity()))
    for name, net, norm, plasticity in nets:
        rates, drive = activity_and_drive(net, norm, val)
        for row in group_stats(net, rates, plasticity.max_excitability, drive):
            bias, silent_drive, silent_gain = ("" if row[k] is None else f"{row[k]:+.2f}"
                                               for k in ("ln_bias", "silent_drive", "silent_gain"))
            print(f"| {name} | {row['group']} | {row['cells']} | {row['silent']} | {row['rare']} | "
                  f"{row['rate']:.3f} ({plasticity.target_rate}) | {row['excitability']:+.2f} "
                  f"({plasticity.max_excitability}) | {row['at_cap']} | {bias} | {silent_drive} | {silent_gain} |")


if __name__ == "__main__":
    main()
