"""Step 1, the scene: the "world" canvas a pair is two views of, larger than the output.

A background (a random crop of a photograph, or a procedural surface: painted or brushed metal,
concrete, corrugated sheet, hazard stripes) and machine parts drawn on top of it (pipes, plates with
rivets or bolts, flanges with a bolt circle, cables, loose bolts and nuts), lit from one direction with
shadows. Each part draws itself and records its footprint; a part that may go missing or be displaced
knows how to move (``moved``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from .canvas import _CABLES, _F32, _METALS, _ONE, _PAINTS, _SHIFT, _bezier, _blend, _circle_mask, _darken, _dome, _fbm
from .canvas import _gradient, _line_mask, _lit, _periodic, _pick, _poly_mask, _pts, _record, _rgb, _Roi, _sensor_noise
from .canvas import _shade, _shadow_of, _tinted
from .photos import _BACKGROUND_PHOTOS, _photo_crop

# ----------------------------------------------------------------------------------------------
# Light


def _light_dir(rng: np.random.Generator) -> np.ndarray:
    a = rng.uniform(-np.pi, np.pi) if rng.random() < 0.3 else rng.normal(-2.3, 0.5)  # mostly top-left
    el = rng.uniform(0.5, 1.1)
    v = np.array([math.cos(a) * math.cos(el), math.sin(a) * math.cos(el), math.sin(el)])
    return v / np.linalg.norm(v)


# ----------------------------------------------------------------------------------------------
# Backgrounds


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
