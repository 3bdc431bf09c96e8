"""Drawing on float32 RGB canvases (values 0..255): the primitives every stage of the generator paints with.

Palettes of paints, metals and cable sheaths; sub-pixel anti-aliased coverage masks (polygons, circles,
lines), outlines (blobs, Bezier curves), shading (Lambert + Phong, domes), blending, darkening and soft drop
shadows, a window on a canvas (``_Roi``), sensor noise, and value-noise textures (fractal noise, ramps,
periodic profiles) with their tinting and lighting.
"""
from __future__ import annotations

import functools
import math

import cv2
import numpy as np

_F32 = np.float32

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
# Textures


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
