"""What `predict` leaves in the run folder: predictions.csv (one row per face) and annotated photos.

``<run_dir>/predictions.csv`` columns: ``file, face, x, y, w, h, emotion, p_angry ... p_neutral``.
``face`` counts the faces of a photo from 0, left to right; ``x, y, w, h`` is the face's box in the
photo's pixels (the whole image when faces are not looked for). A photo with no face found has one
row with ``emotion`` ``no_face`` and the other columns empty; a photo that cannot be read, one
with ``unreadable``. ``<run_dir>/predictions/`` holds a copy of each photo with the boxes and the
top emotion and its probability drawn on, under the photo's own name.

An earlier predict's files are never overwritten: they are moved to ``predictions.<n>.csv`` and
``predictions.<n>/`` first, saying so.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from bionic import EMOTIONS

COLUMNS = ["file", "face", "x", "y", "w", "h", "emotion", *(f"p_{e}" for e in EMOTIONS)]
# Annotations are drawn on a copy at least this many pixels on its short side, so the label of a
# 48x48 crop is legible.
MIN_ANNOTATED_SIDE = 256


class PredictionWriter(BasePredictionWriter):
    """Collects the softmax outputs batch by batch and writes everything once predict has finished.

    It writes in ``teardown``, which Lightning calls after a predict that ran to the end (also one
    with no model input at all, when no photo had a face) and not after one that failed.
    """

    def __init__(self, run_dir: str | Path):
        super().__init__(write_interval="batch")
        self.run_dir = Path(run_dir)
        self.probs: dict[int, torch.Tensor] = {}

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self.probs = {}

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx=0) -> None:
        if batch_indices is None:  # a sampler Lightning cannot track: the batch carries its indices
            batch_indices = batch[1].tolist()
        for i, p in zip(batch_indices, prediction.detach().float().cpu()):
            self.probs[int(i)] = p

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if stage != "predict" or not trainer.is_global_zero:
            return
        # FER2013DataModule lists one record per model input and one entry per photo (bionic.data.photos).
        records, photos = trainer.datamodule.predict_records, trainer.datamodule.predict_photos
        rows = self.rows(records, photos)
        self._move_earlier()
        self.write_csv(rows)
        self.annotate(rows, photos)

    # -- the table ---------------------------------------------------------------------------
    def rows(self, records: list[dict], photos: list[dict]) -> list[dict]:
        by_photo: dict[int, list[dict]] = {}
        for i, rec in enumerate(records):
            p = self.probs.get(i)
            if p is None:  # e.g. --trainer.limit_predict_batches stopped before this input
                continue
            row = {k: rec.get(k) for k in ("file", "face", "x", "y", "w", "h")}
            row["emotion"] = EMOTIONS[int(p.argmax())]
            row.update({f"p_{e}": float(v) for e, v in zip(EMOTIONS, p.tolist())})
            by_photo.setdefault(rec["photo"], []).append(row)
        rows = []
        for n, photo in enumerate(photos):
            if photo["status"] in ("no_face", "unreadable"):
                rows.append({"file": photo["file"], "emotion": photo["status"]})
            rows.extend(by_photo.get(n, []))
        return rows

    def write_csv(self, rows: list[dict]) -> Path:
        out = self.run_dir / "predictions.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        table = io.StringIO(newline="")
        writer = csv.DictWriter(table, fieldnames=COLUMNS, restval="")
        writer.writeheader()
        writer.writerows({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
        with open(out, "w", newline="") as fh:
            fh.write(table.getvalue())
        # stdout carries the table too, as it always has, for a user who pipes predict somewhere.
        sys.stdout.write(table.getvalue())
        sys.stdout.flush()
        print(f"wrote {out} ({sum(map(is_face, rows))} faces, {len(rows)} rows)", file=sys.stderr)
        return out

    def _move_earlier(self) -> None:
        csv_path, img_dir = self.run_dir / "predictions.csv", self.run_dir / "predictions"
        if not (csv_path.exists() or img_dir.exists()):
            return
        n = 1
        while (self.run_dir / f"predictions.{n}.csv").exists() or (self.run_dir / f"predictions.{n}").exists():
            n += 1
        for old, new in ((csv_path, self.run_dir / f"predictions.{n}.csv"), (img_dir, self.run_dir / f"predictions.{n}")):
            if old.exists():
                old.rename(new)
                print(f"kept the earlier {old.name} as {new}", file=sys.stderr)

    # -- the pictures ------------------------------------------------------------------------
    def annotate(self, rows: list[dict], photos: list[dict]) -> Path:
        out_dir = self.run_dir / "predictions"
        faces: dict[str, list[dict]] = {}
        for row in rows:
            if is_face(row):
                faces.setdefault(row["file"], []).append(row)
        for photo in photos:
            if photo["status"] == "unreadable":
                continue
            target = out_dir / photo["name"]
            target.parent.mkdir(parents=True, exist_ok=True)
            annotated_image(photo["file"], faces.get(photo["file"], []), photo["status"]).save(target)
        print(f"annotated photos in {out_dir}", file=sys.stderr)
        return out_dir


def is_face(row: dict) -> bool:
    return row.get("emotion") in EMOTIONS


def annotated_image(path: str | Path, faces: list[dict], status: str = "faces"):
    """The photo in colour with each face's box and '<emotion> <probability>' drawn on it."""
    from PIL import Image, ImageDraw, ImageFont

    with Image.open(path) as img:
        img = img.convert("RGB")
    scale = max(1, -(-MIN_ANNOTATED_SIDE // min(img.size)))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    size = max(12, min(img.size) // 28)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        font = ImageFont.load_default()
    line = max(2, min(img.size) // 200)
    if status == "no_face":
        draw.text((line, line), "no face found", fill=(255, 64, 64), font=font, stroke_width=2, stroke_fill=(0, 0, 0))
    for face in faces:
        x, y, w, h = (int(face[k]) * scale for k in ("x", "y", "w", "h"))
        draw.rectangle((x, y, x + w - 1, y + h - 1), outline=(255, 215, 0), width=line)
        label = f"{face['emotion']} {face['p_' + face['emotion']]:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        ty = y - (bottom - top) - 2 * line if y - (bottom - top) - 2 * line >= 0 else y + h + line
        draw.rectangle((x, ty, x + right - left + 2 * line, ty + bottom - top + 2 * line), fill=(255, 215, 0))
        draw.text((x + line - left, ty + line - top), label, fill=(0, 0, 0), font=font)
    return img
