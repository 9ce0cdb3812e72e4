"""The ablation matrix runner and its W&B sweep, without training anything.

A fake `python -m bionic` (FAKE below) stands in for the LightningCLI: it writes the files
fit and test leave in a run directory and records how it was called, so skipping, resuming,
failing and parallel slots are checked through real subprocesses in well under a second each.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bionic import ablations
from bionic.ablations import Runner, discover_variants, fit_command, plan, slot_envs, state, evaluate_command
from bionic.errors import BionicError

REPO = Path(__file__).resolve().parents[1]

FAKE = r'''
import json, os, sys
from pathlib import Path
sub, args = sys.argv[1], sys.argv[2:]
def flag(name):
    return args[args.index(name) + 1] if name in args else None
if sub == "fit":
    run_dir = Path(flag("--trainer.default_root_dir"))
    resumed = (run_dir / "checkpoints" / "last.ckpt").is_file()
else:
    run_dir = Path(flag("--config")).parent
    resumed = False
calls = run_dir / "calls.jsonl"
with open(calls, "a") as f:
    f.write(json.dumps({"sub": sub, "resumed": resumed, "args": args,
                        "env": {k: os.environ.get(k) for k in
                                ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "WANDB_RUN_ID", "PYTHONUNBUFFERED")}}) + "\n")
print(f"fake {sub} in {run_dir}")
if os.environ.get("FAKE_FAIL") and os.environ["FAKE_FAIL"] == f"{run_dir.parent.name}/{run_dir.name}/{sub}":
    print("Traceback: boom", file=sys.stderr)
    sys.exit(3)
if sub == "fit":
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    if os.environ.get("FAKE_SLEEP"):  # a long fit: one epoch's last.ckpt, then training goes on
        (run_dir / "checkpoints" / "last.ckpt").write_text("epoch 0")
        import time; time.sleep(float(os.environ["FAKE_SLEEP"]))
    for name in ("last.ckpt", "best.ckpt"):
        (run_dir / "checkpoints" / name).write_text("ckpt")
    (run_dir / "config.yaml").write_text("seed_everything: 0\n")
else:
    assert flag("--ckpt_path").endswith("best.ckpt")
    (run_dir / "metrics.json").write_text(json.dumps({"test/acc": 0.5, "test/f1_macro": 0.4}))
'''


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture
def repo(tmp_path) -> Path:
    """A stand-in repository: two recipes, two ablations, one control, and files to ignore."""
    root = tmp_path / "repo"
    (root / "configs").mkdir(parents=True)
    (root / "ablations").mkdir()
    for rel in ("configs/baseline.yaml", "configs/bionic.yaml", "ablations/no_b.yaml", "ablations/no_a.yaml",
                "ablations/control_shuffled.yaml", "ablations/notes.yaml", "ablations/README.md",
                "configs/sweep.yaml", "configs/bionic_wide.yaml"):
        (root / rel).write_text("{}\n")
    return root


@pytest.fixture
def fake_entry(tmp_path, monkeypatch):
    script = tmp_path / "fake_bionic.py"
    script.write_text(FAKE)
    monkeypatch.setattr(ablations, "ENTRY", [sys.executable, str(script)])
    for key in ("OMP_NUM_THREADS", "FAKE_FAIL", "FAKE_SLEEP", "WANDB_SWEEP_ID", "WANDB_RUN_ID"):
        monkeypatch.delenv(key, raising=False)
    return script


def calls(run_dir: Path) -> list[dict]:
    path = run_dir / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


# ---------------------------------------------------------------------------- the matrix
def test_matrix_from_the_real_ablation_files():
    """baseline, bionic, every ablations/no_*.yaml and control_*.yaml, each x every seed."""
    no = sorted(p.stem for p in (REPO / "ablations").glob("no_*.yaml"))
    controls = sorted(p.stem for p in (REPO / "ablations").glob("control_*.yaml"))
    assert len(no) >= 9 and len(controls) == 2, "the paper's ablations and both null-model controls"
    runs = plan(REPO, Path("runs"), [0, 1, 2])
    names = ["baseline", "bionic", *no, *controls]
    assert [r.variant.name for r in runs] == names * 3
    assert [r.seed for r in runs] == [0] * len(names) + [1] * len(names) + [2] * len(names)  # seed-major
    assert len({r.dir for r in runs}) == len(runs) == 3 * len(names)
    variants = discover_variants(REPO)
    assert variants["baseline"].configs == (str(REPO / "configs" / "baseline.yaml"),)
    for name in no + controls:
        assert variants[name].configs == (str(REPO / "configs" / "bionic.yaml"), str(REPO / "ablations" / f"{name}.yaml"))


def test_matrix_discovers_files_and_filters(repo):
    assert list(discover_variants(repo)) == ["baseline", "bionic", "no_a", "no_b", "control_shuffled", "bionic_wide"]
    # a recipe of its own (configs/bionic_*.yaml) is not of the matrix: it runs when named
    assert "bionic_wide" not in {r.variant.name for r in plan(repo, repo / "runs", [0])}
    wide = plan(repo, repo / "runs", [0], ["bionic_wide"])
    assert [r.variant.configs for r in wide] == [(str(repo / "configs" / "bionic_wide.yaml"),)]
    runs = plan(repo, repo / "runs", [2, 0], ["no_b", "baseline"])
    assert [(r.variant.name, r.seed) for r in runs] == [("baseline", 2), ("no_b", 2), ("baseline", 0), ("no_b", 0)]
    assert runs[0].dir == repo / "runs" / "baseline" / "seed_2"
    with pytest.raises(BionicError, match="unknown variant.*no_c.*known: baseline"):
        plan(repo, repo / "runs", [0], ["no_c"])
    with pytest.raises(BionicError, match="seeds"):
        plan(repo, repo / "runs", [-1])


def test_commands_use_the_cli_contract(repo):
    run = plan(repo, Path("runs"), [1], ["no_a"])[0]
    cmd = fit_command(run, epochs=3, extra=["--data.root", "d", "--wandb.mode", "online"])
    assert cmd[:len(ablations.ENTRY) + 1] == [*ablations.ENTRY, "fit"]
    args = cmd[len(ablations.ENTRY) + 1:]
    assert args[:4] == ["--config", str(repo / "configs/bionic.yaml"), "--config", str(repo / "ablations/no_a.yaml")]
    pairs = dict(zip(args[4::2], args[5::2]))
    assert pairs["--seed_everything"] == "1"
    assert pairs["--trainer.default_root_dir"] == str(Path("runs/no_a/seed_1"))
    assert pairs["--trainer.max_epochs"] == "3"
    assert (pairs["--wandb.group"], pairs["--wandb.name"], pairs["--wandb.job_type"]) == ("no_a", "no_a-s1", "ablation")
    assert json.loads(pairs["--wandb.tags"]) == ["no_a", "ablation", "seed_1"]
    assert args[-4:] == ["--data.root", "d", "--wandb.mode", "online"], "the user's overrides come last and win"
    assert "--trainer.max_epochs" not in fit_command(run)
    assert evaluate_command(run, ["--data.root", "d"])[len(ablations.ENTRY):] == [
        "test", "--config", str(Path("runs/no_a/seed_1/config.yaml")),
        "--ckpt_path", str(Path("runs/no_a/seed_1/checkpoints/best.ckpt")), "--data.root", "d"]
    appended = ["--trainer.callbacks+=lightning.pytorch.callbacks.EMAWeightAveraging", "--trainer.callbacks.decay",
                "0.999", "--trainer.callbacks+", "X", "--data.root", "d"]
    assert evaluate_command(run, appended)[-4:] == ["--trainer.callbacks.decay", "0.999", "--data.root", "d"], \
        "fit's config.yaml already holds the appended callbacks; test must not append them twice"
    assert fit_command(run, extra=appended)[-len(appended):] == appended


# ---------------------------------------------------------------------------- running
def test_finished_run_is_skipped_and_a_second_matrix_does_nothing(repo, fake_entry, capsys):
    runs_dir = repo / "runs"
    done = runs_dir / "no_a" / "seed_0"
    done.mkdir(parents=True)
    (done / "metrics.json").write_text(json.dumps({"test/acc": 0.7, "test/f1_macro": 0.6,
                                                   "config": {"trainer": {"max_epochs": 5}}}))
    argv = ["--root", str(repo), "--runs", str(runs_dir), "--seeds", "0", "--variants", "bionic", "no_a", "--epochs", "2"]
    assert ablations.main(argv) == 0
    out = capsys.readouterr().out
    assert "[2/2] no_a seed 0: skipped (metrics.json exists; it was trained with max_epochs=5, not 2" in out
    assert calls(done) == []
    bionic = runs_dir / "bionic" / "seed_0"
    assert [c["sub"] for c in calls(bionic)] == ["fit", "test"]
    assert (bionic / "fit.done").is_file() and (bionic / "run.log").read_text().count("====") == 2
    assert "fake fit" in (bionic / "run.log").read_text(), "the run's output goes to its run.log"
    assert "[1/2] bionic seed 0: fit" in out and "1 done, 1 skipped" in out

    assert ablations.main(argv) == 0
    assert [c["sub"] for c in calls(bionic)] == ["fit", "test"], "a second matrix with the same arguments does no work"
    assert "2 skipped" in capsys.readouterr().out


def test_interrupted_runs_resume(repo, fake_entry, capsys):
    runs_dir = repo / "runs"
    mid_fit = runs_dir / "bionic" / "seed_0"  # killed during fit: last.ckpt, no fit.done
    (mid_fit / "checkpoints").mkdir(parents=True)
    (mid_fit / "checkpoints" / "last.ckpt").write_text("epoch 3")
    mid_test = runs_dir / "no_a" / "seed_0"  # killed during test: fit finished, no metrics.json
    (mid_test / "checkpoints").mkdir(parents=True)
    (mid_test / "checkpoints" / "best.ckpt").write_text("best")
    (mid_test / "fit.done").write_text("{}")
    assert (state(plan(repo, runs_dir, [0], ["bionic"])[0]), state(plan(repo, runs_dir, [0], ["no_a"])[0])) == (
        "interrupted", "fitted")

    assert ablations.main(["--root", str(repo), "--runs", str(runs_dir), "--seeds", "0",
                           "--variants", "bionic", "no_a"]) == 0
    fit, test = calls(mid_fit)
    assert fit["sub"] == "fit" and fit["resumed"], "fit ran again in the same directory, next to last.ckpt"
    assert "--ckpt_path" not in fit["args"], "the CLI resumes from last.ckpt by itself"
    assert test["sub"] == "test"
    assert [c["sub"] for c in calls(mid_test)] == ["test"], "a finished fit is not repeated"
    assert "resuming from checkpoints/last.ckpt" in capsys.readouterr().out
    assert (mid_fit / "metrics.json").is_file() and (mid_test / "metrics.json").is_file()


def test_a_failed_run_does_not_stop_the_others(repo, fake_entry, monkeypatch, capsys):
    runs_dir = repo / "runs"
    monkeypatch.setenv("FAKE_FAIL", "no_a/seed_0/fit")
    rc = ablations.main(["--root", str(repo), "--runs", str(runs_dir), "--seeds", "0", "1", "--jobs", "2"])
    assert rc == 1
    captured = capsys.readouterr()
    failed_log = runs_dir / "no_a" / "seed_0" / "run.log"
    assert f"failed: no_a seed 0: fit exit 3: Traceback: boom  (log: {failed_log})" in captured.err
    assert "boom" in failed_log.read_text()
    finished = sorted(p.parent.relative_to(runs_dir).as_posix() for p in runs_dir.glob("*/*/metrics.json"))
    expected = sorted(f"{n}/seed_{s}" for n, v in discover_variants(repo).items() if v.in_matrix for s in (0, 1))
    assert finished == [d for d in expected if d != "no_a/seed_0"]
    assert "9 done, 1 failed" in captured.out
    # the failed run is retried by the next matrix; the rest is skipped
    monkeypatch.delenv("FAKE_FAIL")
    assert ablations.main(["--root", str(repo), "--runs", str(runs_dir), "--seeds", "0", "1"]) == 0
    assert "1 done, 9 skipped" in capsys.readouterr().out


def test_ctrl_c_stops_the_matrix_and_a_rerun_finishes_it(repo, fake_entry, monkeypatch, capsys):
    import os
    import signal
    import threading

    runs_dir = repo / "runs"
    argv = ["--root", str(repo), "--runs", str(runs_dir), "--seeds", "0", "--variants", "bionic", "no_a"]
    monkeypatch.setenv("FAKE_SLEEP", "60")
    monkeypatch.setattr(ablations, "STOP_GRACE_S", 0.5)
    first = runs_dir / "bionic" / "seed_0"

    def interrupt_once_fit_started():
        while not (first / "checkpoints" / "last.ckpt").is_file():
            threading.Event().wait(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_fit_started, daemon=True).start()
    assert ablations.main(argv) == 130
    out = capsys.readouterr().out
    assert "interrupted: stopping" in out and "2 stopped" in out
    assert not (runs_dir / "no_a").exists(), "nothing new starts after Ctrl-C"
    assert state(plan(repo, runs_dir, [0], ["bionic"])[0]) == "interrupted"

    monkeypatch.delenv("FAKE_SLEEP")
    assert ablations.main(argv) == 0
    assert [(c["sub"], c["resumed"]) for c in calls(first)] == [("fit", False), ("fit", True), ("test", False)]
    assert "2 done" in capsys.readouterr().out


def test_parallel_jobs_get_their_own_threads(repo, fake_entry):
    runs = plan(repo, repo / "runs", [0, 1], ["no_a", "no_b"])
    outcomes = Runner(jobs=2).run_all(runs)
    assert [o.status for o in outcomes] == ["done"] * 4
    envs = [c["env"] for r in runs for c in calls(r.dir)]
    expected_threads = str(max(1, ablations.cpu_count() // 2))
    assert {e["OMP_NUM_THREADS"] for e in envs} == {expected_threads}
    assert {e["PYTHONUNBUFFERED"] for e in envs} == {"1"}


def test_slot_envs_pin_one_gpu_per_job_and_split_cpus(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    envs = slot_envs(3, gpus=["4", "7"], cpus=8)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["4", "7", "4"]
    assert {e["OMP_NUM_THREADS"] for e in envs} == {"2"}
    assert [e.get("CUDA_VISIBLE_DEVICES") for e in slot_envs(2, gpus=[], cpus=1)] == [None, None]
    assert {e["OMP_NUM_THREADS"] for e in slot_envs(2, gpus=[], cpus=1)} == {"1"}
    assert slot_envs(1, gpus=["0", "1"], cpus=8) == [{}], "one job keeps the user's environment"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert "OMP_NUM_THREADS" not in slot_envs(2, gpus=[], cpus=8)[0], "a user's explicit setting wins"


def test_dry_run_runs_nothing(repo, fake_entry, capsys):
    runs_dir = repo / "runs"
    assert ablations.main(["--root", str(repo), "--runs", str(runs_dir), "--seeds", "0", "--dry-run",
                           "--", "--trainer.limit_train_batches=2"]) == 0
    out = capsys.readouterr().out
    assert "[5/5] control_shuffled seed 0: new" in out and out.count("--trainer.limit_train_batches=2") == 10
    assert not runs_dir.exists()


def test_bad_arguments_are_one_line_errors(repo, capsys):
    assert ablations.main(["--root", str(repo), "--variants", "no_such"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown variant(s) no_such; known:")
    assert ablations.main(["--root", str(repo / "nowhere")]) == 2


# ---------------------------------------------------------------------------- the sweep
def agent_command(config: dict, variant: str, seed: int) -> list[str]:
    """The command a `wandb agent` runs for one grid cell, expanded by wandb's own code."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    values = create_sweep_command_args({"args": {"variant": {"value": variant}, "seed": {"value": seed}}})
    values.update(env=["/usr/bin/env"], interpreter=["python"], program=[config["program"]])
    cmd = []
    for part in config["command"]:  # as wandb_agent.Agent._command_run substitutes macros
        cmd += values.get(part[2:-1], []) if part.startswith("${") and part.endswith("}") else [part]
    return cmd


