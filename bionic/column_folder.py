"""Which folder a `snapshot` setting names: the one rule that load_column and the wiring cache
share. It lives outside bionic.connectome so that the cache can key a wiring on the snapshot's
files without importing the connectome tools (pandas among them) at each fit's start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

BUNDLED_DIR = Path(__file__).resolve().parent / "connectome" / "data" / "v1300"


def snapshot_folder(snapshot: Optional[Union[str, os.PathLike]]) -> Path:
    """The folder of `snapshot`: None, "" or "bundled" -> the bundled v1300 column."""
    if snapshot is None or str(snapshot) in ("", "bundled"):
        return BUNDLED_DIR
    return Path(snapshot).expanduser()
