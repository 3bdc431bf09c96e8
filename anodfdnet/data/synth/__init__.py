"""Generated history/current pairs with exact anomaly masks (the ``synth:`` data SPEC).

Real labelled pairs are scarce, so training mixes in generated ones that teach the model what an
*abnormal* difference is and which differences are nuisance. A pair is made in four steps:

1. **Scene.** A "world" canvas larger than the output is painted: a background (a random crop of a
   photograph or texture shipped inside scikit-image's wheel, read from its data folder with no
   download, or a procedural surface: painted or brushed metal, concrete, corrugated sheet, hazard
   stripes) and machine parts drawn with OpenCV on top of it (pipes, plates with rivets or bolts,
   flanges with a bolt circle, cables, loose bolts and nuts), lit from one direction with shadows.
2. **Views.** History and current are two perspective views of that world (the current one moved by
   a random shift, rotation, scale and keystone; ``hard`` roughly doubles to triples the motion).
   Both views stay inside the world, so there are never black borders.
3. **Anomaly**, in the current image only: a foreign body, a missing component, a loose/displaced
   component, an oil leak, or a scratch/crack; about 15% of pairs have none. A missing or displaced
   part is removed from or moved in the world before the current view is taken; the others are
   painted in the current view's own frame.
4. **Nuisance**, independently on both images and never in the mask: illumination gradient, colour
   drift (gain, bias, gamma per channel), blur, sensor noise, JPEG artefacts (``hard`` adds cast
   shadows and glare).

The mask is exact by construction. With ``A`` the clean current view with the anomaly and ``B``
the same view without it (both uint8), the mask holds every pixel where some channel of ``A`` and
``B`` differs by more than :data:`CHANGE_LEVEL`, plus the anomaly's footprint: for a painted anomaly
(foreign body, scratch, oil film where its opacity exceeds 0.25) the footprint pixels that changed at
all, for a missing or moved part the whole union of its footprints before and after (where a moved
part happens to cover the same colours it is still the part). The clean current is ``A`` inside the
mask and ``B`` outside, so with ``nuisance=False`` the two images are equal outside the mask, and for
painted anomalies ``mask == (current != history).any(-1)`` exactly.
"""
from __future__ import annotations

import functools
import importlib.util
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
from PIL import Image

from ..source import Pair, Source, register_source
from ...errors import UserError
from ..images import save_mask_png

ANOMALIES = ("foreign_body", "missing", "displaced", "oil_leak", "scratch")
KINDS = ("none",) + ANOMALIES
NONE_FRACTION = 0.15  # share of pairs with no anomaly when the kind is drawn at random
CHANGE_LEVEL = 10  # a pixel is in the mask when the anomaly moved some channel by more than this
MAX_MASK_FRACTION = 0.30  # an anomaly never covers more than this share of the image

_F32 = np.float32


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

# ----------------------------------------------------------------------------------------------
# Photographs and textures from scikit-image's data folder (shipped in the wheel, no download)

# surfaces and machinery for backgrounds; anything (animals, people, documents) for pasted debris
_BACKGROUND_PHOTOS = ("brick", "gravel", "grass", "moon", "coins", "motorcycle_left", "rocket", "text", "cell")
_PASTE_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "coins", "gravel", "grass", "page", "text", "rocket",
                 "motorcycle_left", "ihc", "logo", "retina", "hubble_deep_field", "brick", "moon")
_PHOTO_FILES = {
    "astronaut": "astronaut.png", "brick": "brick.png", "camera": "camera.png", "cell": "cell.png",
    "chelsea": "chelsea.png", "coffee": "coffee.png", "coins": "coins.png", "grass": "grass.png",
    "gravel": "gravel.png", "hubble_deep_field": "hubble_deep_field.jpg", "ihc": "ihc.png",
    "logo": "logo.png", "moon": "moon.png", "motorcycle_left": "motorcycle_left.png", "page": "page.png",
    "retina": "retina.jpg", "rocket": "rocket.jpg", "text": "text.png",
}


def _skimage_data_dir() -> Path | None:
    spec = importlib.util.find_spec("skimage")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "data"


@functools.cache
def _photo(name: str) -> np.ndarray | None:
    """An RGB uint8 photograph from scikit-image's data folder, or None where it is not installed."""
    folder = _skimage_data_dir()
    if folder is None or not (folder / _PHOTO_FILES[name]).is_file():
        return None
    try:
        with Image.open(folder / _PHOTO_FILES[name]) as im:
            rgb = np.asarray(im.convert("RGB"))
    except OSError:
        return None
    rgb.setflags(write=False)
    return rgb


@functools.cache
def available_photos() -> tuple[str, ...]:
    """The photograph names that load from this installation (all of them with scikit-image)."""
    return tuple(n for n in _PHOTO_FILES if _photo(n) is not None)


