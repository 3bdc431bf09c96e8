"""Alignment: the history image warped onto the current view, or left alone with a stated reason.

Two photos of one place taken minutes or months apart, by hand, robot or drone, differ by a shift, a
rotation, a scale and some perspective. ``align_pair(history, current, mode)`` estimates that change and
warps the history onto the current image's pixel grid, so the model compares like with like:

1. both images as grey, downscaled so the long side is at most ``WORK_SIDE`` (speed; the geometry is
   scaled back to full resolution at the end);
2. ORB key points (``FEATURES``; chosen by measurement, see benchmarks/ALIGN.md: as many correct pairs
   as AKAZE and SIFT on the controlled shifts at a fraction of their time), Lowe's ratio test;
3. a robust fit, USAC MAGSAC++: a homography, else (when the matches do not support one) an affine
   map, else a similarity;
4. optionally (``ecc``) an ECC refinement of that map on a small image, for sub-pixel accuracy;
5. the estimate is *judged* before it is used, and the pair is returned unaligned, with the reason,
   when it is not trustworthy: enough inliers and a high enough share of the matches, inliers spread
   over the image, a small reprojection error, a map within sane bounds (scale, shear, perspective, the
   warped frame convex and covering most of the current view), and photometric agreement (normalised
   cross-correlation of the two grey images, at NCC_SIDE) better after the warp than before, by
   MIN_NCC_GAIN. A map that moves no part of the image by more than a pixel or so means the pair is
   *already registered*: it is left exactly as it was, so registered pairs never lose anything to alignment.

Pixels of the current view that the warped history does not cover are *unknown*: ``Alignment.valid``
is False there. The warped history is filled there with the current image itself (so the model sees no
difference), and every output sets the probability there to 0 and flags the pixels (``mask_unknown``).

Modes: ``off`` (never warp), ``auto`` (homography, affine or similarity, whichever the judge accepts
first), ``homography``, ``affine`` (one model only), ``ecc`` (auto's estimate refined by ECC; ECC alone
from the identity when the features find nothing).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from .data.images import resize_rgb
from .errors import UserError

MODES = ("auto", "off", "homography", "affine", "ecc")
WORK_SIDE = 512  # long side (px) of the grey images features are found on
ECC_SIDE = 256  # long side of the images ECC refines on
NCC_SIDE = 256  # long side of the images the photometric check compares. Against 512 (the work side), in
# benchmarks/ALIGN.md: the same moved pairs aligned correctly, wrongly and left alone, 3 more registered pairs left
# alone (79 of 80 against 76), and about 1.5 ms less CPU a 512x512 pair (13.8 against 15.2, then 13.9 against 15.5)
FEATURES = "orb"
MIN_WORK_SHORT_SIDE = 32  # work px: a narrower image holds no 31-px feature patch (a 2000x3 strip raised cv2.error)
RATIO = 0.8  # Lowe's ratio test
MIN_INLIERS = 15
MIN_INLIER_RATIO = 0.2
MIN_SPREAD = 0.08  # the inliers' convex hull, as a share of the current view's area
MAX_REPROJ_PX = 2.5  # mean inlier reprojection error in work pixels
SCALE_BOUNDS = (0.6, 1.67)  # area scale of the map's linear part
MAX_ANISOTROPY = 1.35  # ratio of the linear part's singular values (shear, squash)
MAX_PERSPECTIVE = 0.25  # how much the perspective terms change the scale across the image
MIN_COVERAGE = 0.5  # share of the current view the warped history must cover
REGISTERED_PX = 1.5  # below this displacement (full-resolution px, at least) the pair counts as registered
REGISTERED_FRACTION = 0.004  # ... or this share of the long side, whichever is larger
MIN_NCC_GAIN = 0.03  # the warp must raise the normalised cross-correlation by at least this (measured: fewer
# registered pairs moved for a pixel or two, no correct alignment of the controlled viewpoint changes lost)


@dataclass
class Alignment:
    """What alignment did to one pair. ``history`` is what the model should see as the history image
    (the current image's size); ``valid`` is None when every pixel is covered (no warp)."""

    history: np.ndarray
    mode: str
    aligned: bool
    reason: str  # one phrase: how it was aligned, or why not
    model: str = "none"  # homography, affine, similarity, or none
    matrix: np.ndarray | None = None  # 3x3, current-image pixel <- history-image pixel (full resolution)
    valid: np.ndarray | None = None  # bool HxW of the current view: covered by the warped history
    inliers: int = 0
    matches: int = 0
    reprojection_px: float | None = None  # mean inlier error, full-resolution pixels
    ncc_before: float | None = None
    ncc_after: float | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def uncovered_pct(self) -> float:
        # count_nonzero: the same value as valid.mean() (an exact integer count) at a tenth of its time (a 512x512 map)
        return 0.0 if self.valid is None else float(100.0 * (1.0 - np.count_nonzero(self.valid) / self.valid.size))

    def verdict(self) -> str:
        """One line for a person: 'aligned: homography, 412 inliers, 0.7 px, 3.1 % uncovered' or 'not aligned: ...'."""
        if self.mode == "off":
            return "not aligned: alignment is off"
        if not self.aligned:
            return f"not aligned: {self.reason}"
        px = f", {self.reprojection_px:.1f} px" if self.reprojection_px is not None else ""
        how = f"{self.inliers} inliers{px}" if self.inliers else "by ECC alone (no feature matches)"
        return f"aligned: {self.model}, {how}, {self.uncovered_pct:.1f} % of the current view uncovered"

    def meta(self) -> dict:
        """JSON-ready record for outputs' metadata."""
        out = {"align": self.mode, "aligned": self.aligned, "align_model": self.model, "align_reason": self.reason,
               "align_verdict": self.verdict(), "align_inliers": self.inliers, "align_matches": self.matches,
               "align_reprojection_px": None if self.reprojection_px is None else round(self.reprojection_px, 3),
               "uncovered_pct": round(self.uncovered_pct, 3), "align_seconds": round(self.seconds, 4)}
        if self.matrix is not None:
            out["align_matrix"] = [[round(float(v), 6) for v in row] for row in self.matrix]
        return out


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UserError(f"alignment '{str(mode)[:40]}' is not one of {', '.join(MODES)}.")
    return mode


def mask_unknown(prob: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """prob with the pixels the history does not cover set to 0 (``valid`` resized to prob's shape if needed)."""
    if valid is None:
        return prob
    v = resize_valid(valid, prob.shape)
    out = prob.copy()
    out[~v] = 0.0
    return out


def resize_valid(valid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if valid.shape == tuple(shape):
        return valid
    return cv2.resize(valid.astype(np.uint8), (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_NEAREST).astype(bool)


# ---------------------------------------------------------------------------------------------------


def _grey_small(img: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    s = side / max(g.shape[:2])  # small images are enlarged: ORB needs its 31-px patches to fit many times
    if abs(s - 1.0) > 1e-3:
        g = cv2.resize(g, (max(1, round(g.shape[1] * s)), max(1, round(g.shape[0] * s))),
                       interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    else:
        s = 1.0
    return g, s


def _detector(name: str):
    if name == "orb":
        return cv2.ORB_create(nfeatures=2000, scaleFactor=1.2, nlevels=8, fastThreshold=10), cv2.NORM_HAMMING
    if name == "akaze":
        return cv2.AKAZE_create(threshold=5e-4), cv2.NORM_HAMMING
    if name == "sift":
        return cv2.SIFT_create(nfeatures=2000), cv2.NORM_L2
    raise ValueError(f"unknown features {name!r}")


def _matches(hg: np.ndarray, cg: np.ndarray, features: str):
    """(history points, current points) of the matches that pass the ratio test, work pixels."""
    det, norm = _detector(features)
    kh, dh = det.detectAndCompute(hg, None)
    kc, dc = det.detectAndCompute(cg, None)
    if dh is None or dc is None or len(kh) < 2 or len(kc) < 2:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    # The two nearest current descriptors of each history one, as arrays (BFMatcher.knnMatch's own search,
    # without a Python object per match).
    dist, nearest = cv2.batchDistance(dh, dc, cv2.CV_32F if norm == cv2.NORM_L2 else cv2.CV_32S, normType=norm, K=2)
    good = dist[:, 0] < RATIO * dist[:, 1]
    ph = cv2.KeyPoint_convert(kh)[good].reshape(-1, 2)
    pc = cv2.KeyPoint_convert(kc)[nearest[good, 0]].reshape(-1, 2)
    return ph.astype(np.float32), pc.astype(np.float32)


def _fit(model: str, ph: np.ndarray, pc: np.ndarray):
    """3x3 map (work history px -> work current px) and the inlier flags, or (None, None)."""
    if model == "homography":
        if len(ph) < 8:
            return None, None
        H, inl = cv2.findHomography(ph, pc, cv2.USAC_MAGSAC, MAX_REPROJ_PX, maxIters=2000, confidence=0.999)
    else:
        if len(ph) < 6:
            return None, None
        fit = cv2.estimateAffine2D if model == "affine" else cv2.estimateAffinePartial2D
        A, inl = fit(ph, pc, method=cv2.RANSAC, ransacReprojThreshold=MAX_REPROJ_PX, maxIters=2000, confidence=0.999)
        H = None if A is None else np.vstack([A, [0.0, 0.0, 1.0]])
    if H is None or inl is None or not np.all(np.isfinite(H)) or abs(H[2, 2]) < 1e-12:
        return None, None
    return H / H[2, 2], inl.ravel().astype(bool)


def _project(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(pts.reshape(-1, 1, 2).astype(np.float64), H).reshape(-1, 2)


def _geometry_problem(H: np.ndarray, hist_shape, cur_shape) -> str | None:
    """Why the map is not a plausible change of viewpoint, or None. H: history work px -> current work px."""
    A = H[:2, :2]
    det = float(np.linalg.det(A))
    if not SCALE_BOUNDS[0] <= det <= SCALE_BOUNDS[1]:
        return f"implausible scale change (area x{det:.2f})"
    sv = np.linalg.svd(A, compute_uv=False)
    if sv[0] / max(sv[1], 1e-9) > MAX_ANISOTROPY:
        return f"implausible shear or squash ({sv[0] / max(sv[1], 1e-9):.2f})"
    h, w = hist_shape
    corners = np.float64([[0, 0], [w, 0], [w, h], [0, h]])
    denom = corners @ H[2, :2] + H[2, 2]
    if np.any(denom <= 0) or denom.max() / denom.min() > 1 + MAX_PERSPECTIVE:
        return "implausible perspective"
    quad = _project(H, corners).astype(np.float32)
    if not cv2.isContourConvex(quad.reshape(-1, 1, 2)):
        return "the warped frame folds over"
    return None


def _coverage(H: np.ndarray, hist_shape, cur_shape) -> float:
    h, w = hist_shape
    quad = _project(H, np.float64([[0, 0], [w, 0], [w, h], [0, h]])).astype(np.float32)
    ch, cw = cur_shape
    inter, _ = cv2.intersectConvexConvex(quad, np.float32([[0, 0], [cw, 0], [cw, ch], [0, ch]]))
    return float(inter) / float(ch * cw)


def _blur(g: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(g, (0, 0), 1.0)


def _ncc(a: np.ndarray, b: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Normalised cross-correlation of two grey images (pass them through ``_blur`` first) over ``valid``.

    Pixels outside ``valid`` are zeroed after centring rather than indexed out, and the sums are float32 dot
    products: 0.3-1 ms on 512x512 where boolean indexing took 4-5 ms of CPU (same value to about 1e-5)."""
    a = a.astype(np.float32).ravel()
    b = b.astype(np.float32).ravel()
    if (a.size if valid is None else np.count_nonzero(valid)) < 16:
        return -1.0
    if valid is None:
        a -= np.float32(a.mean(dtype=np.float64))
        b -= np.float32(b.mean(dtype=np.float64))
    else:
        v = valid.ravel().astype(np.float32)
        n = np.count_nonzero(valid)
        a -= np.float32(float(a.dot(v)) / n)
        a *= v
        b -= np.float32(float(b.dot(v)) / n)
        b *= v
    den = float(np.sqrt(float(a.dot(a)) * float(b.dot(b))))
    return float(a.dot(b)) / den if den > 0 else 0.0


def _agreement(H: np.ndarray, hg: np.ndarray, cg: np.ndarray) -> tuple[float, float]:
    """(NCC of the history resized onto the current view, NCC of the history warped by H over the part it covers),
    each against the current image; H maps work history px to work current px. Computed on images of at most
    NCC_SIDE px on the long side (the work images, WORK_SIDE px, area-averaged down; H scaled to match)."""
    hg, s_h = _grey_small(hg, NCC_SIDE)
    cg, s_c = _grey_small(cg, NCC_SIDE)
    Hs = np.diag([s_c, s_c, 1.0]) @ H @ np.diag([1 / s_h, 1 / s_h, 1.0])
    hw = cv2.warpPerspective(hg, Hs, cg.shape[::-1], flags=cv2.INTER_LINEAR)
    vw = cv2.warpPerspective(np.full(hg.shape, 255, np.uint8), Hs, cg.shape[::-1], flags=cv2.INTER_NEAREST) > 0
    cb = _blur(cg)
    before = _ncc(_blur(cv2.resize(hg, cg.shape[::-1], interpolation=cv2.INTER_AREA) if hg.shape != cg.shape else hg), cb)
    return before, _ncc(_blur(hw), cb, vw)


def _refine_ecc(H: np.ndarray, hg: np.ndarray, cg: np.ndarray, homography: bool) -> np.ndarray | None:
    """ECC refinement of H (work history px -> work current px) at ECC_SIDE; None when ECC fails."""
    s = min(1.0, ECC_SIDE / max(cg.shape))
    S = np.diag([s, s, 1.0])
    small_h = cv2.resize(hg, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else hg
    small_c = cv2.resize(cg, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else cg
    # findTransformECC maps template (current) coordinates to input (history) coordinates.
    W = np.linalg.inv(S @ H @ np.linalg.inv(S))
    W /= W[2, 2]
    motion = cv2.MOTION_HOMOGRAPHY if homography else cv2.MOTION_AFFINE
    warp = W.astype(np.float32) if homography else W[:2].astype(np.float32)
    try:
        _, warp = cv2.findTransformECC(small_c, small_h, warp, motion,
                                       (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-5), None, 3)
    except cv2.error:
        return None
    W = warp.astype(np.float64) if homography else np.vstack([warp.astype(np.float64), [0, 0, 1]])
    out = np.linalg.inv(S) @ np.linalg.inv(W) @ S
    return out / out[2, 2]


def _judge(model: str, H, inl, ph, pc, hg, cg, scale_px: float) -> tuple[str | None, dict]:
    """(why the fit is not trustworthy or None, figures)."""
    if H is None:
        return f"no {model} fits the matches", {}
    n = int(inl.sum())
    fig = {"inliers": n, "matches": len(ph)}
    if n < MIN_INLIERS:
        return f"too few consistent matches for a {model} ({n})", fig
    if n / len(ph) < MIN_INLIER_RATIO:
        return f"too few of the matches agree on a {model} ({n} of {len(ph)})", fig
    err = float(np.linalg.norm(_project(H, ph[inl]) - pc[inl], axis=1).mean())
    fig["reprojection_px"] = err * scale_px
    if err > MAX_REPROJ_PX:
        return f"{model} reprojection error too large ({err * scale_px:.1f} px)", fig
    hull = cv2.convexHull(pc[inl].astype(np.float32))
    spread = cv2.contourArea(hull) / float(cg.shape[0] * cg.shape[1])
    if spread < MIN_SPREAD:
        return f"the matches cover too little of the image ({100 * spread:.0f} %)", fig
    problem = _geometry_problem(H, hg.shape[:2], cg.shape[:2])
    if problem:
        return problem, fig
    cov = _coverage(H, hg.shape[:2], cg.shape[:2])
    if cov < MIN_COVERAGE:
        return f"the warped history would cover only {100 * cov:.0f} % of the current view", fig
    return None, fig


def _displacement(M: np.ndarray, hist_shape, cur_shape, points: np.ndarray | None) -> float:
    """How far the map moves the image (full-resolution px) against resizing alone: the 90th percentile over
    the inlier matches (history px) where there are some, which is what the matches support, else the
    largest move over the frame's corners and centre."""
    hh, hw = hist_shape
    ch, cw = cur_shape
    plain = np.diag([cw / hw, ch / hh, 1.0])  # what resizing the history to the current would do
    if points is None or len(points) < MIN_INLIERS:
        points = _project(np.linalg.inv(plain), np.float64([[0, 0], [cw, 0], [cw, ch], [0, ch], [cw / 2, ch / 2]]))
        return float(np.linalg.norm(_project(M, points) - _project(plain, points), axis=1).max())
    return float(np.percentile(np.linalg.norm(_project(M, points) - _project(plain, points), axis=1), 90))


def align_pair(history: np.ndarray, current: np.ndarray, mode: str = "auto", features: str = FEATURES) -> Alignment:
    """Align ``history`` (uint8 HxWx3, any size) onto ``current``; see the module's docstring.

    The returned ``Alignment.history`` always has the current image's size: the warped history when the
    estimate was trusted, else the history resized (as without alignment)."""
    t0 = time.perf_counter()
    check_mode(mode)
    cur_shape = current.shape[:2]

    def unaligned(reason: str, **kw) -> Alignment:
        hist = history if history.shape[:2] == cur_shape else resize_rgb(history, cur_shape)  # as without alignment
        return Alignment(hist, mode, False, reason, seconds=time.perf_counter() - t0, **kw)

    if mode == "off":
        return unaligned("alignment is off")
    hg, sh = _grey_small(history, WORK_SIDE)
    cg, sc = _grey_small(current, WORK_SIDE)
    if min(*hg.shape, *cg.shape) < MIN_WORK_SHORT_SIDE:  # a strip: OpenCV's feature pyramid fails on it (cv2.error)
        thin = history if min(hg.shape) < MIN_WORK_SHORT_SIDE else current
        return unaligned(f"an image is too narrow to align ({thin.shape[1]}x{thin.shape[0]})")
    ph, pc = _matches(hg, cg, features)
    scale_px = 1.0 / sc
    models = {"homography": ["homography"], "affine": ["affine"]}.get(mode, ["homography", "affine", "similarity"])
    H = None
    reason = f"too few matches ({len(ph)})" if len(ph) < MIN_INLIERS else None
    fig: dict = {"matches": len(ph)}
    if reason is None:
        for model in models:
            H, inl = _fit(model, ph, pc)
            why, fig = _judge(model, H, inl, ph, pc, hg, cg, scale_px)
            if why is None:
                break
            reason = reason or why  # the first model's reason is the most telling
            H = None
    if H is None and mode == "ecc":
        model, fig = "homography", {"matches": len(ph), "inliers": 0}
        H = _refine_ecc(np.diag([cg.shape[1] / hg.shape[1], cg.shape[0] / hg.shape[0], 1.0]), hg, cg, True)
        if H is not None and (_geometry_problem(H, hg.shape[:2], cg.shape[:2]) or _coverage(H, hg.shape[:2], cg.shape[:2]) < MIN_COVERAGE):
            H = None
        reason = None if H is not None else (reason or "ECC did not converge")
        fig["ecc"] = H is not None
    elif H is not None and mode == "ecc":
        refined = _refine_ecc(H, hg, cg, model == "homography")
        if refined is not None and not _geometry_problem(refined, hg.shape[:2], cg.shape[:2]):
            H = refined
            fig["ecc"] = True
    if H is None:
        return unaligned(reason or "no trustworthy estimate", matches=len(ph), inliers=fig.get("inliers", 0))
    # Full-resolution map: current px <- history px.
    M = np.diag([1 / sc, 1 / sc, 1.0]) @ H @ np.diag([sh, sh, 1.0])
    M /= M[2, 2]
    common = dict(model=model, matrix=M, inliers=fig.get("inliers", 0), matches=len(ph), reprojection_px=fig.get("reprojection_px"))
    limit = max(REGISTERED_PX, REGISTERED_FRACTION * max(cur_shape))
    points = ph[inl] / sh if fig.get("inliers") else None
    moved = _displacement(M, history.shape[:2], cur_shape, points)
    if moved < limit:
        return unaligned(f"already registered (the matches move by {moved:.1f} px at most)", **common)
    # Photometric agreement, on images of at most NCC_SIDE px: after the warp (over the covered part) against before.
    before, after = _agreement(H, hg, cg)
    common.update(ncc_before=before, ncc_after=after)
    if after < before + MIN_NCC_GAIN:
        return unaligned(f"warping would not make the images agree better (correlation {before:.2f} -> {after:.2f})", **common)
    ch, cw = cur_shape
    warped = cv2.warpPerspective(history, M, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    cover = cv2.warpPerspective(np.full(history.shape[:2], 255, np.uint8), M, (cw, ch), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT)
    valid = cover >= 255  # fully covered: edge pixels blended with the black border count as unknown
    if valid.all():
        valid = None
    else:  # the model sees no difference where nothing is known (cv2.copyTo: 0.04 ms, boolean indexing 0.9 ms)
        warped = cv2.copyTo(np.ascontiguousarray(current), (cover < 255).view(np.uint8), warped)
    how = f"{model} from {fig['inliers']} inliers" if fig.get("inliers") else f"{model} by ECC from the identity"
    return Alignment(warped, mode, True, how + (", refined by ECC" if fig.get("ecc") and fig.get("inliers") else ""),
                     valid=valid, seconds=time.perf_counter() - t0, **common)
