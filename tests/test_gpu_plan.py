"""scripts/gpu.sh plan: a lease's plan file, less the runs already committed under results/."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import REPO


def plan(plan_file, work="/w"):
    env = {**os.environ, "PLAN_FILE": str(plan_file), "WORK": work}
    return subprocess.run(["bash", str(REPO / "scripts" / "gpu.sh"), "plan"], env=env, capture_output=True, text=True)


def test_plan_lists_what_results_lacks_in_order_with_its_arguments(tmp_path):
    assert (REPO / "results/headline/runs/bionic/seed_0/metrics.json").is_file(), "a committed run to skip"
    plan_file = tmp_path / "plan.txt"
    plan_file.write_text("# comment\n\n"
                         "headline bionic_wide 7\n"
                         "headline bionic 0 --trainer.max_epochs=40\n"  # committed: skipped
                         "tuning/e40 bionic 7 --trainer.max_epochs=40 --model.net.init_args.conv_strides=[1,2]\n")
    done = plan(plan_file)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "bionic_wide 7 /w/headline ",
        "bionic 7 /w/tuning/e40 --trainer.max_epochs=40 --model.net.init_args.conv_strides=[1,2]",
    ]


def test_a_missing_plan_file_is_one_clear_error(tmp_path):
    done = plan(tmp_path / "nope.txt")
    assert done.returncode == 2
    assert done.stderr.strip() == f"gpu.sh: PLAN_FILE {tmp_path / 'nope.txt'} does not exist"


def test_every_run_of_the_committed_plan_parses(capsys):
    """A typo in scripts/gpu_plan.txt would only show on the lent GPU, where each minute counts."""
    from bionic.ablations import discover_variants
    from bionic.cli import run_cli

    variants = discover_variants(REPO)
    lines = [line.split() for line in (REPO / "scripts/gpu_plan.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines, "the committed plan has runs"
    for root, variant, seed, *args in lines:
        assert variant in variants, f"{variant} is no variant of configs/ or ablations/"
        assert seed.isdigit()
        configs = [a for path in variants[variant].configs for a in ("--config", path)]
        with pytest.raises(SystemExit) as stop:
            run_cli(["fit", *configs, *args, "--print_config"])
        out = capsys.readouterr()
        assert stop.value.code in (0, None), f"{root} {variant} {seed} {args}: {out.err[-800:]}"


GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], env=GIT_ENV, capture_output=True, text=True)


def test_lean_sends_no_committed_checkpoint_and_unlean_restores_them(tmp_path):
    """scripts/gpu.sh lean: a device call sends the tracked files, and the kept runs' checkpoints are
    hundreds of MB, wherever under results/ they are kept."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / "scripts/gpu.sh").write_text((REPO / "scripts/gpu.sh").read_text())
    ckpts = ["results/headline/runs/bionic/seed_0/best.ckpt", "results/tuning/e200/x/runs/bionic/seed_1/best.ckpt"]
    for path in [*ckpts, "results/headline/runs/bionic/seed_0/metrics.json"]:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_bytes(b"weights" if path.endswith(".ckpt") else b"{}")
    assert git(repo, "init", "-q", "-b", "main").returncode == 0
    git(repo, "add", "-A")
    assert git(repo, "commit", "-qm", "runs").returncode == 0
    gpu = ["bash", str(repo / "scripts/gpu.sh")]

    done = subprocess.run([*gpu, "lean"], cwd=repo, env=GIT_ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert git(repo, "branch", "--show-current").stdout.strip() == "gpu-lean"
    assert git(repo, "ls-files").stdout.split() == ["results/headline/runs/bionic/seed_0/metrics.json",
                                                    "scripts/gpu.sh"]
    done = subprocess.run([*gpu, "unlean"], cwd=repo, env=GIT_ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert git(repo, "branch", "--list").stdout.split() == ["*", "main"]
    assert all((repo / path).read_bytes() == b"weights" for path in ckpts)

    (repo / ckpts[0]).write_bytes(b"changed")
    done = subprocess.run([*gpu, "lean"], cwd=repo, env=GIT_ENV, capture_output=True, text=True)
    assert (done.returncode, done.stderr.strip()) == (2, "gpu.sh: commit or stash your changes first")
    assert git(repo, "branch", "--show-current").stdout.strip() == "main"
