"""Photos for `predict`: each readable photo becomes one 48x48 model input per face found in it.

What `predict` learns about each photo travels in two lists, in the photo order (sorted paths):
- ``photos``: one dict per photo: ``file``, ``name`` (its path under the predict folder, used for
  the annotated copy), ``status`` (``faces``, ``no_face`` or ``unreadable``), ``error``.
- ``records``: one dict per model input, in dataset order: ``file``, ``photo`` (index into
  ``photos``), ``face`` (0, 1, ... left to right), ``x``, ``y``, ``w``, ``h`` (the face's box in the
  photo's pixels; the whole image when faces are not looked for).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bionic.data.fer2013 import IMAGE_SUFFIXES, SIZE, as_fer_image
from bionic.errors import BionicError


@dataclass
class PredictInputs:
    images: torch.Tensor  # uint8 [N, 48, 48], one per record
    records: list[dict] = field(default_factory=list)
    photos: list[dict] = field(default_factory=list)


def predict_files(predict_path: str | None) -> tuple[Path, list[Path]]:
    """(the folder names are relative to, the photos in sorted order); one line when there are none."""
    if not predict_path:
        raise BionicError("predict needs --data.predict_path: a photo, or a folder of photos")
    path = Path(predict_path)
    if not path.exists():
        raise BionicError(f"--data.predict_path {path} does not exist; pass a photo or a folder of photos")
    if path.is_file():
        return path.parent, [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise BionicError(f"no images under {path} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return path, files


def read_photo(path: Path) -> tuple[np.ndarray, bool]:
    """(grey uint8 [H, W] at the photo's own size, whether it is already a 48x48 grey face crop)."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        is_grey = img.mode in ("1", "L", "LA", "I", "I;16", "F")
        rgb = None if is_grey else np.asarray(img.convert("RGB"))
        grey = np.asarray(img.convert("L"), dtype=np.uint8)
    if rgb is not None:  # a colour file whose three channels agree is grey all the same
        is_grey = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
    return grey, is_grey and grey.shape == (SIZE, SIZE)


def _whole_image(grey: np.ndarray) -> np.ndarray:
    from PIL import Image

    return as_fer_image(Image.fromarray(grey))


def load_predict_inputs(predict_path: str | None, faces: bool = True) -> PredictInputs:
    """Read, detect and crop every photo. A photo that cannot be read gets a warning line and an
    ``unreadable`` row; only when no photo at all can be read does predict stop (one line)."""
    from PIL import Image

    from bionic.faces import Box, crop_face, detect_faces

    root, files = predict_files(predict_path)
    inputs, records, photos = [], [], []
    for path in files:
        photo = {"file": str(path), "name": str(path.relative_to(root)), "status": "faces", "error": None}
        photos.append(photo)
        try:
            grey, is_crop = read_photo(path)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            photo.update(status="unreadable", error=f"{type(exc).__name__}: {exc}")
            print(f"warning: cannot read {path} ({photo['error']}); its row says unreadable", file=sys.stderr)
            continue
        h, w = grey.shape
        if not faces or is_crop:
            boxes, crops = [Box(0, 0, w, h)], [_whole_image(grey)]
        else:
            boxes = detect_faces(grey)
            crops = [crop_face(grey, b) for b in boxes]
            if not boxes:
                photo["status"] = "no_face"
        for i, (box, crop) in enumerate(zip(boxes, crops)):
            records.append({"file": str(path), "photo": len(photos) - 1, "face": i,
                            "x": box.x, "y": box.y, "w": box.w, "h": box.h})
            inputs.append(crop)
    if all(p["status"] == "unreadable" for p in photos):
        first = photos[0]
        more = f" (and {len(photos) - 1} more)" if len(photos) > 1 else ""
        raise BionicError(f"cannot read {first['file']}{more} as an image ({first['error']}); "
                          "pass photos in a format Pillow reads (jpg, png, bmp, tiff, webp, gif)")
    images = torch.from_numpy(np.stack(inputs)) if inputs else torch.empty(0, SIZE, SIZE, dtype=torch.uint8)
    return PredictInputs(images, records, photos)
