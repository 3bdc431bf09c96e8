"""``warp:LEVEL:SPEC``: the pairs of another source seen from a different viewpoint, with known geometry.

For measuring what a viewpoint change between history and current costs (and what alignment buys back),
every pair of SPEC is turned into one whose history is looked at from another camera pose:

- the *current* view is the central part of the current image (a margin of 20 % of each side cut away)
  and the mask is cut the same way, so the anomaly and its ground truth are untouched;
- the *history* view is the history image re-sampled through a homography around that central part:
  translation up to 10 % of the view's size, rotation up to 10 degrees, scale up to 15 %, and a mild
  perspective (each corner moved by up to 3 % more), each drawn uniformly in [0, LEVEL x maximum] with a
  random sign, from a generator seeded by the pair's key (the same pairs every time).

Because the history view is cut from the whole history image, its edges show real content, not padding;
at LEVEL 1 the homography stays inside the image for nearly every pair (a reflected border fills the rest).
LEVEL 0 gives the central parts without any warp: the registered reference for the same pixels.
``homography(i)`` returns the 3x3 map from current-view pixels to history-view pixels (for alignment tests).
"""
from __future__ import annotations

import hashlib
import math

import cv2
import numpy as np

from ..errors import UserError
from .source import Pair, Source
from .spec import parse_spec, register_source

MARGIN = 0.2
MAX_SHIFT, MAX_ROTATION_DEG, MAX_SCALE, MAX_PERSPECTIVE = 0.10, 10.0, 0.15, 0.03


def _rng(key: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "little"))


def view_homography(w: int, h: int, level: float, rng: np.random.Generator) -> np.ndarray:
    """The 3x3 map from view pixels (w x h) to the same-size history view's pixels, drawn at ``level``."""
    def draw(m: float) -> float:
        return float(rng.uniform(0.0, m * level) * rng.choice((-1.0, 1.0)))

    tx, ty = draw(MAX_SHIFT) * w, draw(MAX_SHIFT) * h
    angle, scale = math.radians(draw(MAX_ROTATION_DEG)), 1.0 + draw(MAX_SCALE)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    corners = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    moved = np.float32([[cx + c * (x - cx) - s * (y - cy) + tx, cy + s * (x - cx) + c * (y - cy) + ty] for x, y in corners])
    moved += np.float32([[draw(MAX_PERSPECTIVE) * w, draw(MAX_PERSPECTIVE) * h] for _ in range(4)])
    return cv2.getPerspectiveTransform(corners, moved).astype(np.float64)


def fixed_homography(w: int, h: int, shift_px: float, rotation_deg: float, rng: np.random.Generator) -> np.ndarray:
    """A shift of exactly ``shift_px`` pixels in a random direction and a rotation of exactly ``rotation_deg``
    degrees with a random sign about the view's centre (``move:``)."""
    a = rng.uniform(0.0, 2 * math.pi)
    tx, ty = shift_px * math.cos(a), shift_px * math.sin(a)
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), float(rotation_deg * rng.choice((-1.0, 1.0))), 1.0)
    m[:, 2] += (tx, ty)
    return np.vstack([m, [0.0, 0.0, 1.0]])


class WarpedSource(Source):
    def __init__(self, level: float, inner: Source, spec: str, fixed: tuple[float, float] | None = None):
        self.level, self.inner, self.spec, self.fixed = level, inner, spec, fixed
        self.names = inner.names

    def key(self, i: int) -> str:
        return self.inner.key(i)

    def _geometry(self, i: int, h: int, w: int) -> tuple[int, int, int, int, np.ndarray]:
        y0, x0 = int(round(h * MARGIN)), int(round(w * MARGIN))
        vh, vw = h - 2 * y0, w - 2 * x0
        rng = _rng(f"{self.spec}\n{self.inner.key(i)}")
        H = fixed_homography(vw, vh, *self.fixed, rng) if self.fixed else view_homography(vw, vh, self.level, rng)
        return y0, x0, vh, vw, H

    def homography(self, i: int) -> np.ndarray:
        """Current-view pixel -> history-view pixel, for pair ``i``."""
        pair = self.inner[i]
        return self._geometry(self._index(i), *pair.current.shape[:2])[4]

    def _load(self, i: int) -> Pair:
        pair = self.inner[i]
        y0, x0, vh, vw, H = self._geometry(i, *pair.current.shape[:2])
        crop = (slice(y0, y0 + vh), slice(x0, x0 + vw))
        # History view pixel p shows what the current view shows at H^-1 p, i.e. history-image pixel
        # offset + H^-1 p: sample the history image through that map.
        shift = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
        to_history = shift @ np.linalg.inv(H)
        hist = cv2.warpPerspective(pair.history, to_history, (vw, vh), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REFLECT101)
        mask = pair.mask[crop] if pair.mask is not None else None
        return Pair(name=pair.name, history=hist, current=np.ascontiguousarray(pair.current[crop]), mask=mask)


def _factory(arg: str, spec: str) -> Source:
    level_text, _, inner = arg.partition(":")
    try:
        level = float(level_text)
    except ValueError:
        level = -1.0
    if not 0.0 <= level <= 2.0 or not inner:
        raise UserError(f"data spec '{spec}': write warp:LEVEL:SPEC with LEVEL between 0 and 2 (1 = up to 10 % shift, "
                        "10 degrees, 15 % scale) and the SPEC of the pairs to warp.")
    return WarpedSource(level, parse_spec(inner), spec)


register_source("warp", _factory, "warp:LEVEL:SPEC  SPEC's pairs with the history seen from another viewpoint (LEVEL 1: up to "
                "10 % shift, 10 degrees, 15 % scale, mild perspective); central 60 % of the current")


def _move_factory(arg: str, spec: str) -> Source:
    fields = arg.split(":", 2)
    try:
        px, deg = float(fields[0]), float(fields[1])
        ok = len(fields) == 3 and fields[2] and 0 <= px <= 64 and 0 <= deg <= 30
    except (ValueError, IndexError):
        ok = False
    if not ok:
        raise UserError(f"data spec '{spec}': write move:PIXELS:DEGREES:SPEC with a shift of 0 to 64 pixels, a rotation of "
                        "0 to 30 degrees and the SPEC of the pairs to move.")
    return WarpedSource(0.0, parse_spec(fields[2]), spec, fixed=(px, deg))


register_source("move", _move_factory, "move:PX:DEG:SPEC SPEC's pairs with the history shifted by exactly PX pixels (random "
                "direction) and rotated by DEG degrees; central 60 % of the current, as warp:")
