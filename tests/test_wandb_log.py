"""bionic.wandb_log reads back what a real offline W&B run wrote: rows split across the file's
32 KiB blocks, a resumed run's second log, and a file that is not a W&B log."""

from __future__ import annotations

import pytest

from bionic.errors import BionicError
from bionic.wandb_log import history, per_epoch, run_logs
from helpers.wandb_records import log_offline


def test_rows_come_back_as_logged_across_blocks_and_resumes(tmp_path):
    # A 50,000-character note does not fit one 32 KiB block: its record is split into pieces.
    first = [{"epoch": e, "plasticity/D/rate_epoch": 0.25 - e / 100, "note": "x" * (50_000 if e == 1 else 10)}
             for e in range(4)]
    log_offline(tmp_path, first)
    [log] = run_logs(tmp_path)
    rows = [r for r in history(log) if "epoch" in r]
    assert [(r["epoch"], r["plasticity/D/rate_epoch"], len(r["note"])) for r in rows] == \
        [(e, 0.25 - e / 100, 50_000 if e == 1 else 10) for e in range(4)]

    # Resumed from epoch 2: the second log repeats epoch 2 and goes on; the later row wins.
    log_offline(tmp_path, [{"epoch": 2, "plasticity/D/rate_epoch": 0.5}, {"epoch": 4, "plasticity/D/rate_epoch": 0.1}])
    assert len(run_logs(tmp_path)) == 2
    epochs = per_epoch(tmp_path, ["plasticity/D/rate_epoch"])
    assert {e: v["plasticity/D/rate_epoch"] for e, v in epochs.items()} == {0: 0.25, 1: 0.24, 2: 0.5, 3: 0.22, 4: 0.1}


def test_not_a_wandb_log_or_no_log_is_one_clear_error(tmp_path):
    bad = tmp_path / "run-x.wandb"
    bad.write_bytes(b"not a log")
    with pytest.raises(BionicError, match="not a W&B run log"):
        list(history(bad))
    with pytest.raises(BionicError, match="no offline W&B log"):
        per_epoch(tmp_path, ["plasticity/D/rate_epoch"])
