"""What inspection keeps of a pair (anodfdnet/inspect/outputs.py): regions and thumbnails against plain
references."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from anodfdnet.inspect.outputs import MAX_REGIONS, TINT, _overlay, regions, thumbnail
from anodfdnet.visualize import REGION_RGB


def reference_regions(prob, mask):
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    rows = []
    for k in range(1, n):
        inside = prob[labels == k]
        x, y, w, h, area = (int(v) for v in stats[k])
        rows.append({"x": x, "y": y, "w": w, "h": h, "area": area, "max_prob": float(inside.max()),
                     "mean_prob": float(inside.astype(np.float64).mean())})
    rows.sort(key=lambda r: -r["area"])  # stable: ties keep label order
    return n - 1, rows[:MAX_REGIONS]


def nested_corners(side: int) -> np.ndarray:
    """Many separate L-shaped regions whose boxes overlap and together cover the image many times over."""
    m = np.zeros((side, side), bool)
    for i in range(0, side - 1, 2):
        m[i, i:] = True
        m[i:, i] = True
    return m


def far_corner(shape) -> np.ndarray:
    """Two small regions far from the top-left corner (the labelling works on the mask's bounding rectangle:
    its boxes must come back in the whole map's pixels)."""
    m = np.zeros(shape, bool)
    m[70:90, 100:125] = True
    m[60, 127] = True
    return m


@pytest.mark.parametrize("case", ["blobs", "noise", "nested corners", "empty", "far corner"])
def test_regions_match_a_plain_per_label_reference(case):
    rng = np.random.default_rng(3)
    prob = rng.random((96, 128), dtype=np.float32)
    mask = {"blobs": cv2.GaussianBlur(prob, (0, 0), 6) > 0.52, "noise": prob > 0.9,
            "nested corners": np.pad(nested_corners(96), ((0, 0), (0, 32))), "empty": np.zeros(prob.shape, bool),
            "far corner": far_corner(prob.shape)}[case]
    n, got = regions(prob, np.ascontiguousarray(mask))
    n_ref, want = reference_regions(prob, mask)
    assert n == n_ref and len(got) == len(want) == min(n_ref, MAX_REGIONS)
    if case == "nested corners":  # the boxes cover the image many times: the one-pass branch ran
        assert sum(r["w"] * r["h"] for r in got) > 2 * prob.size
    for g, w in zip(got, want):
        assert (g["x"], g["y"], g["w"], g["h"], g["area"]) == (w["x"], w["y"], w["w"], w["h"], w["area"])
        assert g["max_prob"] == w["max_prob"] and g["mean_prob"] == pytest.approx(w["mean_prob"], rel=1e-9)


def test_thumbnails_keep_the_aspect_and_look_like_area_averaging():
    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8), (480, 640), interpolation=cv2.INTER_CUBIC)
    # 4x4 blocks exactly; 2x2 blocks then bilinear; no whole blocks; smaller than a thumbnail
    for shape in ((640, 480), (512, 384), (641, 479), (100, 80)):
        src = np.ascontiguousarray(img[:shape[0], :shape[1]])
        t = thumbnail(src)
        assert max(t.shape[:2]) == min(160, max(shape)) and t.dtype == np.uint8
        assert abs(t.shape[1] / t.shape[0] - shape[1] / shape[0]) < 0.02
        area = cv2.resize(src, (t.shape[1], t.shape[0]), interpolation=cv2.INTER_AREA)
        mse = np.mean((t.astype(float) - area) ** 2)
        assert 10 * np.log10(255 ** 2 / max(mse, 1e-9)) > 35  # PSNR against area averaging all the way


def test_the_overlay_tints_the_anomalous_pixels_and_boxes_the_regions():
    rng = np.random.default_rng(1)
    cur = rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)
    mask = np.zeros((512, 512), bool)
    assert np.array_equal(_overlay(cur, mask, []), cur)  # a normal pair: the thumbnail as it is
    mask[:256, :256] = True  # the top-left quarter of the map: the top-left 80x80 of the thumbnail
    n, regs = regions(np.ones(mask.shape, np.float32), mask)
    out = _overlay(cur, mask, regs)
    tinted = (0.45 * cur[:80, :80].astype(np.float32) + 0.55 * TINT).astype(np.uint8)
    assert n == 1 and np.array_equal(out[:80, :80], tinted)
    # The box is drawn just outside the tinted block: column and row 81 in yellow, 82 dark (the top and left edges
    # fall off the image).
    assert (out[:82, 81] == REGION_RGB).all() and (out[81, :82] == REGION_RGB).all()
    assert (out[:83, 82] == 0).all() and (out[82, :83] == 0).all()
    untouched = np.ones((160, 160), bool)
    untouched[:83, :83] = False
    assert np.array_equal(out[untouched], cur[untouched]) and np.array_equal(out[80, :80], cur[80, :80])
    # A region of a few map pixels still shows as a box of a few thumbnail pixels.
    tiny = np.zeros((512, 512), bool)
    tiny[300:302, 400:402] = True
    _, small = regions(np.ones(tiny.shape, np.float32), tiny)
    boxed = (_overlay(cur, tiny, small) == REGION_RGB).all(axis=2)
    ys, xs = np.nonzero(boxed)
    assert boxed.sum() >= 12 and 90 <= ys.min() and ys.max() <= 98 and 121 <= xs.min() and xs.max() <= 129
