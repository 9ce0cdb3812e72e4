"""Read a W&B run file (`run-<id>.wandb`, what `wandb sync` uploads) back into its records.

The file is W&B's append-only log: a 7-byte header (":W&B", magic, version), then 32 KiB blocks of
chunks, each a 7-byte header (crc32, length, type: 1 whole, 2 first, 3 middle, 4 last) and a piece
of one serialized `wandb_internal_pb2.Record`. wandb 0.31 reads it in Go only, hence this reader.
"""

from __future__ import annotations

import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7


def records(path: Path):
    from wandb.proto import wandb_internal_pb2

    raw = Path(path).read_bytes()
    if raw[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    pos, pieces = HEADER, b""
    while pos + HEADER <= len(raw):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # the rest of a block too short for a chunk header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos:pos + HEADER])
        if length == 0 and kind == 0:
            pos += left
            continue
        data, pos = raw[pos + HEADER:pos + HEADER + length], pos + HEADER + length
        pieces = data if kind in (1, 2) else pieces + data
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            yield record


def config_and_history(path: Path) -> tuple[dict, list[dict]]:
    """The run's config (key -> JSON text) and its history rows (key -> JSON text), as logged."""
    config, history = {}, []
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "config":
            config.update({item.key: item.value_json for item in record.config.update})
        elif kind == "history":
            history.append({item.key or "/".join(item.nested_key): item.value_json for item in record.history.item})
    return config, history
