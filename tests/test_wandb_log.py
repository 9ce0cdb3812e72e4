"""bionic.wandb_log reads back what a real offline W&B run wrote: rows split across the file's
32 KiB blocks, a resumed run's second log, a block whose last few bytes are padding, and a file
that is not a W&B log."""

from __future__ import annotations

import struct

import pytest

from bionic.errors import BionicError
from bionic.wandb_log import BLOCK, FIRST, FULL, HEADER, LAST, MIDDLE, history, per_epoch, records, run_logs
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


def write_log(path, header: bytes, payloads: list[bytes]) -> list[int]:
    """The log format as W&B's writer (LevelDB's) lays it out: where fewer than HEADER bytes are
    left in a block they are zeros, and a record starts the next block. Returns where it padded."""
    out, padded = bytearray(header), []
    for payload in payloads:
        rest, first = payload, True
        while True:
            room = BLOCK - len(out) % BLOCK
            if room < HEADER:
                padded.append(room)
                out += bytes(room)
                room = BLOCK
            piece, rest = rest[:room - HEADER], rest[room - HEADER:]
            kind = (FULL if not rest else FIRST) if first else (LAST if not rest else MIDDLE)
            out += struct.pack("<IHB", 0, len(piece), kind) + piece
            first = False
            if not rest:
                break
    path.write_bytes(bytes(out))
    return padded


def test_a_block_that_ends_in_padding_is_skipped(tmp_path):
    """Real logs have them (about one block end in a hundred). Where a real run's records happen to
    fall depends on what else the process logged, so a filler record is sized to leave 1 to 6 bytes
    at the first block's end, and the run's records are laid out again behind it."""
    from wandb.proto import wandb_internal_pb2

    log_offline(tmp_path, [{"epoch": e, "note": "y" * 3000} for e in range(12)])
    [log] = run_logs(tmp_path)
    header, payloads = log.read_bytes()[:HEADER], [r.SerializeToString() for r in records(log)]
    want = [r for r in history(log) if "epoch" in r]
    assert len(want) == 12

    def filler(n):
        record = wandb_internal_pb2.Record()
        record.history.item.add(key="filler", value_json='"' + "f" * n + '"')
        return record.SerializeToString()

    def room_left(n):
        return BLOCK - (len(header) + HEADER + len(filler(n)))

    near = room_left(0) - 2 * HEADER  # a filler's record grows by a byte per character, and its length prefix by a few
    n = next(n for n in range(max(0, near), BLOCK) if 1 <= room_left(n) < HEADER)
    padded = write_log(tmp_path / "run-padded.wandb", header, [filler(n), *payloads])
    assert padded[0] == room_left(n)
    assert [r for r in history(tmp_path / "run-padded.wandb") if "epoch" in r] == want
