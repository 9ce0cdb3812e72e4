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


def as_fer_image(img) -> np.ndarray:
    """A PIL image of any size and colour -> 48x48 grey uint8 (FER-2013's own format)."""
    from PIL import Image

    img = img.convert("L")
    if img.size != (SIZE, SIZE):
        img = img.resize((SIZE, SIZE), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def load_image(path: Path) -> np.ndarray:
    """An image file of any size and colour -> 48x48 grey uint8."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return as_fer_image(img)
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
        dirs = [p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
        _refuse_unknown_classes(split_dir, [p for p in dirs if _class_index(p.name) is None])
        found = {_class_index(p.name): p for p in dirs}
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


def _refuse_unknown_classes(split_dir: Path, unknown: list[Path]) -> None:
    """A folder that is not one of the 7 classes would otherwise be left out without a word."""
    if not unknown:
        return
    counts = ", ".join(
        f"{p.name}/ ({sum(1 for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)} images)" for p in unknown)
    raise BionicError(f"{split_dir} holds {len(unknown)} folder(s) that are not FER-2013 classes: {counts}; "
                      f"the classes are {', '.join(EMOTIONS)}: move the other folders out of {split_dir}")


def read_csv(path: Path, progress: bool = True) -> FERRecords:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return _read_csv(path, fh, progress)
    except UnicodeDecodeError as exc:
        raise BionicError(f"{path} row {_first_non_utf8_line(path)}: not UTF-8 text ({exc.reason}); "
                          "save the file as UTF-8 (the original FER-2013 CSV is plain ASCII)") from None


def _first_non_utf8_line(path: Path) -> int:
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return n
    return n


def _csv_rows(path: Path, reader: csv.DictReader):
    """(line number where the row starts, row), one clear line for what the csv module refuses."""
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise BionicError(f"{path} row {start}: {exc} (an unterminated quote?); "
                              "fix the quoting of that row or delete it") from None
        yield start, row


def _read_csv(path: Path, fh, progress: bool) -> FERRecords:
    images, labels, usage, ids = [], [], [], []
    reader = csv.DictReader(fh, strict=True)
    columns = {c.strip().lower(): c for c in reader.fieldnames or []}
    missing = {"emotion", "pixels", "usage"} - set(columns)
    if missing:
        raise BionicError(f"{path} lacks column(s) {sorted(missing)}; expected emotion, pixels, Usage")
    unknown: dict[str, list[int]] = {}
    for n, row in _progress(_csv_rows(path, reader), f"decoding {path.name}", progress):
        label, pixels, use = (row.get(columns[k]) for k in ("emotion", "pixels", "usage"))

        def bad(what: str) -> BionicError:
            return BionicError(f"{path} row {n}: {what}; fix or delete that row")

        if label is None or pixels is None or use is None:
            absent = [k for k, v in (("emotion", label), ("pixels", pixels), ("Usage", use)) if v is None]
            raise bad(f"no {', '.join(absent)} field (each row needs emotion, pixels, Usage)")
        if row.get(None):
            raise bad(f"{3 + len(row[None])} fields where there should be 3 (emotion, pixels, Usage)")
        try:
            label = int(label)
            values = np.array(pixels.split(), dtype=np.int64)
        except (ValueError, OverflowError):
            raise bad(f"emotion '{label}' or the pixels do not parse as integers") from None
        if not 0 <= label < len(EMOTIONS):
            raise bad(f"emotion {label} is not one of 0-{len(EMOTIONS) - 1}")
        if values.size != SIZE * SIZE:
            raise bad(f"{values.size} pixel values where a {SIZE}x{SIZE} image has {SIZE * SIZE}")
        outside = values[(values < 0) | (values > 255)]
        if outside.size:
            raise bad(f"pixel value {int(outside[0])} is outside 0-255")
        use = use.strip()
        if use not in USAGES:
            unknown.setdefault(use, []).append(n)
        images.append(values.astype(np.uint8).reshape(SIZE, SIZE))
        labels.append(label)
        usage.append(use)
        ids.append(f"row {n}")
    if unknown:
        listed = "; ".join(f"'{u}' in {len(rows)} row(s), first row {rows[0]}" for u, rows in unknown.items())
        raise BionicError(f"{path}: unknown Usage {listed}; Usage must be one of {', '.join(USAGES)}: "
                          "fix those rows or delete them")
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
        used = set(USAGES)
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
        used = {train_name, test_name}
    _refuse_unassigned(records, used)
    return FERSplits(
        images={k: records.images[v] for k, v in idx.items()},
        labels={k: records.labels[v] for k, v in idx.items()},
        ids={k: [records.ids[i] for i in v.tolist()] for k, v in idx.items()},
        rule=rule,
        layout=records.layout,
        sources=sources,
    )


def _refuse_unassigned(records: FERRecords, assigned: set[str]) -> None:
    """Images whose Usage fits none of the splits (e.g. unprefixed files beside Training_ ones)."""
    left = {}
    for u, i in zip(records.usage, records.ids):
        if u not in assigned:
            left.setdefault(u, []).append(i)
    if left:
        listed = "; ".join(f"{len(ids)} with Usage '{u}' (e.g. {ids[0]})" for u, ids in left.items())
        raise BionicError(f"{listed} would be in no split; give every file the same kind of name "
                          "(all with Training_/PublicTest_/PrivateTest_ prefixes, or none)")


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
