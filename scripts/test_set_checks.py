"""Two checks on how far a test-split difference between two models can be trusted.

    python scripts/test_set_checks.py results/headline/runs --data ../shared/data/fer2013 \
        --models bionic baseline bionic_wide --seeds 0 1 2 > results/headline/test_set_checks.md

For every run folder (config.yaml + best.ckpt) it scores each validation and test image again and
checks the result against the run's metrics.json, then reports

1. accuracy on the images that have a pixel-identical twin in the training split and on those that
   do not (FER-2013 has about 1,500 duplicate groups, some across splits: a known flaw), and by how
   close the nearest training image comes (a copy at another brightness, contrast or mirrored counts
   as a near twin), for each split, so that one can see whether validation sits closer to the
   training images than the test split does;
2. each model's difference from the first one named, paired by seed, with three 95 % intervals:
   over seeds only (what `report` gives), over test images only, and over both (seeds and
   images resampled together), because every seed is scored on the same 3,589 images. The seeds
   interval is `report`'s paired t-interval; the two bootstrap intervals are percentile intervals;
3. how much picking the best epoch on validation flatters validation accuracy: the best epoch's
   accuracy less the mean over the 11 epochs around it (from history.json).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import yaml
from jsonargparse import ArgumentParser
from torch import nn

from bionic.data.fer2013 import read_fer2013
from bionic.report import paired
from bionic.runs import read_checkpoint


def load_net(run: Path) -> tuple[nn.Module, dict]:
    """The run's network with its best weights, and the normalization its data module recorded."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    parser = ArgumentParser()
    parser.add_subclass_arguments(nn.Module, "net")
    net = parser.instantiate(parser.parse_object({"net": config["model"]["net"]})).net
    ckpt = read_checkpoint(run / "best.ckpt")
    net.load_state_dict({k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")})
    return net.eval(), ckpt["FER2013DataModule"]


def normalized(images: torch.Tensor, norm: dict) -> torch.Tensor:
    """uint8 images [N,48,48] as the network's input [N,1,48,48], with the run's normalization."""
    return (images.unsqueeze(1).float() / 255 - norm["mean"]) / norm["std"]


@torch.no_grad()
def correct(net: nn.Module, norm: dict, images: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    x = normalized(images, norm)
    pred = torch.cat([net(x[i:i + 512]).argmax(1) for i in range(0, len(x), 512)])
    return (pred == labels).numpy()


def twins_in(images: torch.Tensor, reference: torch.Tensor) -> np.ndarray:
    """For each image, whether a pixel-identical image is in `reference`."""
    digest = lambda im: hashlib.sha1(im.numpy().tobytes()).digest()  # noqa: E731
    seen = {digest(im) for im in reference}
    return np.array([digest(im) in seen for im in images])


def nearest_similarity(images: torch.Tensor, reference: torch.Tensor, chunk: int = 4096) -> np.ndarray:
    """For each image, the largest cosine similarity of its centred pixels to a reference image's or to
    its mirror's: 1 for a twin, a copy at another brightness or contrast, or a mirrored copy."""
    def unit(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1).float()
        x = x - x.mean(1, keepdim=True)
        return x / x.norm(dim=1, keepdim=True).clamp_min(1e-6)

    query, best = unit(images), torch.full((len(images),), -1.0)
    for ref in (unit(reference), unit(reference.flip(-1))):
        for i in range(0, len(ref), chunk):
            best = torch.maximum(best, (query @ ref[i:i + chunk].T).max(1).values)
    return best.numpy()


def intervals(delta: np.ndarray, draws: int, rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    """95 % intervals of the mean of delta[seed, image] (in points): over seeds (t), images, both (bootstrap)."""
    seeds, n = delta.shape
    t = paired(dict(enumerate(100 * delta.mean(1))), dict.fromkeys(range(seeds), 0.0))
    out = {"seeds": (t.lo, t.hi)}
    by_image = delta.mean(0)
    out["images"] = tuple(np.percentile([100 * by_image[rng.integers(0, n, n)].mean() for _ in range(draws)],
                                        [2.5, 97.5]))
    both = [100 * delta[rng.integers(0, seeds, seeds)][:, rng.integers(0, n, n)].mean() for _ in range(draws)]
    out["seeds and images"] = tuple(np.percentile(both, [2.5, 97.5]))
    return out


def selection_optimism(history: list[dict], half: int = 5) -> float:
    """Best validation accuracy less the mean of the epochs within `half` of the best one (points)."""
    val = [row["val/acc"] for row in history if row.get("val/acc") is not None]
    best = int(np.argmax(val))
    return 100 * (val[best] - np.mean(val[max(0, best - half):best + half + 1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", type=Path)
    p.add_argument("--data", required=True)
    p.add_argument("--models", nargs="+", required=True, help="the first is the reference of the differences")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--draws", type=int, default=2000)
    args = p.parse_args()
    torch.set_num_threads(1)

    splits = read_fer2013(args.data, None, 0.1, 0, False)
    twin = {role: twins_in(splits.images[role], splits.images["train"]) for role in ("val", "test")}
    near = {role: nearest_similarity(splits.images[role], splits.images["train"]) for role in ("val", "test")}
    ok: dict[str, dict[str, np.ndarray]] = {}
    optimism: dict[str, list[float]] = {}
    for model in args.models:
        rows = {"val": [], "test": []}
        for seed in args.seeds:
            run = args.runs / model / f"seed_{seed}"
            net, norm = load_net(run)
            for role in rows:
                rows[role].append(correct(net, norm, splits.images[role], splits.labels[role]))
            optimism.setdefault(model, []).append(
                selection_optimism(json.loads((run / "history.json").read_text())))
            recorded = json.loads((run / "metrics.json").read_text())["test/acc"]
            if abs(rows["test"][-1].mean() - recorded) > 1e-4:
                raise SystemExit(f"{run}: rescored test accuracy {rows['test'][-1].mean():.4f} is not its "
                                 f"metrics.json's {recorded:.4f}; is --data the split it was trained on?")
        ok[model] = {role: np.stack(r).astype(float) for role, r in rows.items()}

    print(f"# Test-set checks: {args.runs}, seeds {' '.join(map(str, args.seeds))}\n")
    print("Command: `python scripts/test_set_checks.py " + " ".join(
        [str(args.runs), "--data", args.data, "--models", *args.models, "--seeds", *map(str, args.seeds)]) + "`\n")
    print("## Images with a pixel-identical twin in the training split\n")
    for role in ("val", "test"):
        print(f"- {role}: {twin[role].sum()} of {len(twin[role])} ({100 * twin[role].mean():.1f} %)")
    print("\n| model | val % | val, twin % | val, no twin % | test % | test, twin % | test, no twin % |")
    print("|---|---|---|---|---|---|---|")
    for model, scores in ok.items():
        cells = []
        for role in ("val", "test"):
            s = scores[role]
            cells += [f"{100 * s.mean():.2f}", f"{100 * s[:, twin[role]].mean():.1f}",
                      f"{100 * s[:, ~twin[role]].mean():.2f}"]
        print(f"| {model} | " + " | ".join(cells) + " |")

    ref, rng = args.models[0], np.random.default_rng(0)
    print("\n## Images by how close the nearest training image comes\n")
    print("Cosine similarity of the centred pixels to the nearest training image or its mirror: 1 for a twin, or a "
          "copy at another brightness, contrast or mirrored. Share of each split, then accuracy % (Δ from "
          f"{ref} in points).\n")
    edges = [(-1.0, 0.8, "under 0.80"), (0.8, 0.95, "0.80 to 0.95"), (0.95, 1.01, "over 0.95")]
    print("| split | model | " + " | ".join(name for *_, name in edges) + " |")
    print("|---|---|" + "---|" * len(edges))
    for role in ("val", "test"):
        bins = [(near[role] > lo) & (near[role] <= hi) for lo, hi, _ in edges]
        print(f"| {role} | images | " + " | ".join(f"{b.sum()} ({100 * b.mean():.1f} %)" for b in bins) + " |")
        for model, scores in ok.items():
            cells = [f"{100 * scores[role][:, b].mean():.2f}" + (
                "" if model == ref else f" ({100 * (scores[role][:, b] - ok[ref][role][:, b]).mean():+.2f})")
                for b in bins]
            print(f"| {role} | {model} | " + " | ".join(cells) + " |")

    print(f"\n## Differences from {ref}, paired by seed (points; 95 % intervals: t over seeds, bootstrap over images, {args.draws} draws)\n")
    print("| model | split | Δ | over seeds | over images | over seeds and images |")
    print("|---|---|---|---|---|---|")
    for model in args.models[1:]:
        for role in ("val", "test"):
            delta = ok[model][role] - ok[ref][role]
            ci = intervals(delta, args.draws, rng)
            print(f"| {model} | {role} | {100 * delta.mean():+.2f} | "
                  + " | ".join(f"{lo:+.2f} to {hi:+.2f}" for lo, hi in ci.values()) + " |")

    print("\n## Best epoch against its neighbours on validation (points; per seed)\n")
    for model, values in optimism.items():
        print(f"- {model}: " + ", ".join(f"{v:.2f}" for v in values) + f" (mean {np.mean(values):.2f})")


if __name__ == "__main__":
    main()
