"""A run's offline Weights & Biases log, read here without a server or `wandb sync`.

Runs log offline by default (bionic.wandb_run), and what is logged per training step (the
plasticity callbacks' per-group rates and silent fractions, the Hebbian share of each update) is
not in history.json. Each offline run leaves `<run>/wandb/offline-run-<time>-<id>/run-<id>.wandb`:
W&B's record log, a LevelDB-style file (a 7-byte header ":W&B", magic 0xBEE1, version 0; then
32 KiB blocks of records, each a 7-byte header of checksum, length and kind, where a record too
long for its block is split into first / middle / last pieces) holding one `wandb.proto` Record
per entry. `records` gives every record, `history` the logged rows; checksums are not verified
(a file that ends inside a record, as a run still writing or killed leaves it, ends the read).
In the process that logged, `wandb.finish()` returns before W&B's service has written its last
block: call `wandb.teardown()` before reading (a finished `python -m bionic fit` has exited).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

from bionic.errors import BionicError

IDENT, BLOCK, HEADER = b":W&B", 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator:
    """The records of one .wandb file (`wandb.proto.wandb_internal_pb2.Record`), in the order written."""
    from wandb.proto import wandb_internal_pb2

    for raw in _pieces_joined(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        yield record


def _pieces_joined(path: Path) -> Iterator[bytes]:
    data = Path(path).read_bytes()
    if data[:4] != IDENT:
        raise BionicError(f"{path} is not a W&B run log (no ':W&B' header); pass a run-<id>.wandb file")
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        room = BLOCK - pos % BLOCK
        _checksum, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER]) if room >= HEADER else (0, 0, 0)
        if length == 0 and kind == 0:  # the writer pads the rest of a block with zeros
            pos += room
            continue
        piece = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if len(piece) < length:
            return  # the file ends inside a record: a run still writing, or killed
        if kind == FULL:
            yield piece
        elif kind == FIRST:
            pending = piece
        elif kind == MIDDLE:
            pending += piece
        elif kind == LAST:
            yield pending + piece


def history(path: Path) -> Iterator[dict]:
    """Every history row of one .wandb file, as the dict that was logged (nested keys joined by '/')."""
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            yield {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                   for item in record.history.item}


def run_logs(run_dir: Path) -> list[Path]:
    """A run folder's offline logs in the order they were written (a resumed run has one per start)."""
    return sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))


def per_epoch(run_dir: Path, keys: list[str]) -> dict[int, dict[str, float]]:
    """{epoch: {key: value}} for the rows of a run that hold `keys` (epoch-level values such as
    `plasticity/D/rate_epoch`); where a resumed run logged an epoch twice, the later row wins."""
    logs = run_logs(run_dir)
    if not logs:
        raise BionicError(f"{run_dir} has no offline W&B log (wandb/offline-run-*/run-*.wandb); "
                          "was it trained with --wandb.mode disabled?")
    out: dict[int, dict[str, float]] = {}
    for log in logs:
        for row in history(log):
            values = {k: row[k] for k in keys if k in row}
            if values and "epoch" in row:
                out.setdefault(int(row["epoch"]), {}).update(values)
    return dict(sorted(out.items()))
