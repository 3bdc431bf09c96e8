"""Step 3, the anomaly, in the current image only: a foreign body (with a shadow), an oil leak, a scratch or
crack painted in the current view's frame (a missing or displaced part is made in the world, by
``pairs``), and ``_commit``, which turns an anomalous image into the current image and its exact mask.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .canvas import _CABLES, _F32, _METALS, _ONE, _PAINTS, _SHIFT, _bezier, _blend, _blob, _circle_mask, _darken, _fbm
from .canvas import _grid, _line_mask, _lit, _pick, _poly_mask, _pts, _rgb, _Roi, _shade, _shadow_of
from .photos import _PASTE_PHOTOS, _photo_crop
from .scene import _light_dir

ANOMALIES = ("foreign_body", "missing", "displaced", "oil_leak", "scratch")
CHANGE_LEVEL = 10  # a pixel is in the mask when the anomaly moved some channel by more than this

# ----------------------------------------------------------------------------------------------
# Anomalies painted in the current frame. Each takes a float32 image and returns (image, support),
# support being the anomaly's footprint: labelled wherever the anomaly changed the pixel at all.


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
