"""Cell-type vocabulary of the MICrONS V1 column and the harmonization of its labels.

Types are the manual labels of CAVE table `allen_v1_column_types_slanted_ref`, harmonized the
way the Allen v1718 preprocessing notebook does it (SOURCE.md): 5P-PT -> 5P-ET, WM-P -> 6P-CT,
6P-U -> 6P-IT, "Unsure I"/"Unsure E" -> Unsure-I/Unsure-E.
"""

from __future__ import annotations

import math

# Display order: excitatory types in the canonical laminar flow, then interneurons, then unsure.
EXCITATORY_TYPES = ("4P", "23P", "5P-IT", "5P-ET", "5P-NP", "6P-IT", "6P-CT", "Unsure-E")
INHIBITORY_TYPES = ("BC", "MC", "BPC", "NGC", "Unsure-I")
OTHER_TYPES = ("Unsure",)
KNOWN_TYPES = EXCITATORY_TYPES + INHIBITORY_TYPES + OTHER_TYPES

# E / I / U class of each type; a snapshot's `ei_class` column must agree with it.
EI_CLASS = {**{t: "E" for t in EXCITATORY_TYPES}, **{t: "I" for t in INHIBITORY_TYPES}, "Unsure": "U"}

# Raw labels seen in the CAVE table and in the public releases -> harmonized type.
_RENAMES = {
    "5P-PT": "5P-ET",
    "WM-P": "6P-CT",
    "6P-U": "6P-IT",
    "Unsure I": "Unsure-I",
    "Unsure E": "Unsure-E",
    "Unsure-I": "Unsure-I",
    "Unsure-E": "Unsure-E",
}


def harmonize_type(raw) -> str | None:
    """Harmonized cell type for a raw label, or None when the label is not a known type."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None
    label = str(raw).strip()
    label = _RENAMES.get(label, label)
    return label if label in KNOWN_TYPES else None


def unsure_type(ei_class: str) -> str:
    """The catch-all type for a cell whose label is unknown, by its E/I class."""
    return {"E": "Unsure-E", "I": "Unsure-I"}.get(ei_class, "Unsure")


def harmonized_cells(sel, ei_source):
    """Cells table of a service's rows: harmonized type (Unsure-E/-I by E/I class where the label is
    unknown) and E/I class. Returns (cells DataFrame, number of relabelled cells)."""
    import pandas as pd

    ei_raw = ei_source.map(ei_from_classification)
    types = sel["cell_type"].map(harmonize_type)
    unknown = types.isna()
    types = types.where(~unknown, ei_raw.map(unsure_type))
    cells = pd.DataFrame({
        "root_id": sel["pt_root_id"].astype("int64").to_numpy(),
        "cell_type": types.to_numpy(),
        "ei_class": types.map(EI_CLASS).to_numpy(),
        "outputs_measured": True,
        "cell_type_raw": sel["cell_type"].to_numpy(),
    })
    return cells, int(unknown.sum())


def ei_from_classification(value) -> str:
    """E/I/U from CAVE `classification_system` (aibs_coarse_excitatory/...) or a `broad_type` string."""
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).lower()
    if "excit" in text:
        return "E"
    if "inhib" in text:
        return "I"
    return "U"
