"""Training augmentations that teach the model which differences are *not* anomalies.

The paper augments with one of identity / vflip / hflip / rot180 applied alike to history, current and mask
(``geometric``). That keeps every pair perfectly registered and identically lit, which real pairs are not.
``nuisance`` (``train --augment nuisance``, the default) adds the differences an inspection camera really
produces between two visits, none of which changes the mask:

- **viewpoint**: the history re-sampled through a small random similarity (shift up to 4 px, rotation up to
  2 degrees, scale up to 4 %) half of the time: the misregistration left after alignment or a robot's
  repeatability;
- **scale**: the crop window scaled by 0.75-1.33 before it is resized to the training size, alike for
  all three, so defects of other sizes are seen (different lenses or distances);
- **photometry**: each image on its own, with probability 0.8, brightness, contrast, gamma and a colour
  cast, sometimes a slight blur or sensor noise: illumination drift and another exposure.

All draws come from the generator the dataset passes in, so a seeded run is repeatable.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

MODES = ("geometric", "nuisance")
_FLIPS = ("identity", "vflip", "hflip", "rot180")
MAX_SHIFT_PX, MAX_ROT_DEG, MAX_SCALE = 4.0, 2.0, 0.04
SCALE_RANGE = (0.75, 1.33)


def flip(a: np.ndarray, k: int) -> np.ndarray:
    """The paper's augmentation k of identity / vflip / hflip / rot180."""
    if k == 1:
        a = a[::-1]
    elif k == 2:
        a = a[:, ::-1]
    elif k == 3:
        a = a[::-1, ::-1]
    return np.ascontiguousarray(a)


def window_scale(rng: np.random.Generator) -> float:
    """How much larger (or smaller) than the training size the crop window is taken."""
    lo, hi = SCALE_RANGE
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def misregister(hist: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The history seen through a small random similarity about its centre (reflected at the edges)."""
    h, w = hist.shape[:2]
    angle = rng.uniform(-MAX_ROT_DEG, MAX_ROT_DEG)
    scale = 1.0 + rng.uniform(-MAX_SCALE, MAX_SCALE)
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale)
    m[:, 2] += rng.uniform(-MAX_SHIFT_PX, MAX_SHIFT_PX, size=2)
    return cv2.warpAffine(hist, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another exposure and illumination of the same scene (uint8 HxWx3 in, uint8 out)."""
    if rng.random() >= 0.8:
        return img
    x = img.astype(np.float32) / 255.0
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.7, 1.3) + mean  # contrast
    x = x * rng.uniform(0.75, 1.25) + rng.uniform(-0.08, 0.08)  # brightness
    x = x * rng.uniform(0.92, 1.08, size=3).astype(np.float32)  # colour cast
    x = np.clip(x, 0.0, 1.0) ** rng.uniform(0.8, 1.25)  # gamma
    if rng.random() < 0.2:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.4, 1.0))
    if rng.random() < 0.3:
        x = x + rng.normal(0.0, rng.uniform(0.005, 0.02), size=x.shape).astype(np.float32)
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
