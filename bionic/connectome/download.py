"""Cached, checksummed downloads with a progress line (flyvis-style: verify by SHA-256)."""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bionic.errors import BionicError

CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    name: str      # file name in the cache
    url: str
    sha256: str
    size: int | None = None


def cache_dir() -> Path:
    """$BIONIC_CACHE, else $XDG_CACHE_HOME/bionic, else ~/.cache/bionic."""
    if os.environ.get("BIONIC_CACHE"):
        return Path(os.environ["BIONIC_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bionic"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(remote: RemoteFile, folder: Path, progress: bool = True) -> Path:
    """The file in `folder`, downloaded unless a copy with the right SHA-256 is already there.

    A download whose SHA-256 differs from the expected one is deleted and refused.
    """
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / remote.name
    if dest.exists():
        if sha256_of(dest) == remote.sha256:
            if progress:
                print(f"{remote.name}: cached at {dest}", file=sys.stderr)
            return dest
        dest.unlink()  # stale or corrupt cache entry: fetch it again
    partial = dest.with_name(dest.name + ".partial")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(remote.url, timeout=60) as response, open(partial, "wb") as out:
            total = remote.size or int(response.headers.get("Content-Length") or 0)
            done = 0
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress:
                    _progress(remote.name, done, total)
        if progress:
            print(file=sys.stderr)
    except (urllib.error.URLError, OSError, ValueError) as err:
        partial.unlink(missing_ok=True)
        reason = getattr(err, "reason", None) or err
        raise BionicError(f"could not download {remote.url} ({reason}); check the network and retry, "
                          "or keep using the bundled snapshot (the default)") from None
    got = digest.hexdigest()
    if got != remote.sha256:
        partial.unlink(missing_ok=True)
        raise BionicError(f"checksum mismatch for {remote.name}: expected sha256 {remote.sha256}, got {got}; "
                          "the file was refused (corrupt download or changed upstream): retry, or keep using the "
                          "bundled snapshot")
    partial.replace(dest)
    return dest


def _progress(name: str, done: int, total: int) -> None:
    if total:
        text = f"\rdownloading {name}: {100 * done / total:5.1f}% ({done / 1e6:.1f}/{total / 1e6:.1f} MB)"
    else:
        text = f"\rdownloading {name}: {done / 1e6:.1f} MB"
    sys.stderr.write(text)
    sys.stderr.flush()
