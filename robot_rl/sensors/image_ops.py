"""Crop-then-resize for images, with the matching intrinsics update.

Order is fixed: crop (x, y, w, h) in native pixels first, then resize the
crop to (width, height) with ``cv2.INTER_AREA``. Intrinsics follow the same
two steps, using the pixel-centre convention of OpenCV and librealsense
(integer coordinates are pixel centres):

* crop:   cx' = cx - x,                cy' = cy - y,         fx, fy unchanged
* resize: sx = W_out / w,  sy = H_out / h
          fx' = fx * sx,               fy' = fy * sy
          cx' = (cx + 0.5) * sx - 0.5, cy' = (cy + 0.5) * sy - 0.5

The half-pixel terms are what cv2.resize actually does to pixel centres; a
naive ``cx * sx`` is off by ``0.5 * (sx - 1)`` px (e.g. 0.25 px at 2x down).
Distortion coefficients act on normalised coordinates, so they are unchanged.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import cv2
import numpy as np

from .base import CameraIntrinsics

Crop = tuple[int, int, int, int]
Size = tuple[int, int]


def _as_int_tuple(value: Sequence[int], n: int, what: str) -> tuple[int, ...]:
    try:
        items = tuple(value)
    except TypeError:
        raise ValueError(f"{what} must be a sequence of {n} ints, got {value!r}") from None
    if len(items) != n or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                  for v in items):
        raise ValueError(f"{what} must be {n} ints, got {value!r}")
    return tuple(int(v) for v in items)


def validate_crop(crop: Sequence[int], width: int, height: int) -> Crop:
    """Check that crop (x, y, w, h) lies fully inside a width x height image."""
    x, y, w, h = _as_int_tuple(crop, 4, "crop (x, y, w, h)")
    if w <= 0 or h <= 0:
        raise ValueError(f"crop {crop!r}: width and height must be positive")
    if x < 0 or y < 0 or x + w > width or y + h > height:
        raise ValueError(
            f"crop (x={x}, y={y}, w={w}, h={h}) falls outside the {width}x{height} image: "
            f"need 0 <= x, x + w <= {width}, 0 <= y, y + h <= {height}"
        )
    return x, y, w, h


def validate_size(size: Sequence[int], what: str = "resize (width, height)") -> Size:
    w, h = _as_int_tuple(size, 2, what)
    if w <= 0 or h <= 0:
        raise ValueError(f"{what} must be positive, got {size!r}")
    return w, h


class ImageTransform:
    """Validated crop+resize for a fixed input size; apply to images and intrinsics.

    Built once when the stream size is known, so a bad crop fails at start()
    rather than on the first frame.
    """

    def __init__(self, in_width: int, in_height: int,
                 crop: Sequence[int] | None = None, resize: Sequence[int] | None = None):
        self.in_size: Size = validate_size((in_width, in_height), "input size")
        self.crop: Crop | None = validate_crop(crop, in_width, in_height) if crop is not None else None
        self.resize: Size | None = validate_size(resize) if resize is not None else None
        if self.resize is not None:
            self.out_size: Size = self.resize
        elif self.crop is not None:
            self.out_size = (self.crop[2], self.crop[3])
        else:
            self.out_size = self.in_size

    @property
    def is_identity(self) -> bool:
        return self.crop is None and (self.resize is None or self.resize == self.in_size)

    def apply(self, image: np.ndarray, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
        """Crop then resize. Returns a C-contiguous array (a copy when cropped)."""
        h, w = image.shape[:2]
        if (w, h) != self.in_size:
            raise ValueError(f"image is {w}x{h}, transform expects {self.in_size[0]}x{self.in_size[1]}")
        if self.crop is not None:
            x, y, cw, ch = self.crop
            image = image[y:y + ch, x:x + cw]
        if self.resize is not None and (image.shape[1], image.shape[0]) != self.resize:
            image = cv2.resize(image, self.resize, interpolation=interpolation)
        return np.ascontiguousarray(image)

    def intrinsics(self, intr: CameraIntrinsics) -> CameraIntrinsics:
        if (intr.width, intr.height) != self.in_size:
            raise ValueError(
                f"intrinsics are for {intr.width}x{intr.height}, transform expects "
                f"{self.in_size[0]}x{self.in_size[1]}"
            )
        return crop_resize_intrinsics(intr, self.crop, self.resize)


def crop_resize_intrinsics(intr: CameraIntrinsics, crop: Sequence[int] | None,
                           resize: Sequence[int] | None) -> CameraIntrinsics:
    """Intrinsics of ``crop_resize(img, crop, resize)`` given those of ``img``."""
    out = intr
    if crop is not None:
        x, y, w, h = validate_crop(crop, intr.width, intr.height)
        out = replace(out, width=w, height=h, cx=out.cx - x, cy=out.cy - y)
    if resize is not None:
        rw, rh = validate_size(resize)
        sx, sy = rw / out.width, rh / out.height
        out = replace(out, width=rw, height=rh, fx=out.fx * sx, fy=out.fy * sy,
                      cx=(out.cx + 0.5) * sx - 0.5, cy=(out.cy + 0.5) * sy - 0.5)
    return out


def crop_resize(image: np.ndarray, crop: Sequence[int] | None,
                resize: Sequence[int] | None) -> np.ndarray:
    """One-shot crop (x, y, w, h) then INTER_AREA resize to (width, height)."""
    h, w = image.shape[:2]
    return ImageTransform(w, h, crop, resize).apply(image)