def test_sweep_definition_covers_the_matrix():
    from bionic.sweep import sweep_config

    config = sweep_config(REPO, epochs=5, runs="runs", extra=["--data.root", "/data/fer"])
    assert config["method"] == "grid" and config["program"] and config["project"] == "bionic"
    grid = [(v, s) for v in config["parameters"]["variant"]["values"] for s in config["parameters"]["seed"]["values"]]
    matrix = plan(REPO, Path("runs"), [0, 1, 2])
    assert sorted(grid) == sorted((r.variant.name, r.seed) for r in matrix)

    from bionic.__main__ import TOOLS

    agent_runs = []
    for variant, seed in grid:
        cmd = agent_command(config, variant, seed)
        assert cmd[:4] == ["/usr/bin/env", "python", "-m", "bionic"] and cmd[4] == "sweep-agent"
        assert TOOLS[cmd[4]] == "bionic.ablations"
        own, extra = ablations.split_extra(cmd[5:])
        args = ablations.agent_parser().parse_args(own)
        assert (args.epochs, extra) == (5, ["--data.root", "/data/fer"])
        args.root = REPO
        (run,) = ablations.agent_runs(args)
        agent_runs.append(run)
        assert fit_command(run, args.epochs, extra) == fit_command(
            next(r for r in matrix if (r.variant.name, r.seed) == (variant, seed)), 5, extra), "same code path"
    assert sorted(agent_runs, key=str) == sorted(matrix, key=str), "each cell is one run of the matrix, none twice"


