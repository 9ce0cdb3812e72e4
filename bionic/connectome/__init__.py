"""The MICrONS V1 column: snapshots (bundled, CAVE, public Allen release) and wiring.

    from bionic.connectome import load_column, build_wiring, DEFAULT_GROUPS
    column = load_column()            # bundled v1300 snapshot; or load_column("path/to/snapshot")
    wiring = build_wiring(column, groups=DEFAULT_GROUPS, min_synapses=1)

Importing this package does not import torch; `build_wiring` does.
"""

from bionic.connectome.celltypes import EI_CLASS, KNOWN_TYPES, harmonize_type
from bionic.connectome.snapshot import BUNDLED_DIR, Column, load_column, validate, write_snapshot
from bionic.connectome.wiring import (
    DEFAULT_GROUPS,
    NULL_MODELS,
    Wiring,
    apply_null_model,
    block_masks,
    build_wiring,
    check_groups,
    degree_preserving_shuffle,
    density_matched_random,
    group_members,
    inhibition,
    synapse_matrix,
)

__all__ = [
    "BUNDLED_DIR", "Column", "DEFAULT_GROUPS", "EI_CLASS", "KNOWN_TYPES", "Wiring",
    "NULL_MODELS", "apply_null_model", "block_masks", "build_wiring", "check_groups",
    "degree_preserving_shuffle", "density_matched_random", "group_members",
    "harmonize_type", "inhibition", "load_column", "synapse_matrix", "validate", "write_snapshot",
]
