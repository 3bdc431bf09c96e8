"""What a person painted, as a mask, and back: the rule for paint layers. No Gradio here.

A paint layer arrives in one of two documented forms, and only those:

1. **A layer with transparency** (RGBA, LA, or a palette with a transparent colour), as the Label tab's
   brush exports it: a pixel is painted where its alpha is above 0, whatever its colour. A layer that
   is opaque everywhere (alpha 255 at every pixel) says nothing about where the paint is, so it counts
   as form 2.
2. **A plain black-and-white mask** (no transparency, or none used): every pixel is black (0: normal)
   or white (255: anomalous) in every channel; white is the mask.

Anything else (a greyscale or colour picture without transparency, grey levels, 16-bit values, a
0/1 label-index image) is ambiguous and refused with a sentence that says which forms are accepted:
guessing would save a mask the person did not paint (an ordinary greyscale mask read as "alpha
everywhere" became a 100 % mask).

**Boxes.** The Label tab's box tool sends a box as text, ``"x0 y0 x1 y1"`` in image pixels (two opposite
corners, both inclusive, in any order; spaces or commas between); :func:`parse_box` reads it and
:func:`box_mask` fills that rectangle, clipped to the image.
"""
from __future__ import annotations

import math
import re

import numpy as np

from anodfdnet.errors import UserError

BRUSH_RGB = (255, 0, 128)  # one fixed colour: the mask is where anything was painted
BRUSH_ALPHA = 0.55  # see-through, so the anomaly stays visible under the paint

FORMS = ("a layer with transparency (painted where alpha > 0), or a black-and-white mask "
         "(0 = normal, 255 = anomalous) without transparency")


def layer_mask(layer: np.ndarray, shape: tuple[int, int], what: str = "a paint layer") -> np.ndarray:
    """The painted pixels of one layer (an array as stored: HxW, HxWx2, HxWx3 or HxWx4), by the module's rule."""
    a = np.asarray(layer)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise UserError(f"{what} must be an image, got an array of shape {tuple(a.shape)}.")
    if a.shape[:2] != tuple(shape):
        raise UserError(f"{what} is {a.shape[1]}x{a.shape[0]} but the current image is {shape[1]}x{shape[0]}.")
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.dtype != np.uint8:
        raise UserError(f"{what} has {a.dtype} samples; send 8-bit {FORMS}.")
    colour, alpha = (a[..., :-1], a[..., -1]) if a.shape[2] in (2, 4) else (a, None)
    if alpha is not None and alpha.size and alpha.min() < 255:
        return alpha > 0
    lo, hi = colour.min(axis=2), colour.max(axis=2)
    binary = (lo == hi) & ((hi == 0) | (hi == 255))
    if not binary.all():
        n = int((~binary).sum())
        raise UserError(
            f"{what} is neither of the accepted forms: it has no transparency and {n:,} of its pixels are "
            f"not pure black or white. Send {FORMS}."
        )
    return hi == 255


def mask_from_layers(layers, shape: tuple[int, int]) -> np.ndarray:
    """The union of the painted pixels of every layer; empty when there is no layer."""
    mask = np.zeros(shape, bool)
    for i, layer in enumerate(layers or []):
        if layer is not None:
            mask |= layer_mask(layer, shape, "the paint layer" if len(layers) == 1 else f"paint layer {i + 1}")
    return mask


def paint_layer(mask: np.ndarray) -> np.ndarray:
    """An RGBA layer holding ``mask`` in the brush colour (what the editor shows as painted strokes)."""
    layer = np.zeros((*mask.shape, 4), np.uint8)
    layer[mask] = (*BRUSH_RGB, round(255 * BRUSH_ALPHA))
    return layer


def composite(current: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """The current image with an RGBA layer drawn over it (what the editor shows)."""
    a = layer[..., 3:4].astype(np.float32) / 255.0
    out = current.astype(np.float32) * (1 - a) + layer[..., :3].astype(np.float32) * a
    return np.round(out).astype(np.uint8)


MAX_BOX_CHARS = 120
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def parse_box(text: str, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), x0 <= x1 and y0 <= y1, of a box ``"x0 y0 x1 y1"`` (image pixels, corners inclusive,
    any order) on an image of ``shape``, clipped to it; a UserError when the text is not four numbers or the
    box lies outside the image."""
    if not isinstance(text, str) or len(text) > MAX_BOX_CHARS:
        raise UserError("a box is four numbers: x0 y0 x1 y1 (two opposite corners, in image pixels).")
    parts = [p for p in re.split(r"[\s,]+", text.strip()) if p]
    if len(parts) != 4 or not all(_NUMBER.match(p) for p in parts):
        shown = text.strip()[:40]
        raise UserError(f"a box is four numbers: x0 y0 x1 y1 (two opposite corners, in image pixels), got {shown!r}.")
    x0, y0, x1, y1 = (math.floor(float(p)) for p in parts)
    h, w = shape
    (x0, x1), (y0, y1) = sorted((x0, x1)), sorted((y0, y1))
    if x1 < 0 or y1 < 0 or x0 >= w or y0 >= h:
        raise UserError(f"the box ({x0}, {y0}) to ({x1}, {y1}) lies outside the {w}x{h} image.")
    return max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)


def box_mask(shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """The filled rectangle ``box`` (from :func:`parse_box`) as a mask of ``shape``."""
    x0, y0, x1, y1 = box
    mask = np.zeros(shape, bool)
    mask[y0:y1 + 1, x0:x1 + 1] = True
    return mask
