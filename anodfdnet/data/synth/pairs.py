"""A generated pair, made in the four steps (scene, views, anomaly, nuisance) with its exact mask.

``generate_pair`` is deterministic for its arguments; see ``anodfdnet.data.synth`` for how the mask is exact.
"""
from __future__ import annotations

import math

import numpy as np

from ..source import Pair
from .anomalies import _PAINTERS, ANOMALIES, _commit
from .canvas import _CABLES, _F32, _METALS, _pick
from .nuisance import HARDNESS, Hardness, _photometric
from .scene import _background, _Cable, _Hex, _Hole, _light_dir, _render_world, _Rivet, _scene_parts
from .views import _view_corners, _warp

KINDS = ("none",) + ANOMALIES
NONE_FRACTION = 0.15  # share of pairs with no anomaly when the kind is drawn at random
MAX_MASK_FRACTION = 0.30  # an anomaly never covers more than this share of the image


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
