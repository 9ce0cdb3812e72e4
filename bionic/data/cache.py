"""Decoded FER-2013 as one numpy archive, so a restart loads in about a second, not minutes.

The archive holds plain arrays only (uint8 images, int64 labels, fixed-width strings) and is read
with ``allow_pickle=False``: a cache file that someone else wrote cannot run code here. Its name
carries the source's fingerprint and DECODER_VERSION, so a change to the files or to the decoding
(bump the version with it) never serves old tensors.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bionic.data.fer2013 import FERRecords

# Bump whenever decoding changes what a source decodes to (resizing, grey conversion, row checks).
DECODER_VERSION = 2


def default_cache_dir() -> Path:
    return Path(os.environ.get("BIONIC_CACHE", Path.home() / ".cache" / "bionic"))


def cache_path(key: str, cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / f"fer2013-{key}-decoder{DECODER_VERSION}.npz"


def _load(path: Path) -> FERRecords:
    with np.load(path, allow_pickle=False) as z:
        return FERRecords(images=torch.from_numpy(z["images"].astype(np.uint8)),
                          labels=torch.from_numpy(z["labels"].astype(np.int64)),
                          usage=z["usage"].tolist(), ids=z["ids"].tolist(), layout=str(z["layout"]))


def _save(path: Path, records: FERRecords) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, images=records.images.numpy(), labels=records.labels.numpy(),
                     usage=np.array(records.usage, dtype=str), ids=np.array(records.ids, dtype=str),
                     layout=np.array(records.layout))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)  # atomic: a killed run never leaves a truncated cache behind


def cached(key: str, decode: Callable[[], FERRecords], cache_dir: str | Path | None = None) -> FERRecords:
    path = cache_path(key, cache_dir)
    if path.is_file():
        try:
            return _load(path)
        except Exception:  # a half-written, foreign or pickled file: decode again rather than fail or run it
            pass
    records = decode()
    try:
        _save(path, records)
    except OSError as exc:
        # The cache only saves time: a run goes on without it rather than losing what it decoded.
        print(f"warning: cannot write the data cache {path} ({exc.strerror or exc}); going on without it "
              "(set BIONIC_CACHE or --data.cache_dir to a writable folder to keep it)", file=sys.stderr)
    return records
