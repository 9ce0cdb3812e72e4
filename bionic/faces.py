"""Find the faces in a photo and crop each the way FER-2013 crops its faces.

The networks only know tight, centred 48x48 face crops, so `predict` on an ordinary photo first
finds the faces. The detector is OpenCV's Haar cascade ``haarcascade_frontalface_alt2.xml``, which
ships inside the ``opencv-python-headless`` wheel and runs on a CPU: nothing is downloaded at run
time. It finds upright, roughly frontal faces of at least about 20 pixels; profiles, strongly
tilted heads and faces behind large occlusions are missed (the photo then gets a ``no_face`` row).
Of the bundled frontal cascades, alt2 found every face of a test canvas with no false alarm on
scikit-image's non-face photos; ``default`` found spurious faces in the retina image.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from bionic.data.fer2013 import SIZE  # the network's input: FER-2013's crop size
CASCADE = "haarcascade_frontalface_alt2.xml"
# FER-2013's crops run from the hairline to just under the chin and are nearly as wide as the face
# with the ears. The cascade's square runs from the eyebrows to the lower lip, so it is grown by
# 10% of its width on every side and its centre moved down by 5% of its height to take in the chin.
MARGIN = 0.10
DOWN_SHIFT = 0.05
# Detection works on a copy whose long side is at most this, so a 24-megapixel photo costs what a
# screen-sized one does; boxes are scaled back to the photo's own pixels.
DETECT_MAX_SIDE = 1024


@dataclass(frozen=True)
class Box:
    """A face's square in the photo's pixels: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int


@lru_cache(maxsize=1)
def _cascade():
    import cv2

    path = cv2.data.haarcascades + CASCADE
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():  # an OpenCV build without the bundled cascades (e.g. OpenCV 5 moved them out)
        from bionic.errors import BionicError

        raise BionicError(f"cannot load the face detector {path}; pip install 'opencv-python-headless<5', "
                          "or pass --data.faces false for images that are already face crops")
    return cascade


def detect_faces(grey: np.ndarray) -> list[Box]:
    """Boxes of the faces in a uint8 [H, W] image, left to right."""
    import cv2

    h, w = grey.shape
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = cv2.resize(grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else grey
    found = _cascade().detectMultiScale(cv2.equalizeHist(small), scaleFactor=1.1, minNeighbors=5, minSize=(20, 20))
    boxes = [Box(*(round(int(v) / scale) for v in b)) for b in (found if len(found) else [])]
    return sorted(boxes, key=lambda b: (b.x, b.y))


def crop_box(box: Box) -> tuple[int, int, int, int]:
    """The FER-2013-like square around a detected face: (left, top, right, bottom), may leave the photo."""
    side = max(box.w, box.h) * (1 + 2 * MARGIN)
    cx = box.x + box.w / 2
    cy = box.y + box.h / 2 + DOWN_SHIFT * box.h
    left, top = round(cx - side / 2), round(cy - side / 2)
    return left, top, left + round(side), top + round(side)


def crop_face(grey: np.ndarray, box: Box) -> np.ndarray:
    """48x48 uint8 crop of one face; where the square leaves the photo, the edge pixels are repeated."""
    from PIL import Image

    left, top, right, bottom = crop_box(box)
    h, w = grey.shape
    pad = max(0, -left, -top, right - w, bottom - h)
    if pad:
        grey = np.pad(grey, pad, mode="edge")
        left, top, right, bottom = left + pad, top + pad, right + pad, bottom + pad
    crop = Image.fromarray(grey[top:bottom, left:right])
    return np.asarray(crop.resize((SIZE, SIZE), Image.BILINEAR), dtype=np.uint8)