def _photo_crop(rng: np.random.Generator, names: Iterable[str], h: int, w: int) -> np.ndarray | None:
    """A random crop of a random photo, flipped/rotated and resized to h x w (uint8), or None."""
    names = [n for n in names if n in available_photos()]
    if not names:
        return None
    img = _photo(names[int(rng.integers(len(names)))])
    k = int(rng.integers(4))
    if k % 2:
        h, w = w, h
    H, W = img.shape[:2]
    zoom = rng.uniform(0.5, 1.6)  # output pixels per photo pixel
    ch, cw = h / zoom, w / zoom
    s = min(1.0, H / ch, W / cw)  # zoom in further where the photo is too small
    ch, cw = max(4, int(ch * s)), max(4, int(cw * s))
    y, x = int(rng.integers(H - ch + 1)), int(rng.integers(W - cw + 1))
    crop = cv2.resize(img[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    if k:
        crop = cv2.rotate(crop, (cv2.ROTATE_90_COUNTERCLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_CLOCKWISE)[k - 1])
    if rng.random() < 0.5:
        crop = cv2.flip(crop, 1)
    return crop


# ----------------------------------------------------------------------------------------------
# Small drawing helpers (float32 RGB canvases, values 0..255)

_SHIFT = 4  # sub-pixel bits for cv2 drawing
_ONE = 1 << _SHIFT

_PAINTS = np.array([  # industrial paint colours, RGB
    (88, 118, 92), (70, 96, 130), (190, 160, 40), (150, 60, 45), (120, 120, 118), (200, 200, 195),
    (60, 62, 66), (170, 110, 50), (40, 90, 75), (215, 120, 35), (110, 130, 140), (150, 140, 120),
], _F32)
_METALS = np.array([  # hardware finishes
    (165, 165, 168), (190, 188, 180), (200, 185, 120), (70, 70, 75), (180, 150, 80), (150, 155, 165),
    (120, 118, 112),
], _F32)
_CABLES = np.array([(35, 35, 38), (60, 60, 65), (160, 40, 35), (40, 70, 150), (220, 120, 30), (200, 190, 60),
                    (70, 130, 60), (150, 150, 150)], _F32)


def _pick(rng: np.random.Generator, table: np.ndarray, jitter: float = 12.0) -> np.ndarray:
    c = table[int(rng.integers(len(table)))] + rng.uniform(-jitter, jitter, 3)
    return np.clip(c, 0, 255).astype(_F32)


def _pts(p: np.ndarray) -> np.ndarray:
    """Float points -> fixed-point int32 for cv2 drawing with ``shift=_SHIFT``."""
    return np.round(np.asarray(p, np.float64) * _ONE).astype(np.int32)


def _poly_mask(shape: tuple[int, int], polys: list[np.ndarray], aa: bool = True) -> np.ndarray:
    """Anti-aliased coverage (float32 0..1) of filled polygons."""
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [_pts(p) for p in polys], 255, cv2.LINE_AA if aa else cv2.LINE_8, _SHIFT)
    return m.astype(_F32) * (1 / 255)


def _circle_mask(shape, c, r) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.circle(m, tuple(int(v) for v in _pts(c)), int(round(r * _ONE)), 255, -1, cv2.LINE_AA, _SHIFT)
    return m.astype(_F32) * (1 / 255)


def _line_mask(shape, pts: np.ndarray, thickness: float) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.polylines(m, [_pts(pts)], False, 255, max(1, int(round(thickness))), cv2.LINE_AA, _SHIFT)
    return m.astype(_F32) * (1 / 255)


def _blob(rng: np.random.Generator, c, r: float, aspect: float = 1.0, angle: float = 0.0,
          roughness: float = 0.25, n: int = 28) -> np.ndarray:
    """An irregular closed outline (n x 2 float points) around c with mean radius r."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rad = np.ones(n)
    for k in range(2, 6):
        rad += roughness / k * rng.uniform(0.3, 1.0) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    rad += rng.uniform(-roughness, roughness, n) * 0.25
    rad = np.clip(rad, 0.35, None) * r
    x, y = rad * np.cos(t) * aspect, rad * np.sin(t) / aspect
    ca, sa = math.cos(angle), math.sin(angle)
    return np.stack([c[0] + ca * x - sa * y, c[1] + sa * x + ca * y], 1)


def _bezier(ctrl: np.ndarray, n: int = 40) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2, p3 = ctrl
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates as broadcastable float32 arrays of shapes (h, 1) and (1, w)."""
    return np.arange(h, dtype=_F32)[:, None], np.arange(w, dtype=_F32)[None, :]


def _shade(nx: np.ndarray, ny: np.ndarray, light: np.ndarray, shine: float = 0.5, power: float = 18.0):
    """Lambert + Phong brightness for unit surface normals (nx, ny, nz>=0) under a light direction."""
    nz = np.sqrt(np.clip(1 - nx * nx - ny * ny, 0, 1))
    lx, ly, lz = light
    lam = np.clip(nx * lx + ny * ly + nz * lz, 0, 1)
    hx, hy, hz = lx, ly, lz + 1.0  # half vector with the viewer straight above
    hn = math.sqrt(hx * hx + hy * hy + hz * hz)
    spec = np.clip((nx * hx + ny * hy + nz * hz) / hn, 0, 1) ** power
    return (0.32 + 0.68 * lam).astype(_F32), (shine * spec).astype(_F32)


def _dome(shape, c, r, light, shine=0.5, concave=False):
    """Brightness and specular of a sphere cap of radius r at c over an ROI grid."""
    yy, xx = _grid(*shape)
    nx, ny = (xx - c[0]) / r, (yy - c[1]) / r
    inside = nx * nx + ny * ny
    s = np.where(inside < 1, 1.0, 1 / np.sqrt(np.maximum(inside, 1e-6))).astype(_F32) * 0.999
    nx, ny = nx * s, ny * s
    if concave:
        nx, ny = -nx, -ny
    return _shade(nx, ny, light, shine)


# Per-pixel maps are applied to the three channels with OpenCV, which is several times faster than
# numpy broadcasting over a trailing axis of length 3; OpenCV writes into numpy views in place.


def _rgb(a: np.ndarray) -> np.ndarray:
    """A float32 HxW map repeated into three channels."""
    return cv2.cvtColor(np.ascontiguousarray(a, _F32), cv2.COLOR_GRAY2RGB)


def _blend(canvas: np.ndarray, color: np.ndarray, alpha: np.ndarray) -> None:
    """canvas = canvas * (1 - alpha) + color * alpha, in place (color HxWx3 or a 3-vector)."""
    if np.ndim(color) == 1:
        delta = np.empty_like(canvas)
        delta[:] = color
        cv2.subtract(delta, canvas, dst=delta)
    else:
        delta = cv2.subtract(np.asarray(color, _F32), canvas)
    cv2.multiply(delta, _rgb(alpha), dst=delta)
    cv2.add(canvas, delta, dst=canvas)


def _darken(canvas: np.ndarray, amount: np.ndarray) -> None:
    """canvas *= 1 - amount, in place."""
    cv2.multiply(canvas, _rgb(1 - amount), dst=canvas)


def _shadow_of(alpha: np.ndarray, offset: np.ndarray, sigma: float, strength: float) -> np.ndarray:
    """A soft drop shadow: alpha shifted by offset, blurred, times strength."""
    m = np.float32([[1, 0, offset[0]], [0, 1, offset[1]]])
    sh = cv2.warpAffine(alpha, m, (alpha.shape[1], alpha.shape[0]), flags=cv2.INTER_LINEAR)
    if sigma > 0.3:
        sh = cv2.GaussianBlur(sh, (0, 0), sigma)
    return sh * strength


def _record(fp: np.ndarray | None, roi: "_Roi", alpha: np.ndarray) -> None:
    """Accumulate a part's coverage into a world-sized footprint map (when one is given)."""
    if fp is not None:
        view = fp[roi.y0:roi.y1, roi.x0:roi.x1]
        np.maximum(view, alpha, out=view)


class _Roi:
    """A window of the canvas around a part; points are converted with ``local``."""

    def __init__(self, canvas: np.ndarray, lo, hi):
        H, W = canvas.shape[:2]
        self.x0, self.y0 = max(0, int(math.floor(lo[0]))), max(0, int(math.floor(lo[1])))
        self.x1, self.y1 = min(W, int(math.ceil(hi[0]))), min(H, int(math.ceil(hi[1])))
        self.empty = self.x1 <= self.x0 or self.y1 <= self.y0
        self.view = canvas[self.y0:self.y1, self.x0:self.x1]
        self.shape = self.view.shape[:2]

    def local(self, p) -> np.ndarray:
        return np.asarray(p, _F32) - np.array([self.x0, self.y0], _F32)


_NOISE_BANK = 512


@functools.cache
def _noise_bank() -> np.ndarray:
    """A fixed block of standard normal noise; crops of it are the sensor noise (much faster than
    drawing fresh noise per image, and as deterministic)."""
    bank = np.random.default_rng(20240531).standard_normal((_NOISE_BANK, _NOISE_BANK, 3), dtype=_F32)
    bank[..., 1:] = 0.4 * bank[..., 1:] + 0.9 * bank[..., :1]  # mostly luminance noise, some chroma
    bank.setflags(write=False)
    return bank


def _sensor_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    if h > _NOISE_BANK or w > _NOISE_BANK:
        return rng.standard_normal((h, w, 3), dtype=_F32)
    y, x = int(rng.integers(_NOISE_BANK - h + 1)), int(rng.integers(_NOISE_BANK - w + 1))
    return _noise_bank()[y:y + h, x:x + w]


# ----------------------------------------------------------------------------------------------
# Backgrounds


def _fbm(rng: np.random.Generator, h: int, w: int, base: int = 3, octaves: int = 4,
         persistence: float = 0.5, aniso: float = 1.0) -> np.ndarray:
    """Fractal value noise in [0, 1], float32 h x w; aniso > 1 stretches it along x.

    The octaves are summed on the finest octave's small grid and resized to h x w once."""
    k = base * 2 ** (octaves - 1) + 1
    gh, gw = k, max(2, int(k / aniso))
    out = np.zeros((gh, gw), _F32)
    amp = 1.0
    for o in range(octaves):
        kk = base * 2 ** o + 1
        small = rng.random((kk, max(2, int(kk / aniso))), dtype=_F32)
        out += amp * cv2.resize(small, (gw, gh), interpolation=cv2.INTER_CUBIC)
        amp *= persistence
    out = cv2.resize(out, (w, h), interpolation=cv2.INTER_CUBIC)
    lo, hi, _, _ = cv2.minMaxLoc(out)
    return (out - lo) * (1 / max(hi - lo, 1e-6))


def _gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A linear ramp in [-1, 1] in a random direction."""
    a = rng.uniform(0, 2 * np.pi)
    yy, xx = _grid(h, w)
    g = (xx - w / 2) * math.cos(a) + (yy - h / 2) * math.sin(a)
    return g * (1 / max(w / 2 * abs(math.cos(a)) + h / 2 * abs(math.sin(a)), 1.0))


def _periodic(profile: np.ndarray, period: float, angle: float, n: int) -> np.ndarray:
    """An n x n map repeating the 1-D ``profile`` (one period, finely sampled) along ``angle``."""
    yy, xx = _grid(n, n)
    t = xx * (math.cos(angle) / period) + yy * (math.sin(angle) / period)
    t -= np.floor(t)
    return np.asarray(profile, _F32)[(t * len(profile)).astype(np.intp) % len(profile)]


def _tinted(grey: np.ndarray, rgb) -> np.ndarray:
    """HxW brightness factors times an RGB colour -> HxWx3 float32."""
    return cv2.multiply(_rgb(grey), tuple(float(c) for c in rgb) + (0.0,))


def _lit(rgb, brightness: np.ndarray, specular: np.ndarray | None = None, spec: float = 255.0) -> np.ndarray:
    """An RGB colour under a brightness map plus a (white) specular map -> HxWx3 float32."""
    out = _tinted(brightness, rgb)
    if specular is not None:
        cv2.scaleAdd(_rgb(specular), spec, out, dst=out)
    return out


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """An n x n float32 RGB surface."""
    kind = rng.choice(["photo", "painted", "brushed", "concrete", "corrugated", "stripes"],
                      p=[0.45, 0.15, 0.12, 0.14, 0.09, 0.05])
    if kind == "photo":
        img = _photo_crop(rng, _BACKGROUND_PHOTOS, n, n)
        if img is not None:
            c = rng.uniform(0.6, 1.1)  # contrast
            if rng.random() < 0.5:  # grey photo tinted like a painted or rusty surface
                grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(_F32)
                m = cv2.mean(grey)[0]
                tint = 0.5 + 0.5 * _pick(rng, _PAINTS, 20) / 128.0
                return np.clip(_tinted((grey - m) * c + m + rng.uniform(-20, 20), tint), 0, 255)
            m = np.array(cv2.mean(img)[:3], _F32)
            return np.clip((img.astype(_F32) - m) * c + m, 0, 255)
        kind = "painted"
    if kind == "painted":
        col = _pick(rng, _PAINTS, 15)
        var = 1 + 0.12 * (_fbm(rng, n, n, 3) - 0.5) + 0.08 * _gradient(rng, n, n)
        var += _sensor_noise(rng, n, n)[..., 0] * (2.5 / float(col.mean()))
        img = _tinted(var, col)
        for _ in range(int(rng.integers(0, 6))):  # scuffs: a few thin lighter strokes
            p = rng.uniform(0, n, 2)
            q = p + rng.normal(0, n * 0.08, 2)
            cv2.line(img, tuple(int(v) for v in p), tuple(int(v) for v in q),
                     (col * 1.15 + 15).tolist(), 1, cv2.LINE_AA)
        return img
    if kind == "brushed":
        g = rng.uniform(110, 200)
        streak = _fbm(rng, n, n, base=8, octaves=3, aniso=12.0) - 0.5
        fine = cv2.resize(rng.normal(0, 1, (n, max(2, n // 24))).astype(_F32), (n, n))
        img = g * (1 + 0.15 * streak + 0.03 * fine + 0.1 * _gradient(rng, n, n))
        if rng.random() < 0.5:
            img = np.ascontiguousarray(img.T)
        return _tinted(img, 1 + rng.uniform(-0.04, 0.04, 3))
    if kind == "concrete":
        g = rng.uniform(100, 190)
        img = g * (1 + 0.25 * (_fbm(rng, n, n, 4) - 0.5))
        img += cv2.GaussianBlur(_sensor_noise(rng, n, n)[..., 0], (0, 0), 0.7) * 9
        for _ in range(int(rng.integers(20, 120))):  # pits
            c = rng.uniform(0, n, 2)
            cv2.circle(img, tuple(int(v) for v in c), int(rng.integers(1, 3)), float(g * 0.55), -1, cv2.LINE_AA)
        return _tinted(img, np.array([1.0, 0.98, 0.94]) * (1 + rng.uniform(-0.04, 0.04, 3)))
    if kind == "corrugated":
        period = rng.uniform(10, 34) * n / 330
        profile = 0.78 + 0.22 * np.sin(np.linspace(0, 2 * np.pi, 64, endpoint=False))
        shade = _periodic(profile, period, rng.uniform(0, np.pi), n) + 0.06 * (_fbm(rng, n, n, 3) - 0.5)
        return _tinted(shade, _pick(rng, _PAINTS, 15))
    # hazard stripes / two-colour painted bands
    a, b = _pick(rng, _PAINTS[[2, 9]], 10), _pick(rng, _PAINTS[[6, 4]], 10)
    period = rng.uniform(24, 60) * n / 330
    ang = float(rng.choice([np.pi / 4, -np.pi / 4, 0.0, np.pi / 2]))
    t = (np.arange(128) + 0.5) / 128
    edge = 1.5 / period  # a soft edge of about 1.5 px
    profile = np.clip(np.minimum(t, 1 - t) / edge - (0.25 / edge - 0.5), 0, 1)  # 1 on the middle half
    img = cv2.add(_tinted(_periodic(profile, period, ang, n), a - b), tuple(float(c) for c in b) + (0.0,))
    return cv2.multiply(img, _rgb(1 + 0.1 * (_fbm(rng, n, n, 3) - 0.5)))


# ----------------------------------------------------------------------------------------------
# Machine parts. Each draws itself, lit by ``light`` (unit 3-vector towards the light), onto a
# float32 RGB world canvas; ``moved`` returns a loose/displaced copy.


@dataclass(eq=False)
class _Hex:
    """A hex bolt head or a nut, optionally on a washer, seen from above."""

    c: np.ndarray
    r: float  # circumradius
    angle: float
    color: np.ndarray
    nut: bool = False
    washer: bool = False
    target: bool = True

    @property
    def extent(self) -> float:
        return self.r * (1.35 if self.washer else 1.0)

    def draw(self, canvas, light, fp: np.ndarray | None = None):
        pad = self.r * 0.9 + 3
        roi = _Roi(canvas, self.c - self.extent - pad, self.c + self.extent + pad)
        if roi.empty:
            return
        c, r, shape = roi.local(self.c), self.r, roi.shape
        ang = self.angle + np.arange(7) * np.pi / 3
        unit = np.stack([np.cos(ang), np.sin(ang)], 1)
        outer, inner = c + r * unit, c + 0.74 * r * unit
        to_light = np.array(light[:2])
        col = np.empty(shape + (3,), _F32)
        col[:] = self.color * 0.9
        m = np.zeros(shape, np.uint8)
        cv2.fillConvexPoly(m, _pts(outer[:6]), 255, cv2.LINE_AA, _SHIFT)

        def disc(centre, radius, colour, img=col):
            cv2.circle(img, tuple(int(v) for v in _pts(centre)), int(round(radius * _ONE)),
                       np.clip(colour, 0, 255).tolist(), -1, cv2.LINE_AA, _SHIFT)

        if self.washer:  # a flat ring, its rim lit on the side of the light
            wr = self.extent
            disc(c, wr, 255, img=m)
            disc(c, wr, self.color * 0.72)
            disc(c + to_light * 0.1 * wr, wr * 0.93, self.color * 1.02 + 8)
        for k in range(6):  # chamfer facets, shaded by their outward normal
            mid = self.angle + (k + 0.5) * np.pi / 3
            lam = 0.45 + 0.55 * max(0.0, math.cos(mid) * light[0] + math.sin(mid) * light[1]) + 0.15 * light[2]
            quad = np.array([outer[k], outer[k + 1], inner[k + 1], inner[k]])
            cv2.fillConvexPoly(col, _pts(quad), (self.color * min(lam, 1.15)).tolist(), cv2.LINE_8, _SHIFT)
        cv2.fillConvexPoly(col, _pts(inner[:6]), (self.color * 0.86).tolist(), cv2.LINE_8, _SHIFT)
        if self.nut:  # the bolt's threaded end showing through the nut
            disc(c, 0.5 * r, self.color * 0.3)
            disc(c, 0.4 * r, self.color * 0.7)
            disc(c + to_light * 0.12 * r, 0.12 * r + 0.3, self.color * 0.5 + 120)
        else:  # the chamfer circle and a soft highlight on the slightly domed top
            disc(c, 0.64 * r, self.color * 0.95)
            disc(c + to_light * 0.15 * r, 0.45 * r, self.color * 1.02 + 12)
            disc(c + to_light * 0.3 * r, 0.12 * r + 0.3, self.color * 0.4 + 150)
        alpha = m.astype(_F32) * (1 / 255)
        off = -to_light * (0.35 * r + 1)
        _darken(roi.view, _shadow_of(alpha, off, 0.25 * r + 0.6, 0.55))
        _blend(roi.view, col, alpha)
        _record(fp, roi, alpha)

    def moved(self, rng, size):
        t = rng.uniform(0, 2 * np.pi)
        d = rng.uniform(1.4, 3.5) * self.r * np.array([math.cos(t), math.sin(t)])
        return replace(self, c=self.c + d, angle=self.angle + rng.uniform(0.25, 0.8) * rng.choice([-1, 1]))


@dataclass(eq=False)
class _Rivet:
    c: np.ndarray
    r: float
    color: np.ndarray
    target: bool = True

    @property
    def extent(self) -> float:
        return self.r

    def draw(self, canvas, light, fp: np.ndarray | None = None):
        pad = self.r * 0.8 + 3
        roi = _Roi(canvas, self.c - self.r - pad, self.c + self.r + pad)
        if roi.empty:
            return
        c = roi.local(self.c)
        alpha = _circle_mask(roi.shape, c, self.r)
        b, s = _dome(roi.shape, c, self.r * 1.15, light, 0.6)
        col = _lit(self.color, b, s)
        off = -np.array(light[:2]) * (0.3 * self.r + 0.8)
        _darken(roi.view, _shadow_of(alpha, off, 0.3 * self.r + 0.5, 0.5))
        _blend(roi.view, np.clip(col, 0, 255), alpha)
        _record(fp, roi, alpha)

    def moved(self, rng, size):
        t = rng.uniform(0, 2 * np.pi)
        return replace(self, c=self.c + rng.uniform(1.6, 4.0) * self.r * np.array([math.cos(t), math.sin(t)]))


@dataclass(eq=False)
class _Hole:
    """What a missing bolt or rivet leaves: a dark (threaded) hole."""

    c: np.ndarray
    r: float
    target: bool = False

    def draw(self, canvas, light):
        roi = _Roi(canvas, self.c - self.r - 2, self.c + self.r + 2)
        if roi.empty:
            return
        c = roi.local(self.c)
        alpha = _circle_mask(roi.shape, c, self.r)
        b, _ = _dome(roi.shape, c, self.r * 1.1, light, 0.0, concave=True)
        base = np.array(cv2.mean(roi.view)[:3])
        col = _lit(base * 0.22, b) + 8
        _blend(roi.view, col, alpha)
        cv2.circle(roi.view, tuple(int(v) for v in _pts(c)), int(self.r * _ONE), (base * 0.5).tolist(), 1,
                   cv2.LINE_AA, _SHIFT)


@dataclass(eq=False)
class _Cable:
    ctrl: np.ndarray  # 4 x 2 Bezier control points
    thick: float
    color: np.ndarray
    target: bool = True

    @property
    def c(self) -> np.ndarray:
        return _bezier(self.ctrl, 3)[1]

    @property
    def extent(self) -> float:
        return float(np.abs(self.ctrl - self.c).max())

    def draw(self, canvas, light, fp: np.ndarray | None = None):
        pts = _bezier(self.ctrl, 48)
        pad = self.thick * 2 + 4
        roi = _Roi(canvas, pts.min(0) - pad, pts.max(0) + pad)
        if roi.empty:
            return
        p, t, shape = roi.local(pts), self.thick, roi.shape
        alpha = _line_mask(shape, p, t)
        col = np.empty(shape + (3,), _F32)
        col[:] = self.color * 0.55
        lo = -np.array(light[:2], _F32)
        cv2.polylines(col, [_pts(p - lo * 0.12 * t)], False, (self.color * 0.95).tolist(),
                      max(1, int(round(0.6 * t))), cv2.LINE_8, _SHIFT)
        cv2.polylines(col, [_pts(p - lo * 0.22 * t)], False, np.clip(self.color * 1.1 + 70, 0, 255).tolist(),
                      max(1, int(round(0.18 * t))), cv2.LINE_8, _SHIFT)
        col = cv2.GaussianBlur(col, (0, 0), max(0.4, 0.08 * t))
        _darken(roi.view, _shadow_of(alpha, lo * (0.2 * t + 0.8), 0.2 * t + 0.6, 0.4))
        _blend(roi.view, col, alpha)
        _record(fp, roi, alpha)

    def moved(self, rng, size):
        d = rng.normal(0, 0.1 * size, (4, 2))
        d[[0, 3]] *= 0.3  # the ends stay roughly where they are plugged in
        d[1:3] += rng.uniform(0.06, 0.14) * size * rng.choice([-1, 1], 2)
        return replace(self, ctrl=self.ctrl + d)


@dataclass(eq=False)
class _Pipe:
    p: np.ndarray  # a point on the axis
    angle: float
    r: float
    color: np.ndarray
    target: bool = False

    def draw(self, canvas, light):
        H, W = canvas.shape[:2]
        u = np.array([math.cos(self.angle), math.sin(self.angle)], _F32)
        v = np.array([-u[1], u[0]], _F32)
        # The pipe's look depends only on the signed distance d from its axis: build that profile
        # once as a 1-pixel-high strip sampled every 1/ss pixel, then let warpAffine sweep it over
        # windows that follow the pipe in chunks of 64 columns (or rows, for a steep pipe).
        off = float(-(light[0] * v[0] + light[1] * v[1])) * (0.45 * self.r + 2)
        D, ss = self.r + abs(off) + 8, 4
        d = np.arange(-D, D + 1e-3, 1 / ss, dtype=_F32)
        s = np.clip(d / self.r, -0.999, 0.999)
        b, sp = _shade(s * v[0], s * v[1], light, 0.55, 12.0)
        strip = np.empty((1, len(d), 5), _F32)
        strip[0, :, :3] = np.clip(self.color * b[:, None] + 255 * sp[:, None], 0, 255)
        strip[0, :, 3] = np.clip(self.r + 0.5 - np.abs(d), 0, 1)
        strip[0, :, 4] = np.clip((self.r + 3 - np.abs(d - off)) / 6, 0, 1) * 0.5
        flags, border = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, cv2.BORDER_REPLICATE
        i, j = (0, 1) if abs(u[0]) >= abs(u[1]) else (1, 0)  # chunk along axis i
        half, slope = D / abs(u[i]), u[j] / u[i]
        for t0 in range(0, (W, H)[i], 64):
            t1 = min((W, H)[i], t0 + 64)
            ends = [self.p[j] + (t - self.p[i]) * slope for t in (t0, t1)]
            lo, hi = np.zeros(2), np.zeros(2)
            lo[i], hi[i], lo[j], hi[j] = t0, t1, min(ends) - half, max(ends) + half + 1
            roi = _Roi(canvas, lo, hi)
            if roi.empty:
                continue
            shift = D - float(self.p @ v) + v[0] * roi.x0 + v[1] * roi.y0
            M = np.float32([[ss * v[0], ss * v[1], ss * shift], [0, 0, 0]])
            size = (roi.shape[1], roi.shape[0])
            rgba = cv2.warpAffine(strip[..., :4], M, size, flags=flags, borderMode=border)
            shadow = cv2.warpAffine(strip[..., 4], M, size, flags=flags, borderMode=border)
            alpha = rgba[..., 3]
            _darken(roi.view, shadow * (1 - alpha))
            _blend(roi.view, rgba[..., :3], alpha)


@dataclass(eq=False)
class _Plate:
    c: np.ndarray
    w: float
    h: float
    angle: float
    color: np.ndarray
    target: bool = False

    def corners(self, inset: float = 0.0) -> np.ndarray:
        ca, sa = math.cos(self.angle), math.sin(self.angle)
        hw, hh = self.w / 2 - inset, self.h / 2 - inset
        local = np.array([(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)])
        return self.c + local @ np.array([[ca, sa], [-sa, ca]])

    def draw(self, canvas, light):
        cor = self.corners()
        roi = _Roi(canvas, cor.min(0) - 6, cor.max(0) + 6)
        if roi.empty:
            return
        p = roi.local(cor)
        alpha = _poly_mask(roi.shape, [p])
        h, w = roi.shape
        streak = self._streak[:h, :w] if self._streak is not None else 0
        col = _tinted(1 + 0.08 * streak + 0.08 * self._ramp[:h, :w], self.color)
        for k in range(4):  # bevelled edges, lit or shaded by their outward normal
            a, b = p[k], p[(k + 1) % 4]
            n = np.array([b[1] - a[1], a[0] - b[0]])
            n /= np.linalg.norm(n) + 1e-6
            lam = float(n[0] * light[0] + n[1] * light[1])
            cv2.line(col, tuple(int(v) for v in _pts(a)), tuple(int(v) for v in _pts(b)),
                     np.clip(self.color * (1 + 0.45 * lam), 0, 255).tolist(), 2, cv2.LINE_AA, _SHIFT)
        _darken(roi.view, _shadow_of(alpha, -np.array(light[:2]) * 3, 1.5, 0.45))
        _blend(roi.view, col, alpha)

    _streak = None
    _ramp = None

    def texture(self, rng, n):
        self._streak = _fbm(rng, n, n, base=6, octaves=3, aniso=8.0) - 0.5 if rng.random() < 0.6 else None
        self._ramp = _gradient(rng, n, n)


@dataclass(eq=False)
class _Disc:
    """A round flange or cover with a dark central bore."""

    c: np.ndarray
    r: float
    color: np.ndarray
    bore: float
    target: bool = False

    def draw(self, canvas, light):
        roi = _Roi(canvas, self.c - self.r - 8, self.c + self.r + 8)
        if roi.empty:
            return
        c = roi.local(self.c)
        alpha = _circle_mask(roi.shape, c, self.r)
        b, s = _dome(roi.shape, c, self.r * 3.0, light, 0.25)
        rim = alpha - _circle_mask(roi.shape, c, self.r - 3)
        col = _lit(self.color, b * (1 + 0.12 * rim), s)
        if self.bore > 0:
            bore = _circle_mask(roi.shape, c, self.bore)
            bb, _ = _dome(roi.shape, c, self.bore * 1.1, light, 0.0, concave=True)
            _blend(col, _lit(self.color * 0.25, bb) + 6, bore)
        _darken(roi.view, _shadow_of(alpha, -np.array(light[:2]) * 4, 2.5, 0.45))
        _blend(roi.view, np.clip(col, 0, 255), alpha)


def _scene_parts(rng: np.random.Generator, n: int, size: int, plain: bool) -> list:
    """Machine parts for an n x n world whose visible centre is about size x size (none if plain)."""
    parts: list = []
    if plain:
        return parts
    centre = np.array([n / 2, n / 2])

    def somewhere(spread=0.42):
        return centre + rng.uniform(-spread, spread, 2) * size

    def hardware(c, r, kind=None):
        kind = kind or rng.choice(["bolt", "nut", "rivet"], p=[0.4, 0.35, 0.25])
        col = _pick(rng, _METALS, 10)
        if kind == "rivet":
            return _Rivet(c, r * 0.6, col)
        return _Hex(c, r, rng.uniform(0, np.pi / 3), col, nut=kind == "nut", washer=rng.random() < 0.5)

    s = size / 256
    for _ in range(int(rng.choice([0, 0, 1, 1, 2]))):
        ang = rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.15)
        parts.append(_Pipe(somewhere(0.45), ang, rng.uniform(9, 28) * s, _pick(rng, np.vstack([_PAINTS, _METALS]))))
    for _ in range(int(rng.choice([0, 1, 1, 2]))):
        plate = _Plate(somewhere(0.3), rng.uniform(0.3, 0.7) * size, rng.uniform(0.2, 0.5) * size,
                       rng.normal(0, 0.25) if rng.random() < 0.7 else rng.uniform(0, np.pi),
                       _pick(rng, np.vstack([_PAINTS, _METALS]), 15))
        plate.texture(rng, n)
        parts.append(plate)
        r = rng.uniform(5, 10) * s
        kind = rng.choice(["bolt", "nut", "rivet"])
        inset = max(r * 1.9, 0.09 * min(plate.w, plate.h))
        cor = plate.corners(inset)
        spots = list(cor)
        if rng.random() < 0.5:  # a row along the long edges
            k = int(rng.integers(1, 4))
            for a, b in ((0, 1), (3, 2)):
                spots += [cor[a] + (cor[b] - cor[a]) * (j + 1) / (k + 1) for j in range(k)]
        parts += [hardware(p, r, kind) for p in spots]
    if rng.random() < 0.3:
        disc = _Disc(somewhere(0.3), rng.uniform(0.14, 0.24) * size, _pick(rng, np.vstack([_PAINTS, _METALS])),
                     bore=rng.uniform(0.25, 0.45))
        disc.bore *= disc.r
        parts.append(disc)
        k = int(rng.choice([4, 6, 8]))
        r = rng.uniform(5, 8) * s
        rr = (disc.r + disc.bore) / 2 + 0.05 * disc.r
        a0 = rng.uniform(0, np.pi)
        kind = rng.choice(["bolt", "nut"])
        parts += [hardware(disc.c + rr * np.array([math.cos(a0 + 2 * np.pi * j / k), math.sin(a0 + 2 * np.pi * j / k)]),
                           min(r, 0.3 * (disc.r - disc.bore)), kind) for j in range(k)]
    for _ in range(int(rng.choice([0, 1, 1, 2, 3]))):
        a, b = somewhere(0.6), somewhere(0.6)
        mid = (a + b) / 2 + rng.normal(0, 0.15 * size, 2)
        ctrl = np.array([a, (a + mid) / 2 + rng.normal(0, 0.1 * size, 2), (b + mid) / 2 + rng.normal(0, 0.1 * size, 2), b])
        parts.append(_Cable(ctrl, rng.uniform(3, 11) * s, _pick(rng, _CABLES, 10)))
    for _ in range(int(rng.integers(1, 5))):
        parts.append(hardware(somewhere(0.38), rng.uniform(6, 14) * s))
    return parts


def _render_world(canvas: np.ndarray, parts: list, light) -> np.ndarray:
    out = canvas.copy()
    for p in parts:
        p.draw(out, light)
    return out


# ----------------------------------------------------------------------------------------------
# Views


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


# ----------------------------------------------------------------------------------------------
# Anomalies painted in the current frame. Each takes a float32 image and returns (image, support),
# support being the anomaly's footprint: labelled wherever the anomaly changed the pixel at all.


def _light_dir(rng: np.random.Generator) -> np.ndarray:
    a = rng.uniform(-np.pi, np.pi) if rng.random() < 0.3 else rng.normal(-2.3, 0.5)  # mostly top-left
    el = rng.uniform(0.5, 1.1)
    v = np.array([math.cos(a) * math.cos(el), math.sin(a) * math.cos(el), math.sin(el)])
    return v / np.linalg.norm(v)


def _shaded_lump(alpha: np.ndarray, light, radius: float, relief: float = 1.0, shine: float = 0.5,
                 power: float = 18.0):
    """Brightness and specular of a soft lump whose height is the blurred alpha (stones, drops, rags)."""
    hgt = cv2.GaussianBlur(alpha, (0, 0), max(0.8, radius))
    gy, gx = np.gradient(hgt)
    k = relief * radius * 2.0
    nx, ny = -gx * k, -gy * k
    norm = np.sqrt(1 + nx * nx + ny * ny)
    return _shade(nx / norm, ny / norm, light, shine, power)


def _object_layer(rng: np.random.Generator, shape, c, d: float, light):
    """A foreign object near c with size about d: (colour HxWx3, alpha HxW) over the whole frame."""
    H, W = shape
    kind = rng.choice(["patch", "stone", "screw", "tool", "wire", "rag"], p=[0.22, 0.2, 0.2, 0.14, 0.12, 0.12])
    col = np.zeros((H, W, 3), _F32)
    if kind in ("patch", "rag", "stone"):
        outline = _blob(rng, c, d / 2, aspect=rng.uniform(0.7, 1.4), angle=rng.uniform(0, np.pi),
                        roughness=0.5 if kind == "stone" else 0.9 if kind == "rag" else 0.6)
        alpha = _poly_mask((H, W), [outline])
        if kind == "patch":
            tex = _photo_crop(rng, _PASTE_PHOTOS, H, W)
            tex = tex.astype(_F32) if tex is not None else np.full((H, W, 3), _pick(rng, _PAINTS), _F32) * (0.8 + 0.4 * _fbm(rng, H, W))[..., None]
            b, s = _shaded_lump(alpha, light, d * 0.08, 0.5)
            col = cv2.multiply(tex, _rgb(0.55 + 0.5 * b))
        elif kind == "rag":
            base = _pick(rng, np.vstack([_CABLES, _PAINTS]), 25)
            fold = _fbm(rng, H, W, base=int(max(3, W / d * 2)), octaves=3)
            b, s = _shaded_lump(alpha * (0.6 + 0.8 * fold), light, d * 0.05, 1.5)
            col = _lit(base, b)
        else:
            tex = _photo_crop(rng, ("gravel", "moon", "brick", "grass"), H, W)
            tex = tex.astype(_F32) if tex is not None else 128 * (0.7 + 0.6 * _fbm(rng, H, W, 8))[..., None] * np.ones(3, _F32)
            tone = np.array([rng.uniform(0.75, 1.1), rng.uniform(0.7, 1.0), rng.uniform(0.6, 0.9)], _F32)
            b, s = _shaded_lump(alpha, light, d * 0.25, 1.5)
            col = (0.5 * tex + 50) * tone * b[..., None] + 180 * s[..., None]
        return np.clip(col, 0, 255), alpha
    if kind == "wire":
        ctrl = c + rng.normal(0, d * 0.5, (4, 2))
        pts = _bezier(ctrl, 40)
        t = rng.uniform(1.5, 3.2) * max(1.0, W / 256)
        alpha = _line_mask((H, W), pts, t)
        base = _pick(rng, np.array([(184, 115, 51), (170, 170, 175), (40, 40, 40), (200, 60, 40)], _F32), 15)
        col[:] = base * 0.8
        cv2.polylines(col, [_pts(pts - np.array(light[:2]) * -0.3 * t)], False,
                      np.clip(base * 1.2 + 60, 0, 255).tolist(), 1, cv2.LINE_8, _SHIFT)
        return col, alpha
    # screw or tool: flat shapes with cylinder shading across their width
    ang = rng.uniform(0, np.pi)
    u = np.array([math.cos(ang), math.sin(ang)])
    v = np.array([-u[1], u[0]])
    yy, xx = _grid(H, W)
    dv = (xx - c[0]) * v[0] + (yy - c[1]) * v[1]
    du = (xx - c[0]) * u[0] + (yy - c[1]) * u[1]
    metal = _pick(rng, _METALS, 10)
    if kind == "screw":
        L, w = d, d * rng.uniform(0.16, 0.24)
        shank = _poly_mask((H, W), [np.array([c - u * L / 2 - v * w / 2, c + u * L * 0.3 - v * w / 2,
                                                 c + u * L * 0.3 + v * w / 2, c - u * L / 2 + v * w / 2])])
        tip = _poly_mask((H, W), [np.array([c - u * L / 2 - v * w / 2, c - u * (L / 2 + w), c - u * L / 2 + v * w / 2])])
        head_w = w * rng.uniform(1.8, 2.4)
        head = _poly_mask((H, W), [np.array([c + u * L * 0.3 - v * head_w / 2, c + u * (L * 0.3 + w * 0.9) - v * head_w / 2,
                                                c + u * (L * 0.3 + w * 0.9) + v * head_w / 2, c + u * L * 0.3 + v * head_w / 2])])
        alpha = np.maximum(np.maximum(shank, tip), head)
        width = np.where(head > 0, head_w, w) / 2
        b, s = _shade(np.clip(dv / width, -0.99, 0.99) * v[0], np.clip(dv / width, -0.99, 0.99) * v[1], light, 0.7)
        thread = 0.75 + 0.25 * np.cos(du * (2 * np.pi / max(2.0, w * 0.45)))
        b = b * np.where(head > 0, 1.0, thread)
        col = _lit(metal, b, s)
        return np.clip(col, 0, 255), alpha
    # tool: a screwdriver (coloured handle + steel shaft) or a flat wrench
    L = d * rng.uniform(1.3, 1.9)
    if rng.random() < 0.5:
        hw, sw = L * 0.12, L * 0.035
        handle = _poly_mask((H, W), [np.array([c - v * hw, c + u * L * 0.4 - v * hw, c + u * L * 0.4 + v * hw, c + v * hw])])
        shaft = _poly_mask((H, W), [np.array([c - u * L * 0.6 - v * sw, c - v * sw, c + v * sw, c - u * L * 0.6 + v * sw])])
        alpha = np.maximum(handle, shaft)
        width = np.where(handle > 0, hw, sw)
        nrm = np.clip(dv / width, -0.99, 0.99)
        b, s = _shade(nrm * v[0], nrm * v[1], light, 0.6)
        body = np.where(handle[..., None] > 0, _pick(rng, _CABLES[2:], 10), metal)
        col = body * b[..., None] + 255 * s[..., None]
    else:
        hw = L * 0.07
        bar = _poly_mask((H, W), [np.array([c - u * L / 2 - v * hw, c + u * L / 2 - v * hw, c + u * L / 2 + v * hw, c - u * L / 2 + v * hw])])
        heads = np.maximum(_circle_mask((H, W), c + u * L / 2, hw * 2.2), _circle_mask((H, W), c - u * L / 2, hw * 1.9))
        jaw = _poly_mask((H, W), [np.array([c + u * (L / 2 + hw * 0.2) - v * hw * 0.9, c + u * (L / 2 + hw * 3) - v * hw * 0.9,
                                              c + u * (L / 2 + hw * 3) + v * hw * 0.9, c + u * (L / 2 + hw * 0.2) + v * hw * 0.9])])
        alpha = np.clip(np.maximum(bar, heads) - jaw, 0, 1)
        b, s = _shaded_lump(alpha, light, hw * 0.6, 0.8)
        col = _lit(metal, b, s)
    return np.clip(col, 0, 255), alpha


def _paste_object(img: np.ndarray, rng: np.random.Generator, light) -> tuple[np.ndarray, np.ndarray]:
    H, W = img.shape[:2]
    d = rng.uniform(0.07, 0.2) * min(H, W)
    c = rng.uniform(0.12, 0.88, 2) * np.array([W, H])
    roi = _Roi(img, c - 1.5 * d - 8, c + 1.5 * d + 8)
    col, alpha = _object_layer(rng, roi.shape, roi.local(c), d, light)
    off = -np.array(light[:2]) * rng.uniform(0.03, 0.08) * d - 0.5
    _darken(roi.view, _shadow_of(alpha, off, 0.03 * d + 0.8, rng.uniform(0.3, 0.55)) * (1 - alpha))
    _blend(roi.view, col, alpha)
    support = np.zeros((H, W), bool)
    support[roi.y0:roi.y1, roi.x0:roi.x1] = alpha > 0.5
    return img, support


def _oil(img: np.ndarray, rng: np.random.Generator, light) -> tuple[np.ndarray, np.ndarray]:
    """A dark glossy semi-transparent stain with a drip running down."""
    H, W = img.shape[:2]
    d = rng.uniform(0.08, 0.2) * min(H, W)
    c = np.array([rng.uniform(0.15, 0.85) * W, rng.uniform(0.12, 0.6) * H])
    roi = _Roi(img, c - 1.1 * d - 6, c + np.array([1.1, 3.0]) * d + 6)
    h, w = roi.shape
    outline = _blob(rng, roi.local(c), d / 2, aspect=rng.uniform(1.0, 1.8), angle=rng.normal(0, 0.3),
                    roughness=0.7, n=36)
    cover = np.zeros((h, w), np.uint8)
    cv2.fillPoly(cover, [_pts(outline)], 255, cv2.LINE_AA, _SHIFT)
    if rng.random() < 0.8:  # drip from the lowest point, tapering, ending in a drop
        start = outline[np.argmax(outline[:, 1])]
        length = rng.uniform(0.5, 1.6) * d
        steps = 12
        xs = start[0] + np.cumsum(rng.normal(0, 0.04 * d, steps))
        ys = start[1] + np.linspace(0, length, steps)
        w0 = rng.uniform(0.12, 0.25) * d
        for j in range(steps - 1):
            th = max(1, int(round(w0 * (1 - 0.6 * j / steps))))
            cv2.line(cover, (int(xs[j] * _ONE), int(ys[j] * _ONE)), (int(xs[j + 1] * _ONE), int(ys[j + 1] * _ONE)),
                     255, th, cv2.LINE_AA, _SHIFT)
        cv2.circle(cover, (int(xs[-1] * _ONE), int(ys[-1] * _ONE)), int(w0 * 0.6 * _ONE), 255, -1, cv2.LINE_AA, _SHIFT)
    shape = cover.astype(_F32) / 255
    edge = cv2.GaussianBlur(shape, (0, 0), rng.uniform(0.6, 1.6))
    film = rng.uniform(0.7, 0.95) * (0.85 + 0.25 * _fbm(rng, h, w, base=max(3, int(w / d * 1.5)), octaves=3))
    alpha = np.clip(edge * film, 0, 1)
    colour = _pick(rng, np.array([(22, 16, 10), (12, 12, 14), (30, 22, 12), (55, 36, 14)], _F32), 5)
    _, s = _shaded_lump(shape, light, 0.05 * d + 1, 1.5, shine=1.0, power=40.0)
    gloss = np.clip(s * rng.uniform(0.4, 0.8) * edge, 0, 1)[..., None]
    view = roi.view
    _blend(view, colour, alpha)
    view += 230 * gloss * (1 - view / 255)
    support = np.zeros((H, W), bool)
    support[roi.y0:roi.y1, roi.x0:roi.x1] = alpha > 0.25
    return img, support


def _scratch(img: np.ndarray, rng: np.random.Generator, light) -> tuple[np.ndarray, np.ndarray]:
    """A bright scratch (bundle of near-parallel strokes) or a dark branching crack."""
    H, W = img.shape[:2]
    n = min(H, W)
    cover = np.zeros((H, W), np.uint8)
    w1 = max(1, int(round(n / 256)))
    scratch = rng.random() < 0.5
    if scratch:  # gently curved strokes
        c = rng.uniform(0.2, 0.8, 2) * np.array([W, H])
        L = rng.uniform(0.2, 0.5) * n
        a = rng.uniform(0, np.pi)
        bend = rng.normal(0, 0.15 * L)
        for j in range(int(rng.choice([1, 1, 2, 3, 4]))):
            off = np.array([-math.sin(a), math.cos(a)]) * rng.normal(0, 2.5 * w1)
            t0, t1 = rng.uniform(-0.5, -0.3), rng.uniform(0.3, 0.5)
            t = np.linspace(t0, t1, 24)[:, None]
            pts = c + off + L * t * np.array([math.cos(a), math.sin(a)]) + \
                (1 - (2 * t) ** 2) * bend * np.array([-math.sin(a), math.cos(a)])
            cv2.polylines(cover, [_pts(pts)], False, 255, int(rng.choice([w1, w1, 2 * w1])), cv2.LINE_AA, _SHIFT)
    else:  # crack: jagged random walk with branches, width tapering
        def walk(p, ang, steps, width):
            for j in range(steps):
                ang += rng.normal(0, 0.45)
                q = p + rng.uniform(2, 5) * (n / 256) * np.array([math.cos(ang), math.sin(ang)])
                th = max(1, int(round(width * (1 - 0.7 * j / steps))))
                cv2.line(cover, tuple(int(v) for v in _pts(p)), tuple(int(v) for v in _pts(q)), 255, th,
                         cv2.LINE_AA, _SHIFT)
                if rng.random() < 0.06 and width > 1:
                    walk(q, ang + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2), int(steps * 0.4), max(1, width - 1))
                p = q

        c = rng.uniform(0.2, 0.8, 2) * np.array([W, H])
        ang = rng.uniform(0, 2 * np.pi)
        steps = int(rng.integers(25, 60))
        walk(c, ang, steps, rng.choice([2, 3]) * w1)
        walk(c, ang + np.pi, steps // 2, 2 * w1)
    x, y, w, h = cv2.boundingRect(cover)
    view, a = img[y:y + h, x:x + w], cover[y:y + h, x:x + w].astype(_F32) / 255
    if scratch:  # bright exposed metal on dark surfaces, dark furrow on bright ones
        lum = view.mean(2, keepdims=True)
        _blend(view, np.where(lum < 150, np.minimum(255, view * 0.4 + 160), view * 0.45), a * rng.uniform(0.75, 1.0))
    else:
        _darken(view, a * rng.uniform(0.5, 0.75))
    return img, cover > 127


_PAINTERS = {"foreign_body": _paste_object, "oil_leak": _oil, "scratch": _scratch}


def _channel_max(img: np.ndarray) -> np.ndarray:
    """Per-pixel maximum over the channels (much faster than ndarray.max(axis=2))."""
    r, g, b = cv2.split(img)
    return cv2.max(cv2.max(r, g), b)


def _commit(base: np.ndarray, anomalous: np.ndarray, support: np.ndarray | None = None, whole: bool = False):
    """(current uint8, mask bool): the mask is where ``anomalous`` changed ``base`` by more than
    CHANGE_LEVEL, or at all inside ``support`` (or anywhere inside it, with ``whole``); the current
    is ``anomalous`` inside the mask and ``base`` elsewhere."""
    a = np.clip(anomalous + 0.5, 0, 255).astype(np.uint8) if anomalous.dtype != np.uint8 else anomalous
    diff = _channel_max(cv2.absdiff(a, base))
    mask = diff > CHANGE_LEVEL
    if support is not None:
        mask |= support if whole else support & (diff > 0)
    return cv2.copyTo(a, mask.view(np.uint8), base.copy()), mask


def paste_foreign_body(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paste one random foreign object (with a soft shadow) into an RGB uint8 image.

    Returns ``(new_image, mask)`` with ``mask == (new_image != image).any(-1)`` exactly.
    """
    img, support = _paste_object(image.astype(_F32), rng, _light_dir(rng))
    return _commit(image, img, support)


# ----------------------------------------------------------------------------------------------
# Nuisance


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


# ----------------------------------------------------------------------------------------------
# Pairs


def _derive(*ints: int) -> int:
    return int(np.random.SeedSequence([int(i) for i in ints]).generate_state(2, np.uint32).view(np.uint64)[0] >> 1)


def generate_pair(seed: int, size: int = 256, hardness: str = "easy", anomaly: str | None = None, *,
                  nuisance: bool = True, background: str | None = None) -> Pair:
    """One generated pair, deterministic for its arguments.

    ``anomaly`` is one of :data:`KINDS` (``"none"`` gives an empty mask) or None to draw one
    (15% none, the rest evenly). ``nuisance=False`` takes both images from one viewpoint with no
    photometric change, so they differ only by the anomaly. ``background="constant"`` paints a flat
    grey world with no parts other than those the anomaly needs (for tests).
    """
    if hardness not in HARDNESS:
        raise ValueError(f"hardness must be one of {sorted(HARDNESS)}, got {hardness!r}")
    if anomaly is not None and anomaly not in KINDS:
        raise ValueError(f"anomaly must be one of {KINDS} or None, got {anomaly!r}")
    if background not in (None, "constant"):
        raise ValueError(f"background must be None or 'constant', got {background!r}")
    size = int(size)
    if size < 32:
        raise ValueError(f"size must be at least 32, got {size}")
    hz = HARDNESS[hardness]
    key = [int(seed) % 2**63, size, list(HARDNESS).index(hardness), KINDS.index(anomaly) + 1 if anomaly else 0,
           int(nuisance), int(background is not None)]
    for attempt in range(20):
        rng = np.random.default_rng(key + [attempt])
        kind = anomaly or (str(rng.choice(ANOMALIES)) if rng.random() >= NONE_FRACTION else "none")
        hist, cur, mask = _build(rng, size, hz, kind, nuisance, background == "constant")
        frac = mask.mean()
        if kind == "none" or (mask.sum() >= 6 and frac <= MAX_MASK_FRACTION):
            return Pair(name=f"synth-{kind}-{seed}", history=hist, current=cur, mask=mask)
    raise RuntimeError(f"could not generate a '{anomaly}' pair for seed {seed}")  # pragma: no cover


def _build(rng: np.random.Generator, size: int, hz: Hardness, kind: str, nuisance: bool, plain: bool):
    n = int(math.ceil(size * hz.margin)) if nuisance else size + 8
    light = _light_dir(rng)
    world = np.full((n, n, 3), rng.uniform(90, 170), _F32) if plain else _background(rng, n)
    parts = _scene_parts(rng, n, size, plain)
    target = None
    if kind in ("missing", "displaced"):
        centre = np.array([n / 2, n / 2])
        cands = [p for p in parts if p.target and np.abs(p.c - centre).max() < 0.36 * size]
        if not cands or rng.random() < 0.15:  # a lone component somewhere in view
            r = rng.uniform(7, 15) * size / 256
            c = centre + rng.uniform(-0.3, 0.3, 2) * size
            if rng.random() < 0.7:
                cands = [_Hex(c, r, rng.uniform(0, 1), _pick(rng, _METALS), nut=rng.random() < 0.4, washer=rng.random() < 0.5)]
            else:
                a = rng.uniform(0, np.pi)
                u = np.array([math.cos(a), math.sin(a)]) * rng.uniform(0.2, 0.4) * size
                ctrl = np.array([c - u, c - u / 3 + rng.normal(0, 8, 2), c + u / 3 + rng.normal(0, 8, 2), c + u])
                cands = [_Cable(ctrl, rng.uniform(4, 10) * size / 256, _pick(rng, _CABLES))]
            parts.append(cands[0])
        target = cands[int(rng.integers(len(cands)))]
        parts.remove(target)
    base = _render_world(world, parts, light)
    hist_world = cur_world = base
    if target is not None:
        fp = np.zeros((n, n), _F32)  # footprints of the part before and after, in the world
        hist_world = base.copy()
        target.draw(hist_world, light, fp)
        cur_world = base.copy()
        if kind == "displaced":
            target.moved(rng, size).draw(cur_world, light, fp)
        elif isinstance(target, (_Hex, _Rivet)) and rng.random() < 0.6:
            r = target.r * (0.5 if isinstance(target, _Hex) else 0.7)
            if isinstance(target, _Hex) and target.nut and rng.random() < 0.5:
                _Rivet(target.c, r, target.color * 0.9, False).draw(cur_world, light)  # the bare stud
            else:
                _Hole(target.c, r).draw(cur_world, light)
    h_corners = _view_corners(rng, n, size, None, hz) if nuisance else np.array(
        [(0, 0), (size, 0), (size, size), (0, size)], np.float64) + (n - size) / 2
    c_corners = _view_corners(rng, n, size, h_corners, hz) if nuisance else h_corners
    hist = _warp(hist_world, h_corners, size)
    clean = _warp(hist_world, c_corners, size)  # the current view had nothing changed
    if kind in ("missing", "displaced"):
        support = _warp(fp * 255, c_corners, size) > 127
        cur, mask = _commit(clean, _warp(cur_world, c_corners, size), support, whole=True)
    elif kind == "none":
        cur, mask = clean, np.zeros((size, size), bool)
    else:
        painted, support = _PAINTERS[kind](clean.astype(_F32), rng, light)
        cur, mask = _commit(clean, painted, support)
    if nuisance:
        hist, cur = _photometric(hist, rng, hz), _photometric(cur, rng, hz)
    return hist, cur, mask


class SynthSource(Source):
    """``synth:N[:SEED[:hard]]``: N generated pairs; pair i uses a seed derived from (SEED, i)."""

    MAX_PAIRS = 1_000_000

    def __init__(self, n: int, seed: int = 0, hardness: str = "easy", size: int = 256, spec: str | None = None):
        if hardness not in HARDNESS:
            raise ValueError(f"hardness must be one of {sorted(HARDNESS)}, got {hardness!r}")
        self.n, self.seed, self.hardness, self.size = int(n), int(seed), hardness, int(size)
        self.spec = spec or f"synth:{self.n}:{self.seed}" + (":hard" if hardness == "hard" else "")
        self.names = [f"synth-{i:06d}" for i in range(self.n)]

    def key(self, i: int) -> str:
        return f"synth:{self.seed}:{self.hardness}:{self._index(i)}"

    def _load(self, i: int) -> Pair:
        pair = generate_pair(_derive(self.seed, i), self.size, self.hardness)
        pair.name = self.names[i]
        return pair


def _synth_from_spec(arg: str, spec: str) -> SynthSource:
    usage = "write synth:N[:SEED[:hard]], e.g. synth:1000 or synth:1000:7:hard"
    fields = arg.split(":")
    if len(fields) > 3:
        raise UserError(f"data spec '{spec}' has too many fields: {usage}.")
    try:
        n = int(fields[0])
    except ValueError:
        raise UserError(f"data spec '{spec}': the number of pairs '{fields[0]}' is not a whole number; {usage}.") from None
    if not 1 <= n <= SynthSource.MAX_PAIRS:
        raise UserError(f"data spec '{spec}': the number of pairs must be between 1 and {SynthSource.MAX_PAIRS}, got {n}.")
    seed = 0
    if len(fields) > 1:
        try:
            seed = int(fields[1])
        except ValueError:
            raise UserError(f"data spec '{spec}': the seed '{fields[1]}' is not a whole number; {usage}.") from None
        if seed < 0:
            raise UserError(f"data spec '{spec}': the seed must not be negative, got {seed}.")
    hardness = "easy"
    if len(fields) > 2:
        hardness = fields[2].strip().lower()
        if hardness not in HARDNESS:
            raise UserError(f"data spec '{spec}': the last field must be 'hard' or 'easy', got '{fields[2]}'.")
    return SynthSource(n, seed, hardness, spec=spec)


register_source(
    "synth",
    _synth_from_spec,
    help="synth:N[:SEED[:hard]] — N generated pairs (default seed 0, easy nuisance; 'hard' = larger viewpoint shift)",
)


# ----------------------------------------------------------------------------------------------
# Examples for the app


GALLERY_ORDER = ("foreign_body", "missing", "displaced", "oil_leak", "scratch", "none")


def gallery(n: int = 6, size: int = 384, seed: int = 2024) -> list[Pair]:
    """A varied set of n pairs, one of each kind in turn (alternating easy and hard viewpoints)."""
    pairs = []
    for k in range(n):
        kind = GALLERY_ORDER[k % len(GALLERY_ORDER)]
        p = generate_pair(_derive(seed, k), size, "hard" if k % 2 else "easy", kind)
        p.name = f"example-{k + 1:02d}-{kind.replace('_', '-')}"
        pairs.append(p)
    return pairs


def write_pairs(pairs: Iterable[Pair], folder: str | os.PathLike) -> Path:
    """Write pairs in the ``pairs:ROOT`` layout: ``folder/NAME/hist.png, cur.png, cur_gt.png``.

    ``cur_gt.png`` ({0, 255}) is written only for pairs with a mask. Returns the folder.
    """
    root = Path(folder)
    for p in pairs:
        if not p.name or p.name != Path(p.name).name or p.name.startswith("."):
            raise ValueError(f"a pair name must be a plain folder name, got {p.name!r}")
        d = root / p.name
        try:
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(p.history).save(d / "hist.png")
            Image.fromarray(p.current).save(d / "cur.png")
        except OSError as e:
            raise UserError(f"cannot write the pair '{d}': {e.strerror or e}.") from None
        if p.mask is not None:
            save_mask_png(d / "cur_gt.png", p.mask)
    return root
