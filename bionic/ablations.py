"""The ablation matrix: every variant x seed, fit then test, resumable, several at once.

`python -m bionic ablations [--seeds 0 1 2] [--epochs N] [--variants a b] [--runs runs]
                            [--jobs N] [--dry-run] [--root DIR] [-- extra LightningCLI args]`
`python -m bionic sweep-agent --variant V --seed S [--epochs N] [--runs runs] [-- extra]`

A variant is a list of LightningCLI config files: `baseline` and `bionic` are the two
configs/ recipes, and every ablations/no_*.yaml or ablations/control_*.yaml is applied on
top of configs/bionic.yaml (the variant's name is the file's stem). A configs/bionic_*.yaml
or configs/baseline_*.yaml (`bionic_wide`) is a recipe of its own that runs only when named
(--variants), so the matrix stays baseline, bionic, the ablations and the controls. Each run goes through
the same entry point a user calls by hand, in its own directory RUNS/<variant>/seed_<s>/:

    python -m bionic fit  --config ... --seed_everything S --trainer.default_root_dir DIR ...
    python -m bionic test --config DIR/config.yaml --ckpt_path DIR/checkpoints/best.ckpt ...

Resuming is keyed on files in the run directory: metrics.json (written atomically by
`test`) means done; `fit.done` (written here when fit exits 0) means only the test is
left; otherwise fit runs again and the CLI resumes it from checkpoints/last.ckpt.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bionic.errors import BionicError
from bionic.run_files import BEST, CONFIG, LAST, METRICS

# How a run calls the project's own entry point; tests swap in a fake program.
ENTRY = [sys.executable, "-m", "bionic"]
DEFAULT_SEEDS = (0, 1, 2)
FIT_DONE = "fit.done"
LOG = "run.log"
# A matrix run's W&B identity comes from the flags below (and the CLI's id per run
# directory), never from a W&B run that happens to be set in the parent's environment.
# Only the sweep agent keeps them: there they name the sweep's run, for fit and test alike.
WANDB_RUN_ENV = ("WANDB_RUN_ID", "WANDB_SWEEP_ID", "WANDB_SWEEP_PARAM_PATH", "WANDB_RESUME")
# Grace period for runs to finish their own SIGINT shutdown (and save) after Ctrl-C.
STOP_GRACE_S = 30.0


# ---------------------------------------------------------------------------- the matrix
@dataclass(frozen=True)
class Variant:
    name: str
    configs: tuple[str, ...]  # LightningCLI --config files, applied in order
    family: str  # "baseline" | "bionic" | "ablation" | "control" | "recipe" (run only when named)

    @property
    def in_matrix(self) -> bool:
        return self.family != "recipe"


@dataclass(frozen=True)
class Run:
    variant: Variant
    seed: int
    dir: Path

    @property
    def name(self) -> str:  # the W&B run name
        return f"{self.variant.name}-s{self.seed}"


def default_root() -> Path:
    """The repository whose configs/ define the variants: the working directory if it
    has configs/bionic.yaml or configs/baseline.yaml, else the checkout this package lives in."""
    for root in (Path("."), Path(__file__).resolve().parents[1]):
        if (root / "configs" / "bionic.yaml").is_file() or (root / "configs" / "baseline.yaml").is_file():
            return root
    raise BionicError("no configs/bionic.yaml or configs/baseline.yaml here; run from the repository root or pass --root")


def discover_variants(root: Path) -> dict[str, Variant]:
    """Variants in matrix order: baseline, bionic, the no_* ablations, the controls; then the
    other recipes, configs/bionic_*.yaml and configs/baseline_*.yaml (not in the matrix unless named)."""
    root = Path(root)
    configs, ablations = root / "configs", root / "ablations"
    found: dict[str, Variant] = {}
    if (configs / "baseline.yaml").is_file():
        found["baseline"] = Variant("baseline", (str(configs / "baseline.yaml"),), "baseline")
    bionic = configs / "bionic.yaml"
    if bionic.is_file():
        found["bionic"] = Variant("bionic", (str(bionic),), "bionic")
        for prefix, family in (("no_", "ablation"), ("control_", "control")):
            for path in sorted(ablations.glob(f"{prefix}*.yaml")):
                found[path.stem] = Variant(path.stem, (str(bionic), str(path)), family)
    for path in sorted([*configs.glob("baseline_*.yaml"), *configs.glob("bionic_*.yaml")]):
        found[path.stem] = Variant(path.stem, (str(path),), "recipe")
    if not found:
        raise BionicError(f"no variant configs under {root} (configs/baseline.yaml, configs/bionic.yaml); pass --root DIR")
    return found


def matrix_of(variants: dict[str, Variant]) -> dict[str, Variant]:
    """The variants of the ablation matrix (what runs when none is named): all but the recipes."""
    return {n: v for n, v in variants.items() if v.in_matrix}


def plan(root: Path, runs: Path, seeds=DEFAULT_SEEDS, names=None) -> list[Run]:
    """All (variant, seed) runs, seed-major: every variant's seed 0 comes before any seed 1,
    so a matrix stopped halfway already holds a complete single-seed comparison."""
    variants = discover_variants(root)
    if names:
        unknown = [n for n in names if n not in variants]
        if unknown:
            raise BionicError(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(variants)}")
        variants = {n: variants[n] for n in variants if n in set(names)}
    else:
        variants = matrix_of(variants)
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if not seeds or any(s < 0 for s in seeds):
        raise BionicError(f"seeds must be non-negative integers, got {seeds}; e.g. --seeds 0 1 2")
    return [Run(v, s, Path(runs) / v.name / f"seed_{s}") for s in seeds for v in variants.values()]


def fit_command(run: Run, epochs: int | None = None, extra=()) -> list[str]:
    cmd = [*ENTRY, "fit"]
    for config in run.variant.configs:
        cmd += ["--config", config]
    cmd += ["--seed_everything", str(run.seed), "--trainer.default_root_dir", str(run.dir)]
    if epochs is not None:
        cmd += ["--trainer.max_epochs", str(epochs)]
    tags = list(dict.fromkeys([run.variant.name, run.variant.family, f"seed_{run.seed}"]))
    cmd += ["--wandb.group", run.variant.name, "--wandb.name", run.name,
            "--wandb.job_type", "ablation", "--wandb.tags", json.dumps(tags)]
    return cmd + list(extra)  # last, so the user's overrides win


def evaluate_command(run: Run, extra=()) -> list[str]:
    """`test` of the run's best checkpoint, with the config fit saved (so the same data split).

    The user's overrides follow, less their list appends (`--trainer.callbacks+=X`): the saved
    config already holds what fit appended, and appending it again would, for a stateful
    callback such as EMAWeightAveraging, make two that Lightning refuses to restore."""
    kept, args = [], list(extra)
    while args:
        arg = args.pop(0)
        if arg.startswith("--") and "+" in arg.split("=", 1)[0]:
            if "=" not in arg and args:
                args.pop(0)  # `--key+ value`: the value goes with it
            continue
        kept.append(arg)
    return [*ENTRY, "test", "--config", str(run.dir / CONFIG),
            "--ckpt_path", str(run.dir / BEST), *kept]


def state(run: Run) -> str:
    """done | fitted (only the test is left) | interrupted (fit resumes) | new."""
    if (run.dir / METRICS).is_file():
        return "done"
    if (run.dir / FIT_DONE).is_file() and (run.dir / BEST).is_file():
        return "fitted"
    if (run.dir / LAST).is_file():
        return "interrupted"
    return "new"


# ---------------------------------------------------------------------------- running
@dataclass
class Outcome:
    run: Run
    status: str  # "done" | "skipped" | "failed" | "stopped"
    seconds: float = 0.0
    note: str = ""
    acc: float | None = None


@dataclass
class Runner:
    """Runs planned runs, `jobs` at a time, each with its own slot environment."""

    epochs: int | None = None
    extra: list[str] = field(default_factory=list)
    jobs: int = 1
    keep_wandb_run: bool = False  # sweep agent: fit and test join the agent's W&B run
    out: object = None  # stream for progress lines (default stdout)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._procs: set[subprocess.Popen] = set()
        self.slot_env: list[dict] = [{}]
        self.out = self.out or sys.stdout

    def say(self, line: str) -> None:
        with self._lock:
            print(line, file=self.out, flush=True)

    # -- one subprocess, its output appended to the run's log
    def call(self, cmd: list[str], log_path: Path, env: dict) -> int:
        with open(log_path, "a") as log:
            log.write(f"\n==== {datetime.now():%Y-%m-%d %H:%M:%S} $ {shlex.join(cmd)}\n")
            log.flush()
            with self._lock:
                if self._stop.is_set():
                    return -2
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
                self._procs.add(proc)
            try:
                return proc.wait()
            finally:
                with self._lock:
                    self._procs.discard(proc)

    def env_for(self, slot: int) -> dict:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if not self.keep_wandb_run:
            for key in WANDB_RUN_ENV:
                env.pop(key, None)
        env.update(self.slot_env[slot])
        return env

    def execute(self, k: int, n: int, run: Run, slot: int) -> Outcome:
        tag = f"[{k}/{n}] {run.variant.name} seed {run.seed}"
        run.dir.mkdir(parents=True, exist_ok=True)
        log = run.dir / LOG
        start = time.monotonic()
        before = state(run)
        if before in ("new", "interrupted"):
            how = "fit (resuming from checkpoints/last.ckpt)" if before == "interrupted" else "fit"
            self.say(f"{tag}: {how}  log: {log}")
            cmd = fit_command(run, self.epochs, self.extra)
            rc = self.call(cmd, log, self.env_for(slot))
            if rc != 0:
                return self._failed(run, start, "fit", rc, log)
            (run.dir / FIT_DONE).write_text(json.dumps({"command": cmd, "finished": datetime.now().isoformat()}) + "\n")
        self.say(f"{tag}: test checkpoints/best.ckpt{'  log: ' + str(log) if before == 'fitted' else ''}")
        rc = self.call(evaluate_command(run, self.extra), log, self.env_for(slot))
        if rc != 0:
            return self._failed(run, start, "test", rc, log)
        if not (run.dir / METRICS).is_file():
            return Outcome(run, "failed", time.monotonic() - start, f"test wrote no {METRICS}; see {log}")
        outcome = Outcome(run, "done", time.monotonic() - start, acc=read_acc(run))
        acc = f"  test/acc {outcome.acc:.4f}" if outcome.acc is not None else ""
        self.say(f"{tag}: done in {fmt_seconds(outcome.seconds)}{acc}")
        return outcome

    def _failed(self, run, start, step, rc, log) -> Outcome:
        if self._stop.is_set():
            return Outcome(run, "stopped", time.monotonic() - start, f"{step} stopped; rerun to resume")
        last = last_line(log)
        self.say(f"FAILED {run.variant.name} seed {run.seed}: {step} exited {rc}; log: {log}")
        return Outcome(run, "failed", time.monotonic() - start, f"{step} exit {rc}: {last}  (log: {log})")

    def run_all(self, runs: list[Run]) -> list[Outcome]:
        n = len(runs)
        outcomes: dict[int, Outcome] = {}
        todo = []
        for k, run in enumerate(runs, 1):
            if state(run) == "done":
                note = skip_note(run, self.epochs)
                self.say(f"[{k}/{n}] {run.variant.name} seed {run.seed}: skipped ({METRICS} exists{note})")
                outcomes[k] = Outcome(run, "skipped", note=note.strip("; "), acc=read_acc(run))
            else:
                todo.append((k, run))
        jobs = max(1, min(self.jobs, len(todo) or 1))
        self.slot_env = slot_envs(jobs)
        slots: queue.Queue[int] = queue.Queue()
        for slot in range(jobs):
            slots.put(slot)

        def work(k, run):
            if self._stop.is_set():
                return Outcome(run, "stopped", note="not started")
            slot = slots.get()
            try:
                return self.execute(k, n, run, slot)
            except Exception as err:  # e.g. the run directory cannot be written: the others still run
                self.say(f"FAILED {run.variant.name} seed {run.seed}: {type(err).__name__}: {err}")
                return Outcome(run, "failed", note=f"{type(err).__name__}: {err}")
            finally:
                slots.put(slot)

        def on_sigint(signum, frame):
            # Mark the stop before anything else: the running fits got the same Ctrl-C, and a
            # worker must see their exit as "stopped", not failed, and start nothing new.
            self._stop.set()
            raise KeyboardInterrupt

        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, on_sigint) if in_main else None
        pool = futures.ThreadPoolExecutor(max_workers=jobs)
        pending = {pool.submit(work, k, run): k for k, run in todo}
        try:
            for _ in futures.as_completed(pending):
                pass
        except KeyboardInterrupt:
            self.stop()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            if in_main:
                signal.signal(signal.SIGINT, previous)
        for fut, k in pending.items():
            ran = fut.done() and not fut.cancelled()
            outcomes[k] = fut.result() if ran else Outcome(runs[k - 1], "stopped", note="not started")
        return [outcomes[k] for k in sorted(outcomes)]

    def stop(self) -> None:
        """Ctrl-C: start nothing new; the running fits got the same SIGINT from the terminal
        and stop cleanly (last.ckpt stays); whatever still runs after the grace is terminated."""
        self._stop.set()
        self.say(f"interrupted: stopping; waiting up to {STOP_GRACE_S:.0f}s for running runs to exit")
        deadline = time.monotonic() + STOP_GRACE_S
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


# ---------------------------------------------------------------------------- helpers
def visible_gpus() -> list[str]:
    """GPU ids a job may be pinned to: CUDA_VISIBLE_DEVICES if set, else torch's count."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # no torch / no driver: CPU only
        return []


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def slot_envs(jobs: int, gpus: list[str] | None = None, cpus: int | None = None) -> list[dict]:
    """Per-slot environment: one GPU per job (round robin when jobs > GPUs), and the CPU
    threads divided between jobs so N parallel runs do not each start one thread per core."""
    if jobs <= 1:
        return [{}]
    gpus = visible_gpus() if gpus is None else gpus
    threads = str(max(1, (cpus or cpu_count()) // jobs))
    envs = []
    for slot in range(jobs):
        env = {}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
        if "OMP_NUM_THREADS" not in os.environ:  # a user's explicit choice wins
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = threads
        envs.append(env)
    return envs


def read_acc(run: Run) -> float | None:
    try:
        return float(json.loads((run.dir / METRICS).read_text())["test/acc"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def skip_note(run: Run, epochs: int | None) -> str:
    """Say so when a finished run was trained with another epoch budget than asked for."""
    if epochs is None:
        return ""
    try:
        had = json.loads((run.dir / METRICS).read_text())["config"]["trainer"]["max_epochs"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return "" if had == epochs else f"; it was trained with max_epochs={had}, not {epochs}: use another --runs to retrain"


def last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def summary(outcomes: list[Outcome]) -> str:
    rows = [("variant", "seed", "status", "time", "test/acc", "note")]
    for o in outcomes:
        acc = f"{o.acc:.4f}" if o.acc is not None else "-"
        rows.append((o.run.variant.name, str(o.run.seed), o.status, fmt_seconds(o.seconds) if o.seconds else "-", acc, o.note))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + ("  " + r[5] if r[5] else "") for r in rows]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed", "stopped")}
    lines.append(", ".join(f"{v} {k}" for k, v in counts.items() if v) or "nothing to do")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- entry points
def split_extra(argv: list[str]) -> tuple[list[str], list[str]]:
    """Everything after the first `--` goes to LightningCLI untouched."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def at_least(low: int):
    """An argparse type: an integer >= low."""
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


positive, non_negative = at_least(1), at_least(0)


def matrix_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bionic ablations",
                                description="Run every variant x seed (fit, then test the best checkpoint); "
                                            "finished runs are skipped, interrupted ones resumed. "
                                            "Arguments after `--` go to every fit and test.")
    p.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    p.add_argument("--epochs", type=positive, default=None, help="--trainer.max_epochs for every fit")
    p.add_argument("--variants", nargs="+", default=None,
                   help="only these variants: ablation file names, baseline, bionic (--list prints them; default: all)")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="output folder (default: runs)")
    p.add_argument("--jobs", type=positive, default=1, help="runs at once (one GPU each when several)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and commands, run nothing")
    p.add_argument("--root", type=Path, default=None, help="repository with configs/ and ablations/")
    p.add_argument("--list", action="store_true", help="print the variant names and exit")
    return p


def agent_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bionic sweep-agent",
                                description="Run one (variant, seed) of the matrix; the command a W&B sweep agent calls.")
    p.add_argument("--variant", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--epochs", type=positive, default=None)
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--root", type=Path, default=None)
    return p


def agent_runs(args) -> list[Run]:
    return plan(args.root or default_root(), args.runs, [args.seed], [args.variant])


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "sweep-agent":
            return agent_main(argv[1:])
        return matrix_main(argv)
    except BionicError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def matrix_main(argv: list[str]) -> int:
    own, extra = split_extra(argv)
    args = matrix_parser().parse_args(own)
    root = args.root or default_root()
    if args.list:
        print("\n".join(discover_variants(root)))
        return 0
    runs = plan(root, args.runs, args.seeds, args.variants)
    if args.dry_run:
        return dry_run(runs, args.epochs, extra)
    n_variants = len({r.variant.name for r in runs})
    print(f"ablation matrix: {n_variants} variants x {len(set(r.seed for r in runs))} seeds = {len(runs)} runs "
          f"into {args.runs}/, {args.jobs} at a time", flush=True)
    return finish(Runner(args.epochs, extra, args.jobs).run_all(runs))


def agent_main(argv: list[str]) -> int:
    own, extra = split_extra(argv)
    args = agent_parser().parse_args(own)
    in_sweep = "WANDB_SWEEP_ID" in os.environ
    # Sweep runs are only useful online (the agent tracks them); user flags after `--` still win.
    extra = (["--wandb.mode", "online"] if in_sweep else []) + extra
    runner = Runner(args.epochs, extra, jobs=1, keep_wandb_run=in_sweep)
    return finish(runner.run_all(agent_runs(args)))


def dry_run(runs: list[Run], epochs, extra) -> int:
    for k, run in enumerate(runs, 1):
        st = state(run)
        print(f"[{k}/{len(runs)}] {run.variant.name} seed {run.seed}: {st}")
        if st in ("new", "interrupted"):
            print("  " + shlex.join(fit_command(run, epochs, extra)))
        if st != "done":
            print("  " + shlex.join(evaluate_command(run, extra)))
    return 0


def finish(outcomes: list[Outcome]) -> int:
    print("\n" + summary(outcomes), flush=True)
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        print(f"failed: {o.run.variant.name} seed {o.run.seed}: {o.note}", file=sys.stderr)
    if any(o.status == "stopped" for o in outcomes):
        return 130
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
