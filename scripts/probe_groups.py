"""Where a trained network's representation is best: a linear probe on each stage's activity.

    python scripts/probe_groups.py results/headline/runs --data ../shared/data/fer2013 \
        --models bionic baseline --seeds 0 1 2 3 4 > results/headline/probes.md

For every run folder (config.yaml + best.ckpt) it takes the activity of each stage of the network
on the training and validation images (no augmentation, eval mode): for BioNIC the front end's
features, each laminar group's rates (A = 4P, B = 23P, C = L5, D = L6) and L5 and L6 side by side
(C+D), for the baseline the pooled conv features, each dense layer and the two side by side
(`--stages` picks some). A linear read-out (softmax regression, features standardized on the
training images, L2 penalty, full-batch L-BFGS) is fitted on the training images of each stage
and scored on the validation images. The network's own read-out is scored beside it. The test
split is not used: this is a diagnostic for the search of docs/tuning.md, which is judged on
validation.

A stage whose probe scores above the network's own read-out holds information that the later
stages lose or the read-out does not use.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bionic.data.fer2013 import read_fer2013
from bionic.nets import BaselineCNN, BioNIC
from test_set_checks import load_net, normalized


def stages(net: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each stage's activity for a batch of normalized images, in the order the data flows."""
    out = {}
    if isinstance(net, BioNIC):
        h = out["front end"] = net.front(x)
        for name, group in net.laminar_groups():
            h = out[f"group {name}"] = group(h)
        # The last two (L5 and L6) are both the column's output layers; the paper reads out the last only.
        last_two = net.group_names[-2:]
        out["groups " + "+".join(last_two)] = torch.cat([out[f"group {name}"] for name in last_two], 1)
        out["logits"] = net.readout(net.readout_input([out[f"group {name}"] for name in net.group_names]))
    elif isinstance(net, BaselineCNN):
        h = out["front end"] = net.features(x).flatten(1)
        dense = 0
        for layer in net.classifier:
            h = layer(h)
            if isinstance(layer, nn.ReLU):  # each dense layer ends in its ReLU
                dense += 1
                out[f"dense {dense}"] = h
        out["dense 1+2"] = torch.cat([out["dense 1"], out["dense 2"]], 1)  # beside BioNIC's C+D
        out["logits"] = h
    else:
        raise SystemExit(f"no stages known for {type(net).__name__}")
    return out


@torch.no_grad()
def activity(net: nn.Module, norm: dict, images: torch.Tensor, batch: int = 512) -> dict[str, torch.Tensor]:
    parts: dict[str, list[torch.Tensor]] = {}
    for i in range(0, len(images), batch):
        for name, h in stages(net, normalized(images[i:i + batch], norm)).items():
            parts.setdefault(name, []).append(h)
    return {name: torch.cat(h) for name, h in parts.items()}


def probe(train: torch.Tensor, y_train: torch.Tensor, val: torch.Tensor, y_val: torch.Tensor,
          l2: float = 1e-4, steps: int = 200) -> float:
    """Validation accuracy of softmax regression fitted on `train` (standardized with its statistics)."""
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    a, b = (train - mean) / std, (val - mean) / std
    w = torch.zeros(a.shape[1], int(y_train.max()) + 1, requires_grad=True)
    bias = torch.zeros(w.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([w, bias], max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def loss():
        opt.zero_grad()
        value = F.cross_entropy(a @ w + bias, y_train) + l2 * w.pow(2).sum()
        value.backward()
        return value

    opt.step(loss)
    with torch.no_grad():
        return float(((b @ w + bias).argmax(1) == y_val).float().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", type=Path)
    p.add_argument("--data", required=True)
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--stages", nargs="+", default=None,
                   help="probe only these stages, e.g. 'group D' 'groups C+D' (default: every stage)")
    args = p.parse_args()
    torch.set_num_threads(1)

    splits = read_fer2013(args.data, None, 0.1, 0, False)
    images, labels = splits.images, {role: torch.as_tensor(y) for role, y in splits.labels.items()}
    print(f"# Linear probes on each stage: {args.runs}, seeds {' '.join(map(str, args.seeds))}\n")
    print("Command: `python scripts/probe_groups.py " + " ".join(
        [str(args.runs), "--data", args.data, "--models", *args.models, "--seeds", *map(str, args.seeds)]
        + (["--stages", *(f"'{name}'" for name in args.stages)] if args.stages else [])) + "`\n")
    print(f"Validation accuracy % (mean ± std over seeds) of a linear probe fitted on each stage's activity on "
          f"the {len(labels['train']):,} training images (no augmentation), scored on the "
          f"{len(labels['val']):,} validation images; `own read-out` is the network's own output layer on the "
          f"same validation images (its best checkpoint).\n")
    for model in args.models:
        scores: dict[str, list[float]] = {}
        widths: dict[str, int] = {}
        for seed in args.seeds:
            run = args.runs / model / f"seed_{seed}"
            net, norm = load_net(run)
            train, val = activity(net, norm, images["train"]), activity(net, norm, images["val"])
            own = float((val["logits"].argmax(1) == labels["val"]).float().mean())
            recorded = json.loads((run / "metrics.json").read_text())["best_val_acc"]
            if abs(own - recorded) > 1e-4:
                raise SystemExit(f"{run}: its best checkpoint scores {own:.4f} on this validation split, not the "
                                 f"{recorded:.4f} it recorded; is --data the FER-2013 root it was trained on?")
            scores.setdefault("own read-out", []).append(own)
            for name in train:
                if name == "logits" or (args.stages and name not in args.stages):
                    continue
                widths[name] = train[name].shape[1]
                scores.setdefault(name, []).append(probe(train[name], labels["train"], val[name], labels["val"]))
            print(f"{model} seed {seed}: probed", file=sys.stderr, flush=True)  # minutes a run: show progress
        print(f"## {model}\n")
        print("| stage | width | probe val % | per seed |")
        print("|---|---|---|---|")
        for name, values in scores.items():
            v = 100 * np.array(values)
            std = f" ± {v.std(ddof=1):.2f}" if len(v) > 1 else ""
            print(f"| {name} | {widths.get(name, 7):,} | {v.mean():.2f}{std} | {', '.join(f'{x:.2f}' for x in v)} |")
        print()


if __name__ == "__main__":
    main()
