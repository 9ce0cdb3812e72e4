"""Decoded FER-2013 as one uint8 tensor file, so a restart loads in about a second, not minutes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from bionic.data.fer2013 import FERRecords


def default_cache_dir() -> Path:
    return Path(os.environ.get("BIONIC_CACHE", Path.home() / ".cache" / "bionic"))


def cached(key: str, decode: Callable[[], FERRecords], cache_dir: str | Path | None = None) -> FERRecords:
    path = Path(cache_dir or default_cache_dir()) / f"fer2013-{key}.pt"
    if path.is_file():
        try:
            return FERRecords(**torch.load(path, weights_only=False))
        except Exception:  # a half-written or foreign file: decode again rather than fail
            pass
    records = decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(vars(records), tmp)
    os.replace(tmp, path)  # atomic: a killed run never leaves a truncated cache behind
    return records
