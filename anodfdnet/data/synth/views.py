"""Step 2, the views: history and current are two perspective views of the world, the current one moved
by a random shift, rotation, scale and keystone (the hardness's viewpoint change), both inside the world.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .nuisance import Hardness


def _view_corners(rng: np.random.Generator, n: int, size: int, base: np.ndarray | None, hz: Hardness) -> np.ndarray:
    """World points of the output's four corners: a random placement, or ``base`` moved by the
    hardness's viewpoint change. Shrinks the motion until the view lies inside the world."""
    square = np.array([(0, 0), (size, 0), (size, size), (0, size)], np.float64)
    if base is None:
        base = square + (n - size) / 2
        shift, rot, scale, key = 0.015, 1.0, 0.02, 0.003
    else:
        shift, rot, scale, key = hz.shift, hz.rot, hz.scale, hz.keystone
    t = rng.uniform(-1, 1, 2) * shift * size
    a = math.radians(rng.uniform(-rot, rot))
    s = math.exp(rng.uniform(-1, 1) * math.log1p(scale))
    k = rng.uniform(-1, 1, (4, 2)) * key * size
    mid = base.mean(0)
    for _ in range(12):
        R = s * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        pts = (base - mid) @ R.T + mid + t + k
        if pts.min() >= 0.5 and pts.max() <= n - 1.5:
            return pts
        t, a, s, k = t * 0.75, a * 0.75, s ** 0.75, k * 0.75
    return base.copy()


def _warp(world: np.ndarray, corners: np.ndarray, size: int) -> np.ndarray:
    """The size x size uint8 view whose corners sit at ``corners`` in the world."""
    square = np.float32([(0, 0), (size, 0), (size, size), (0, size)])
    M = cv2.getPerspectiveTransform(square, corners.astype(np.float32))
    out = cv2.warpPerspective(world, M, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