def test_sweep_agent_runs_one_cell_online(repo, fake_entry, monkeypatch):
    monkeypatch.setenv("WANDB_SWEEP_ID", "abc")
    monkeypatch.setenv("WANDB_RUN_ID", "run42")
    runs_dir = repo / "runs"
    rc = ablations.main(["sweep-agent", "--variant=no_b", "--seed=2", "--root", str(repo), "--runs", str(runs_dir),
                         "--", "--wandb.mode", "offline"])
    assert rc == 0
    assert sorted(p.relative_to(runs_dir).as_posix() for p in runs_dir.glob("*/*")) == ["no_b/seed_2"]
    fit, test = calls(runs_dir / "no_b" / "seed_2")
    assert fit["args"][-4:] == ["--wandb.mode", "online", "--wandb.mode", "offline"], "online in a sweep; user wins"
    assert fit["env"]["WANDB_RUN_ID"] == test["env"]["WANDB_RUN_ID"] == "run42", "both steps join the sweep's run"


def test_matrix_does_not_inherit_a_wandb_run(repo, fake_entry, monkeypatch):
    monkeypatch.setenv("WANDB_RUN_ID", "stray")
    assert ablations.main(["--root", str(repo), "--runs", str(repo / "runs"), "--seeds", "0", "--variants", "no_a"]) == 0
    assert {c["env"]["WANDB_RUN_ID"] for c in calls(repo / "runs" / "no_a" / "seed_0")} == {None}


