"""Read FER-2013 from either public layout into uint8 tensors, and assign the splits.

Layouts:
- Kaggle image folders: ``train/<class>/*.jpg`` and ``test/<class>/*.jpg``; the file-name prefix
  (``Training_``, ``PublicTest_``, ``PrivateTest_``) is the row's original ``Usage``.
- The original CSVs: ``fer2013.csv`` (emotion, pixels, Usage) or ``icml_face_data.csv``
  (emotion, " Usage", " pixels": the leading spaces are in the real file).
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bionic import EMOTIONS
from bionic.errors import BionicError

SIZE = 48
USAGES = ("Training", "PublicTest", "PrivateTest")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
CSV_NAMES = ("fer2013.csv", "icml_face_data.csv")
HOW_TO_GET = "get FER-2013 from https://www.kaggle.com/datasets/msambare/fer2013 (see README, `make data`)"


@dataclass
class FERRecords:
    """Every decoded image of a source, before split assignment (this is what the cache holds)."""

    images: torch.Tensor  # uint8 [N, 48, 48]
    labels: torch.Tensor  # int64 [N]
    usage: list[str]  # Training / PublicTest / PrivateTest, or "train" / "test" without prefixes
    ids: list[str]  # relative file path, or "row <n>" of the CSV
    layout: str


@dataclass
class FERSplits:
    images: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]
    ids: dict[str, list[str]]
    rule: str
    layout: str
    fingerprint: str = ""
    sources: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "layout": self.layout,
            "rule": self.rule,
            "fingerprint": self.fingerprint,
            **{
                role: {
                    "source": self.sources[role],
                    "n": len(self.ids[role]),
                    "ids_sha256": hashlib.sha256("\n".join(self.ids[role]).encode()).hexdigest(),
                }
                for role in ("train", "val", "test")
            },
        }


def detect_layout(root: Path) -> tuple[str, Path]:
    """Return ("csv", file) or ("folders", root); one clear error when neither is there."""
    root = Path(root)
    if root.is_file() and root.suffix == ".csv":
        return "csv", root
    for name in CSV_NAMES:
        if (root / name).is_file():
            return "csv", root / name
    if (root / "train").is_dir():
        return "folders", root
    looked = ", ".join([str(root / n) for n in CSV_NAMES] + [str(root / "train") + "/<class>/"])
    raise BionicError(f"no FER-2013 data at {root} (looked for {looked}); {HOW_TO_GET}, or pass --data.root")


def fingerprint(layout: str, path: Path) -> str:
    """Cheap identity of the source files (names, sizes, mtimes): changes when any file does."""
    h = hashlib.sha256(f"{layout}:{Path(path).resolve()}".encode())
    if layout == "csv":
        st = path.stat()
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()[:16]
    for split in ("train", "test"):
        split_dir = path / split
        if not split_dir.is_dir():
            continue
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            for entry in sorted(os.scandir(class_dir), key=lambda e: e.name):
                st = entry.stat()
                h.update(f"{split}/{class_dir.name}/{entry.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def load_image(path: Path) -> np.ndarray:
    """Any size, any colour -> 48x48 grey uint8 (FER-2013's own format)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("L")
            if img.size != (SIZE, SIZE):
                img = img.resize((SIZE, SIZE), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except OSError as exc:
        raise BionicError(f"cannot read image {path} ({exc}); remove or replace the file") from None


def _class_index(name: str) -> int | None:
    name = name.strip().lower()
    return EMOTIONS.index(name) if name in EMOTIONS else None


def _usage_of(file_name: str, split: str) -> str:
    for usage in USAGES:
        if file_name.startswith(usage + "_"):
            return usage
    return split


def read_folders(root: Path, progress: bool = True) -> FERRecords:
    images, labels, usage, ids = [], [], [], []
    for split in ("train", "test"):
        split_dir = root / split
        if not split_dir.is_dir():
            if split == "train":
                raise BionicError(f"{split_dir} is missing; {HOW_TO_GET}")
            continue
        found = {_class_index(p.name): p for p in split_dir.iterdir() if p.is_dir()}
        found.pop(None, None)
        for label, emotion in enumerate(EMOTIONS):
            if label not in found:
                raise BionicError(
                    f"{split_dir} has no '{emotion}' folder (expected the 7 class folders "
                    f"{', '.join(EMOTIONS)}); re-extract the Kaggle download"
                )
            files = sorted(p for p in found[label].iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise BionicError(f"{found[label]} holds no images; re-extract the Kaggle download")
            for f in _progress(files, f"decoding {split}/{found[label].name}", progress):
                images.append(load_image(f))
                labels.append(label)
                usage.append(_usage_of(f.name, split))
                ids.append(f"{split}/{found[label].name}/{f.name}")
    return FERRecords(torch.from_numpy(np.stack(images)), torch.tensor(labels), usage, ids, "folders")


def read_csv(path: Path, progress: bool = True) -> FERRecords:
    images, labels, usage, ids = [], [], [], []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        columns = {c.strip().lower(): c for c in reader.fieldnames or []}
        missing = {"emotion", "pixels", "usage"} - set(columns)
        if missing:
            raise BionicError(f"{path} lacks column(s) {sorted(missing)}; expected emotion, pixels, Usage")
        for n, row in enumerate(_progress(reader, f"decoding {path.name}", progress), start=2):
            try:
                label = int(row[columns["emotion"]])
                pixels = np.array(row[columns["pixels"]].split(), dtype=np.uint8)
                if not 0 <= label < len(EMOTIONS) or pixels.size != SIZE * SIZE:
                    raise ValueError
            except (ValueError, TypeError, AttributeError):
                raise BionicError(
                    f"{path} row {n} does not parse (need emotion 0-6 and {SIZE * SIZE} pixel values 0-255); "
                    "fix or delete that row"
                ) from None
            images.append(pixels.reshape(SIZE, SIZE))
            labels.append(label)
            usage.append(row[columns["usage"]].strip())
            ids.append(f"row {n}")
    if not images:
        raise BionicError(f"{path} has no rows; {HOW_TO_GET}")
    return FERRecords(torch.from_numpy(np.stack(images)), torch.tensor(labels), usage, ids, "csv")


def _progress(items, description: str, enabled: bool):
    if not enabled:
        return items
    try:
        from rich.progress import track
    except ImportError:
        return items
    return track(items, description=description, transient=True)


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (keep, carved): `fraction` of each class carved out, reproducibly for `seed`."""
    gen = torch.Generator().manual_seed(seed)
    keep, carved = [], []
    for c in labels.unique(sorted=True):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n = int(round(fraction * len(idx)))
        carved.append(idx[:n])
        keep.append(idx[n:])
    return torch.cat(keep).sort().values, torch.cat(carved).sort().values


def assign_splits(records: FERRecords, val_fraction: float = 0.1, split_seed: int = 0) -> FERSplits:
    """train = Training, val = PublicTest, test = PrivateTest, carving validation where needed.

    The model is selected on `val` and scored on `test`, never on the same rows.
    """
    usage = np.array(records.usage)
    present = set(usage.tolist())
    pick = lambda name: torch.from_numpy(np.nonzero(usage == name)[0])  # noqa: E731
    if {"Training", "PublicTest", "PrivateTest"} <= present:
        idx = {"train": pick("Training"), "val": pick("PublicTest"), "test": pick("PrivateTest")}
        sources = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
        rule = "usage prefix: train=Training, val=PublicTest, test=PrivateTest"
    else:
        train_name = "Training" if "Training" in present else "train"
        test_name = next((n for n in ("PrivateTest", "PublicTest", "test") if n in present), None)
        if test_name is None:
            raise BionicError("the data has no test split (no test/ folder, no PublicTest/PrivateTest rows)")
        train_idx = pick(train_name)
        keep, carved = stratified_split(records.labels[train_idx], val_fraction, split_seed)
        idx = {"train": train_idx[keep], "val": train_idx[carved], "test": pick(test_name)}
        sources = {"train": train_name, "val": f"{val_fraction:.0%} of {train_name} (stratified, seed {split_seed})",
                   "test": test_name}
        rule = f"validation carved from {train_name}; test={test_name}"
    return FERSplits(
        images={k: records.images[v] for k, v in idx.items()},
        labels={k: records.labels[v] for k, v in idx.items()},
        ids={k: [records.ids[i] for i in v.tolist()] for k, v in idx.items()},
        rule=rule,
        layout=records.layout,
        sources=sources,
    )


def read_fer2013(root: str | Path, cache_dir: str | Path | None = None, val_fraction: float = 0.1,
                 split_seed: int = 0, progress: bool = True) -> FERSplits:
    """Decode once, then load from the cache keyed by the source's fingerprint."""
    from bionic.data.cache import cached

    layout, path = detect_layout(Path(root))
    key = fingerprint(layout, path)
    reader = read_csv if layout == "csv" else read_folders
    records = cached(key, lambda: reader(path, progress), cache_dir)
    splits = assign_splits(records, val_fraction, split_seed)
    splits.fingerprint = key
    return splits
