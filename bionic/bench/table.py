"""The printed report: bench.json's figures as tables on the console (or a log's 120 columns)."""

from __future__ import annotations

from bionic.bench.epoch import EPOCH_VARIANTS

VERDICT = {True: "[green]pass[/green]", False: "[red]FAIL[/red]", None: "not measured"}


def print_table(result: dict) -> None:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # a log file: wide enough that the tables do not wrap
        console = Console(width=120)
    for part in report(result):
        console.print(part)


def report(result: dict) -> list:
    """The printed parts in order: rich tables and lines of text."""
    parts = [machine_line(result), training_table(result), inference_table(result), data_line(result),
             targets_table(result["targets"])]
    if result.get("epoch"):
        parts.append(epoch_table(result["epoch"]))
    if result.get("startup"):
        st = result["startup"]
        parts.append(f"start-up ({st['variant']} fit to its first step): "
                     + ", ".join(f"{x:.1f} s" for x in st["runs_s"]) + f"; best {st['startup_s']:.1f} s")
    if result.get("matrix"):
        parts += matrix_lines(result["matrix"])
    return parts


def machine_line(result: dict) -> str:
    m = result["machine"]
    return (f"[bold]bench[/bold]: {m['cpu']}, {m['cores_usable']} cores, torch {m['torch']} "
            f"({m['torch_threads']} threads), device {result['device']}"
            + (f" ({m['gpu']})" if m["gpu"] else "")
            + f"; load average {result['load']['start']} -> {result['load']['end']}")


def variant_table(title: str, *columns: str):
    """A table of one row per variant: names on the left, figures on the right."""
    from rich.table import Table

    t = Table(title=title)
    for col in ("variant", *columns):
        t.add_column(col, justify="left" if col == "variant" else "right")
    return t


def training_table(result: dict):
    s = result["settings"]
    t = variant_table(f"training, batch {s['batch_size']} "
                      f"(median of {s['steps']} steps after {s['warmup']} x {s['repeats']} round(s))",
                      "params", "step ms", "samples/s", "loop samples/s", "plasticity ms", "x FLOP floor",
                      "peak RSS MB", "GPU MB")
    for name, v in result["train"].items():
        t.add_row(name, f"{v['params']:,}", f"{v['step_ms']:.1f}", f"{v['samples_per_s']:.0f}",
                  fmt(v["loop_samples_per_s"], ".0f"), f"{v['plasticity_ms']:.2f}", fmt(v["step_vs_floor"], ".1f"),
                  fmt(v["rss_peak_mb"], ".0f"), fmt(v["gpu_peak_mb"], ".0f"))
    return t


def inference_table(result: dict):
    t = variant_table("inference", "1 image ms", f"samples/s at {result['settings']['infer_batch']}", "GPU MB")
    for name, v in result["inference"].items():
        t.add_row(name, f"{v['latency_ms']:.2f}", f"{v['samples_per_s']:.0f}", fmt(v["gpu_peak_mb"], ".0f"))
    return t


def data_line(result: dict) -> str:
    d = result["data"]
    return (f"data: first load {d['first_load_s']:.2f} s, cached load {d['cached_load_s']:.2f} s, "
            f"{d['batches_per_s']:.0f} batches/s = {d['samples_per_s']:.0f} samples/s with augmentation; "
            f"process peak RSS {result['memory']['peak_rss_mb']:.0f} MB; fp32 GEMM "
            f"{result['floor']['gemm_fp32_flops_per_s'] / 1e9:.0f} GFLOP/s (the FLOP floor's rate)")


def targets_table(targets: dict):
    from rich.table import Table

    t = Table(title="targets")
    for col in ("target", "value", "limit", ""):
        t.add_column(col)
    for v in targets.values():
        t.add_row(v["what"], fmt(v["value"], ".3g"), v["target"], VERDICT[v["pass"]])
    return t


def epoch_table(ep: dict):
    t = variant_table(f"one training epoch, {ep['threads']} thread(s) (fp32 GEMM "
                      f"{ep['gemm_fp32_flops_per_s'] / 1e9:.0f} GFLOP/s)",
                      "samples", "train s", "validation s", "FLOP floor s", "x floor")
    for name in EPOCH_VARIANTS:
        v = ep[name]
        t.add_row(name, f"{v['samples']:,}", f"{v['train_s']:.1f}", f"{v['val_s']:.1f}", f"{v['floor_s']:.2f}",
                  f"{v['vs_floor']:.2f}")
    return t


def matrix_lines(mx: dict) -> list[str]:
    lines = [f"matrix {label} (jobs={v['jobs']}): {v['wall_s']:.0f} s, {v['runs_done']} runs done, "
             f"exit {v['returncode']}" for label, v in mx["modes"].items()]
    if mx.get("speedup"):
        lines.append(f"matrix speedup: {mx['speedup']:.2f}x")
    return lines


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)