def test_sweep_cli_writes_yaml(repo, tmp_path):
    import yaml

    from bionic import sweep

    out = tmp_path / "sweep.yaml"
    assert sweep.main(["--root", str(repo), "--seeds", "0", "1", "--out", str(out)]) == 0
    config = yaml.safe_load(out.read_text())
    matrix = [n for n, v in discover_variants(repo).items() if v.in_matrix]
    assert config["parameters"] == {"variant": {"values": matrix}, "seed": {"values": [0, 1]}}


# ---------------------------------------------------------------------------- end to end
def test_real_matrix_smoke_one_tiny_variant(fer_root, tmp_path, monkeypatch, capsys):
    """The real CLI, one variant x one seed x one tiny epoch: fit, test, report, then a no-op rerun."""
    from conftest import tiny_fit_args

    from bionic import report

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    tiny = tiny_fit_args(fer_root, Path("unused"))
    i = tiny.index("--trainer.default_root_dir")  # the matrix owns the run directory and the epochs
    del tiny[i:i + 2]
    i = tiny.index("--trainer.max_epochs")
    del tiny[i:i + 2]
    tiny[tiny.index("--wandb.mode") + 1] = "offline"  # the default a user gets: W&B offline in the run directory
    runs_dir = tmp_path / "runs"
    argv = ["--root", str(REPO), "--runs", str(runs_dir), "--seeds", "0", "--variants", "baseline", "--epochs", "1",
            "--", *tiny]
    assert ablations.main(argv) == 0, capsys.readouterr()
    run_dir = runs_dir / "baseline" / "seed_0"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["seed"] == 0 and metrics["epochs_trained"] == 1 and 0 <= metrics["test/acc"] <= 1
    assert (run_dir / "checkpoints" / "best.ckpt").is_file() and (run_dir / "config.yaml").is_file()
    assert list((run_dir / "wandb").glob("offline-run-*")), "the W&B run `wandb sync` uploads"
    log = (run_dir / "run.log").read_text()
    assert ablations.main(argv) == 0
    assert (run_dir / "run.log").read_text() == log, "the second matrix did no training"
    assert "1 skipped" in capsys.readouterr().out
    assert report.main([str(runs_dir), "--out", str(tmp_path / "results"), "--no-plots"]) == 0
    assert "| baseline | 1/1 |" in (tmp_path / "results" / "ablations.md").read_text()


