"""Inference of a trained variant: one image's latency and a large batch's throughput."""

from __future__ import annotations

import torch

from bionic.bench.timers import median_s

INFERENCE_VARIANTS = ("baseline", "bionic", "bionic_wide")  # no_plasticity is bionic at inference


def time_inference(model, device, reps: int, infer_batch: int) -> dict:
    model = model.to(device).eval()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    one, big = torch.randn(1, 1, 48, 48, device=device), torch.randn(infer_batch, 1, 48, 48, device=device)
    with torch.inference_mode():
        one_s = median_s(lambda: model(one), max(5, reps), device, warmup=2)
        big_s = median_s(lambda: model(big), max(2, reps // 4), device, warmup=2)
    return {
        "latency_ms": 1e3 * one_s,
        "batch": infer_batch,
        "batch_ms": 1e3 * big_s,
        "samples_per_s": infer_batch / big_s,
        "gpu_peak_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }
