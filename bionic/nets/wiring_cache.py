"""The built wiring of a column, cached on disk, so a fit does not rebuild it (or import the
connectome tools, pandas among them) each time it starts.

The key is a hash of everything the wiring is made of: the snapshot's files (their bytes), the
code that turns them into masks (bionic/connectome's sources), and the build arguments. Any
change to one of them is another key, so a stale wiring is never read. Only successful builds
are stored: an argument the build rejects is rejected again (with its own message) on every start.
The cache lives beside the data cache ($BIONIC_CACHE, default ~/.cache/bionic), under wiring/.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from bionic.column_folder import snapshot_folder

CACHE_VERSION = 1
# The sources of bionic.connectome that build a wiring from a snapshot.
CONNECTOME = Path(__file__).resolve().parents[1] / "connectome"
SNAPSHOT_FILES = ("meta.json", "cells.csv", "edges.parquet", "edges.csv")
FIELDS = ("group_names", "group_types", "sizes", "between", "within", "inhibition", "wiring_source")


@dataclass
class CachedWiring:
    """A wiring read back from the cache: the fields of bionic.connectome.Wiring."""

    group_names: list
    group_types: dict
    sizes: list
    between: list
    within: list
    inhibition: list
    wiring_source: dict


def cache_dir() -> Path:
    return Path(os.environ.get("BIONIC_CACHE", Path.home() / ".cache" / "bionic")) / "wiring"


def wiring_key(snapshot: Optional[str], **arguments) -> Optional[str]:
    """Hash of the snapshot's bytes, the connectome code and the arguments; None when the snapshot
    folder cannot be read (the build then runs and reports what is wrong)."""
    folder = snapshot_folder(snapshot)
    h = hashlib.sha256(f"bionic-wiring-v{CACHE_VERSION}".encode())
    h.update(json.dumps(arguments, sort_keys=True, default=str).encode())
    try:
        if not folder.is_dir():
            return None
        for name in SNAPSHOT_FILES:
            path = folder / name
            h.update(name.encode())
            h.update(path.read_bytes() if path.is_file() else b"<absent>")
        for source in sorted(CONNECTOME.glob("*.py")):
            h.update(source.name.encode())
            h.update(source.read_bytes())
    except OSError:
        return None
    return h.hexdigest()[:32]


def cached_wiring(snapshot: Optional[str], build: Callable[[], object], **arguments):
    """The wiring of `snapshot` with these build arguments: from the cache when it holds it, else
    build() (and store the result; a cache that cannot be written is skipped, never an error)."""
    key = wiring_key(snapshot, **arguments)
    if key is None:
        return build()
    path = cache_dir() / f"wiring-{key}.pt"
    if path.is_file():
        try:
            return CachedWiring(**torch.load(path, weights_only=True))
        except Exception:  # half-written, foreign or from another torch: build it again
            pass
    wiring = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({name: getattr(wiring, name) for name in FIELDS}, tmp)
        os.replace(tmp, path)  # atomic: a parallel start never reads a truncated file
    except Exception:
        pass
    return wiring
