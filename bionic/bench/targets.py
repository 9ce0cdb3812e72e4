"""The one table of targets, each a ratio or a bound checked against the figures of the same run
(ratios, so the machine cancels out)."""

from __future__ import annotations

import operator
from typing import Callable, NamedTuple


class Target(NamedTuple):
    name: str  # the key in bench.json's "targets"
    what: str
    measure: Callable[[dict], float | None]  # from the result; None = not measured in this run
    op: str
    limit: float


OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge}


def figure(result: dict, *keys):
    """result[k1][k2]..., None when any level is missing or None (that figure was not measured)."""
    for key in keys:
        if not isinstance(result, dict) or result.get(key) is None:
            return None
        result = result[key]
    return result


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


TARGETS = (
    Target("bionic_step_vs_baseline", "BioNIC step / baseline step (same batch size)",
           lambda r: ratio(figure(r, "train", "bionic", "step_ms"), figure(r, "train", "baseline", "step_ms")),
           "<=", 1.3),
    Target("plasticity_share", "plasticity hooks / BioNIC step",
           lambda r: figure(r, "train", "bionic", "plasticity_share"), "<=", 0.10),
    Target("data_vs_model", "data pipeline samples/s / fastest model's training samples/s",
           lambda r: r["data"]["samples_per_s"] / r["data"]["model_samples_per_s"], ">=", 5.0),
    Target("cached_load_s", "cached FER-2013 load (s)", lambda r: r["data"]["cached_load_s"], "<", 2.0),
    Target("bionic_epoch_vs_floor", "BioNIC training epoch / its FLOP floor (all cores)",
           lambda r: figure(r, "epoch", "bionic", "vs_floor"), "<=", 2.5),
    Target("baseline_epoch_vs_floor", "baseline training epoch / its FLOP floor (all cores)",
           lambda r: figure(r, "epoch", "baseline", "vs_floor"), "<=", 2.5),
    Target("matrix_parallel_speedup", "short matrix: jobs=1 wall / jobs=2 wall",
           lambda r: figure(r, "matrix", "speedup"), ">=", 1.7),
    Target("startup_s", "fit: process start to first training step, cached data (s)",
           lambda r: figure(r, "startup", "startup_s"), "<=", 5.0),
)


def check_targets(result: dict, targets=TARGETS) -> dict:
    """bench.json's "targets": each target's value, its limit, and pass (None = not measured)."""
    out = {}
    for t in targets:
        value = t.measure(result)
        passed = None if value is None else bool(OPS[t.op](value, t.limit))
        out[t.name] = {"what": t.what, "value": value, "target": f"{t.op} {t.limit:g}", "pass": passed}
    return out