@pytest.mark.skipif(__import__("shutil").which("make") is None, reason="no make")
def test_make_targets_pass_the_variables_through():
    import shlex
    import subprocess

    def recipe(*args):
        r = subprocess.run(["make", "-n", "-o", ".venv/.installed", *args], cwd=REPO, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout.replace("\\\n", " ")

    out = recipe("ablations", "SEEDS=3 4", "EPOCHS=2", "VARIANTS=bionic no_mask", "RUNS=/tmp/r", "JOBS=2",
                 "ARGS=--trainer.limit_train_batches=5")
    matrix = next(shlex.split(line.split(";")[0]) for line in out.splitlines() if "-m bionic ablations" in line)
    own, extra = ablations.split_extra(matrix[matrix.index("ablations") + 1:])
    args = ablations.matrix_parser().parse_args(own)
    assert (args.seeds, args.epochs, args.variants, str(args.runs), args.jobs) == ([3, 4], 2, ["bionic", "no_mask"], "/tmp/r", 2)
    assert extra[-1] == "--trainer.limit_train_batches=5"
    from bionic import report

    line = next(shlex.split(line.split("||")[0]) for line in out.splitlines() if "-m bionic report" in line)
    reported = report.parser().parse_args(line[line.index("report") + 1:])
    assert (str(reported.runs), str(reported.out)) == ("/tmp/r", "/tmp/r/results")
    assert (reported.variants, reported.seeds) == (args.variants, args.seeds), \
        "VARIANTS and SEEDS mean the same for the matrix and its report: only these"
    assert not reported.matrix
    line = next(shlex.split(line) for line in recipe("report").splitlines() if "-m bionic report" in line)
    reported = report.parser().parse_args(line[line.index("report") + 1:])
    assert (reported.variants, reported.seeds, reported.matrix) == (None, [0, 1, 2], True), \
        "without VARIANTS the report expects the whole matrix"
    assert "-m bionic.sweep --seeds 0 1 2" in recipe("sweep") and "wandb sweep runs/sweep.yaml" in recipe("sweep")
