"""Face detection and FER-2013-like cropping on photos made from scikit-image's sample images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bionic.faces import MARGIN, Box, crop_box, crop_face, detect_faces

skimage_data = pytest.importorskip("skimage.data")

# Where the face is in scikit-image's 512x512 astronaut (left, top, right, bottom), read off the photo:
# from the hairline to under the chin, ear to ear.
ASTRONAUT_FACE = (174, 58, 274, 168)
# (side of the pasted copy, its top-left corner on the canvas)
PASTES = [(300, (20, 40)), (200, (420, 330)), (250, (700, 60))]


def astronaut_canvas() -> tuple[Image.Image, list[tuple[float, float, float, float]]]:
    """A 1000x600 colour photo with three astronauts of different sizes, and where their faces are."""
    astronaut = Image.fromarray(skimage_data.astronaut())
    canvas = Image.new("RGB", (1000, 600), (90, 110, 130))
    faces = []
    for side, (x, y) in PASTES:
        canvas.paste(astronaut.resize((side, side), Image.BILINEAR), (x, y))
        k = side / 512
        faces.append(tuple(v * k + off for v, off in zip(ASTRONAUT_FACE, (x, y, x, y))))
    return canvas, faces


def overlap(box, face) -> float:
    """Fraction of the box's area that lies on the face."""
    left, top, right, bottom = box
    w = max(0.0, min(right, face[2]) - max(left, face[0]))
    h = max(0.0, min(bottom, face[3]) - max(top, face[1]))
    return w * h / ((right - left) * (bottom - top))


def as_grey(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L"))


def test_every_face_of_a_group_photo_is_found_once():
    canvas, faces = astronaut_canvas()
    boxes = detect_faces(as_grey(canvas))
    assert len(boxes) == len(faces)
    assert [b.x for b in boxes] == sorted(b.x for b in boxes)  # face indices run left to right
    for box, face in zip(boxes, sorted(faces)):
        assert overlap((box.x, box.y, box.x + box.w, box.y + box.h), face) > 0.8
        # and the crop that the network sees holds most of the face, not a corner of it
        assert overlap(face, crop_box(box)) > 0.8


def test_a_cat_and_a_cup_have_no_face():
    for img in (skimage_data.chelsea(), skimage_data.coffee()):
        assert detect_faces(as_grey(Image.fromarray(img))) == []


def test_large_photos_are_detected_at_their_own_scale():
    canvas, faces = astronaut_canvas()
    big = canvas.resize((3000, 1800), Image.BILINEAR)  # past the detector's working size
    boxes = detect_faces(as_grey(big))
    assert len(boxes) == len(faces)
    for box, face in zip(boxes, sorted(faces)):
        assert overlap((box.x / 3, box.y / 3, (box.x + box.w) / 3, (box.y + box.h) / 3), face) > 0.8


def test_crop_adds_the_fer_margin_around_the_box():
    box = Box(100, 100, 100, 100)
    left, top, right, bottom = crop_box(box)
    assert right - left == bottom - top == round(100 * (1 + 2 * MARGIN))
    assert left < box.x and top < box.y and right > box.x + box.w and bottom > box.y + box.h
    assert (top + bottom) / 2 > box.y + box.h / 2  # moved down to take in the chin


def test_crop_of_a_face_at_the_edge_is_still_48x48():
    grey = np.full((120, 160), 200, np.uint8)
    grey[:60, :60] = 10
    out = crop_face(grey, Box(0, 0, 60, 60))
    assert out.shape == (48, 48) and out.dtype == np.uint8
    assert out[24, 24] == 10  # the face itself, not the padding, fills the middle
