"""Step 4, the nuisance: how much history and current may differ without an anomaly (``Hardness``, ``easy``
and ``hard``), and the photometric part of it, drawn independently for each image and never in the mask:
illumination gradient, colour drift (gain, bias, gamma per channel), blur, sensor noise, JPEG artefacts,
and with ``hard`` cast shadows and glare. (The viewpoint part is ``views``.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .canvas import _F32, _blob, _fbm, _gradient, _grid, _poly_mask, _rgb, _sensor_noise


@dataclass(frozen=True)
class Hardness:
    """Ranges of the nuisance between history and current (all maxima; draws are uniform)."""

    shift: float  # translation, fraction of the image size
    rot: float  # rotation, degrees
    scale: float  # zoom, fraction (1 +- scale)
    keystone: float  # independent corner jitter, fraction of the size (perspective)
    margin: float  # world size / output size, enough for the motion above
    gain: float  # global brightness gain, 1 +- gain
    channel: float  # per-channel gain (colour drift), 1 +- channel
    bias: float  # per-channel bias, grey levels
    gamma: float  # per-channel gamma, 1 +- gamma
    illum: float  # amplitude of the smooth illumination field
    blur: float  # maximum Gaussian blur sigma, pixels at 256
    noise: float  # maximum sensor noise sigma, grey levels
    shadow: float  # probability of a cast shadow / glare in an image


HARDNESS = {
    "easy": Hardness(0.04, 3.0, 0.05, 0.008, 1.32, 0.10, 0.03, 4.0, 0.05, 0.12, 0.8, 3.0, 0.0),
    "hard": Hardness(0.10, 8.0, 0.12, 0.02, 1.62, 0.22, 0.05, 8.0, 0.10, 0.28, 1.5, 6.0, 0.5),
}


def _photometric(img: np.ndarray, rng: np.random.Generator, hz: Hardness) -> np.ndarray:
    """Blur, colour drift, illumination field, shadows/glare, sensor noise and JPEG (uint8 in/out)."""
    H, W = img.shape[:2]
    n = min(H, W)
    if rng.random() < 0.6:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, hz.blur) * n / 256)
    g = math.exp(rng.uniform(-1, 1) * math.log1p(hz.gain))
    x = np.arange(256, dtype=_F32)[:, None]
    gain = g * (1 + rng.uniform(-hz.channel, hz.channel, 3))
    bias = rng.uniform(-hz.bias, hz.bias, 3)
    gamma = np.exp(rng.uniform(-1, 1, 3) * math.log1p(hz.gamma))
    lut = 255 * np.clip((x * gain + bias) / 255, 0, 1) ** gamma
    img = cv2.LUT(img, np.clip(lut + 0.5, 0, 255).astype(np.uint8).reshape(256, 1, 3))
    # a smooth illumination field, made at a quarter of the resolution
    h, w = max(8, H // 4), max(8, W // 4)
    field = 1 + hz.illum * rng.uniform(0.3, 1) * _gradient(rng, h, w)
    if rng.random() < 0.5:
        field += hz.illum * 0.8 * (_fbm(rng, h, w, base=2, octaves=2) - 0.5)
    if rng.random() < hz.shadow:  # cast shadow of something outside the view
        poly = _blob(rng, rng.uniform(0, 1, 2) * np.array([w, h]), rng.uniform(0.3, 0.7) * min(h, w),
                     aspect=rng.uniform(1, 3), angle=rng.uniform(0, np.pi), roughness=0.3)
        sh = cv2.GaussianBlur(_poly_mask((h, w), [poly]), (0, 0), rng.uniform(0.7, 3) * n / 256)
        field *= 1 - rng.uniform(0.2, 0.45) * sh
    if rng.random() < hz.shadow * 0.6:  # glare
        yy, xx = _grid(h, w)
        c, r = rng.uniform(0, 1, 2) * np.array([w, h]), rng.uniform(0.08, 0.3) * min(h, w)
        field += rng.uniform(0.25, 0.6) * np.exp(-(xx - c[0]) ** 2 / (2 * r * r)) * np.exp(-(yy - c[1]) ** 2 / (2 * r * r))
    field = cv2.resize(field, (W, H), interpolation=cv2.INTER_LINEAR)
    out = img.astype(_F32)
    cv2.multiply(out, _rgb(field), dst=out)
    cv2.scaleAdd(_sensor_noise(rng, H, W), float(rng.uniform(0.5, hz.noise)), out, dst=out)
    img = np.clip(out, 0, 255, out=out).astype(np.uint8)
    q = int(rng.integers(60, 96))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) if ok else img
