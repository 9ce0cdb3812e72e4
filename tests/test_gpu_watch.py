"""scripts/gpu_watch.py: on a lent GPU, the lowest-priority run gives way when not all would finish."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from helpers.scripts import load_script


@pytest.fixture
def watch(monkeypatch):
    module = load_script("gpu_watch")
    monkeypatch.setattr(module, "CHECK_S", 0.05)
    return module


def fake_run(tmp_path, name, epochs_done, epoch_s, max_epochs):
    """A run directory as a fit leaves it mid-way, and a process standing in for its runner."""
    run_dir = tmp_path / name / "seed_0"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(f"trainer:\n  max_epochs: {max_epochs}\n")
    (run_dir / "history.json").write_text(json.dumps([{"epoch": e, "time_s": epoch_s} for e in range(epochs_done)]))
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    return proc, run_dir


def watch_plan(watch, tmp_path, runs, seconds):
    plan = tmp_path / "pids.txt"
    plan.write_text("".join(f"{proc.pid} {run_dir}\n" for proc, run_dir in runs))
    watch.main(str(plan), time.time() + seconds)
    return [proc.wait(timeout=10) for proc, _ in runs]


def test_lowest_priority_run_stops_when_one_would_overrun(watch, tmp_path, capsys):
    first = fake_run(tmp_path, "bionic_wide", epochs_done=3, epoch_s=10.0, max_epochs=100)  # 970 s to go
    second = fake_run(tmp_path, "no_mask", epochs_done=3, epoch_s=1.0, max_epochs=100)
    watch_plan(watch, tmp_path, [first, second], seconds=2.0)
    said = capsys.readouterr().out.splitlines()
    stops = [line for line in said if "stopping pid" in line]
    assert f"stopping pid {second[0].pid}" in stops[0] and "lowest priority" in stops[0]
    # The last run left is never stopped for priority, only by the deadline.
    assert f"stopping pid {first[0].pid}" in stops[1] and "deadline" in stops[1]


def test_runs_that_fit_the_deadline_run_on(watch, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(watch, "TEST_S", 0.0)  # nothing left to do: no check near the deadline may overrun
    runs = [fake_run(tmp_path, name, epochs_done=3, epoch_s=0.01, max_epochs=3) for name in ("a", "b")]
    watch_plan(watch, tmp_path, runs, seconds=1.0)
    said = capsys.readouterr().out
    assert "lowest priority" not in said
    assert said.count("deadline reached") == 2


def test_a_run_already_testing_is_not_the_one_stopped(watch, tmp_path, capsys):
    first = fake_run(tmp_path, "bionic_wide", epochs_done=3, epoch_s=10.0, max_epochs=100)
    second = fake_run(tmp_path, "no_mask", epochs_done=3, epoch_s=1.0, max_epochs=100)
    testing = fake_run(tmp_path, "no_conv", epochs_done=3, epoch_s=1.0, max_epochs=3)
    (testing[1] / "fit.done").write_text("{}\n")
    watch_plan(watch, tmp_path, [first, second, testing], seconds=2.0)
    stops = [line for line in capsys.readouterr().out.splitlines() if "stopping pid" in line]
    assert f"stopping pid {second[0].pid}" in stops[0] and "lowest priority" in stops[0]


def test_no_more_stops_once_a_stop_did_not_speed_the_run_up(watch, tmp_path, capsys):
    """Runs each held up by their own CPU core: the first stop frees nothing, so it is the last."""
    import threading

    runs = [fake_run(tmp_path, name, epochs_done=3, epoch_s=s, max_epochs=100)
            for name, s in (("bionic_wide", 10.0), ("bionic", 1.0), ("baseline", 1.0))]
    ticking = threading.Event()

    def tick():  # each run keeps finishing epochs at its own unchanged pace
        while not ticking.is_set():
            for proc, run_dir in runs:
                if proc.poll() is None:
                    epochs = json.loads((run_dir / "history.json").read_text())
                    epochs.append({"epoch": len(epochs), "time_s": epochs[0]["time_s"]})
                    (run_dir / "history.json").write_text(json.dumps(epochs))
            time.sleep(0.01)

    clock = threading.Thread(target=tick, daemon=True)
    clock.start()
    try:
        watch_plan(watch, tmp_path, runs, seconds=3.0)
    finally:
        ticking.set()
    said = capsys.readouterr().out
    stops = [line for line in said.splitlines() if "stopping pid" in line]
    assert "lowest priority" in stops[0] and f"stopping pid {runs[2][0].pid}" in stops[0]
    assert "ran no faster after the stop" in said
    assert [line for line in stops[1:] if "lowest priority" in line] == [], "one stop that did not help is the last"
    assert sum("deadline reached" in line for line in stops) == 2, "the other two run to the deadline"
