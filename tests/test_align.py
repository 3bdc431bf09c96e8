"""Alignment (anodfdnet/align.py): a known viewpoint change is undone, registered pairs are left exactly as
they were, untrustworthy estimates fall back with a reason, uncovered pixels are unknown in every output
(Predictor, metrics, predict's files, evaluate's JSON)."""
import json
import math

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from anodfdnet.align import MODES, align_pair, check_mode, mask_unknown
from anodfdnet.checkpoint import save_checkpoint
from anodfdnet.cli import main
from anodfdnet.errors import UserError
from anodfdnet.metrics import PixelMetrics
from anodfdnet.models import ModelConfig, build_model
from anodfdnet.predict import Predictor

torch.set_num_threads(1)
cv2.setNumThreads(1)


def scene(size: int = 320, seed: int = 0) -> np.ndarray:
    """A textured RGB scene with corners everywhere: random rectangles, circles and lines on noise."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), (0, 0), 2)
    for _ in range(60):
        x, y = (int(v) for v in rng.integers(0, size, 2))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        kind = rng.integers(3)
        if kind == 0:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(8, 40)), y + int(rng.integers(8, 40))), colour, -1)
        elif kind == 1:
            cv2.circle(img, (x, y), int(rng.integers(4, 20)), colour, -1)
        else:
            cv2.line(img, (x, y), tuple(int(v) for v in rng.integers(0, size, 2)), colour, 2)
    return img


def similarity(size: int, tx: float, ty: float, deg: float, scale: float) -> np.ndarray:
    """3x3 map, history pixel -> current pixel, about the image centre."""
    c = (size - 1) / 2
    a = cv2.getRotationMatrix2D((c, c), deg, scale)
    a[:, 2] += (tx, ty)
    return np.vstack([a, [0, 0, 1]])


def view_pair(size=320, M=None, seed=0):
    """(history, current) where the current view is the history's scene seen through M, plus a
    small square anomaly in the current."""
    hist = scene(size, seed)
    cur = cv2.warpPerspective(hist, M, (size, size), borderMode=cv2.BORDER_REFLECT101) if M is not None else hist.copy()
    cur[200:216, 100:116] = (250, 20, 20)
    return hist, cur


def grid_error(M_est: np.ndarray, M_true: np.ndarray, size: int) -> float:
    g = np.linspace(0, size, 7)
    pts = np.float64([[x, y] for x in g for y in g]).reshape(-1, 1, 2)
    a = cv2.perspectiveTransform(pts, M_est)
    b = cv2.perspectiveTransform(pts, M_true)
    return float(np.linalg.norm(a - b, axis=2).mean())


def test_a_known_viewpoint_change_is_undone_and_the_uncovered_part_is_unknown():
    M = similarity(320, 18, -12, 6, 1.08)
    M[2, :2] = (4e-5, -3e-5)  # a little perspective
    hist, cur = view_pair(320, M)
    a = align_pair(hist, cur, "auto")
    assert a.aligned and a.model == "homography", a.verdict()
    assert grid_error(a.matrix, M, 320) < 1.5
    assert a.valid is not None and 1.0 < a.uncovered_pct < 40.0
    assert a.uncovered_pct == 100.0 * (1.0 - a.valid.mean())  # the share of the view not covered, exactly
    assert a.history.shape == cur.shape
    assert np.array_equal(a.history[~a.valid], cur[~a.valid])  # no difference where nothing is known
    v = a.verdict()
    assert v.startswith("aligned: homography, ") and " inliers, " in v and " px" in v and "uncovered" in v
    meta = a.meta()
    assert meta["aligned"] and meta["align"] == "auto" and len(meta["align_matrix"]) == 3
    json.dumps(meta)
    # The warped history now agrees with the current far better than before (anomaly aside).
    inside = a.valid.copy()
    inside[195:221, 95:121] = False
    before = np.abs(hist.astype(int) - cur)[inside].mean()
    after = np.abs(a.history.astype(int) - cur)[inside].mean()
    assert after < 0.35 * before


@pytest.mark.parametrize("mode, model", [("homography", "homography"), ("affine", "affine"), ("ecc", "homography")])
def test_each_mode_uses_its_model(mode, model):
    M = similarity(320, -10, 14, -4, 0.95)
    hist, cur = view_pair(320, M, seed=1)
    a = align_pair(hist, cur, mode)
    assert a.aligned and a.model == model and a.mode == mode, a.verdict()
    assert grid_error(a.matrix, M, 320) < 1.5


def test_a_different_history_size_is_mapped_to_the_current_grid():
    M = similarity(320, 12, 8, 3, 1.0)
    hist, cur = view_pair(320, M, seed=2)
    small = cv2.resize(hist, (240, 240), interpolation=cv2.INTER_AREA)  # the history at another resolution
    a = align_pair(small, cur, "auto")
    assert a.aligned and a.history.shape == cur.shape
    assert grid_error(a.matrix @ np.diag([240 / 320, 240 / 320, 1]), M, 320) < 2.0


def test_registered_pairs_are_left_exactly_as_they_were():
    hist, cur = view_pair(320, None, seed=3)
    noisy = np.clip(cur.astype(int) + np.random.default_rng(0).normal(0, 4, cur.shape), 0, 255).astype(np.uint8)
    for mode in ("auto", "homography", "affine", "ecc"):
        a = align_pair(hist, noisy, mode)
        assert not a.aligned and a.valid is None and np.array_equal(a.history, hist), (mode, a.verdict())
        assert "already registered" in a.reason or "agree better" in a.reason


def test_untrustworthy_estimates_fall_back_with_a_reason():
    flat = np.full((200, 200, 3), 120, np.uint8)
    a = align_pair(flat, flat.copy(), "auto")
    assert not a.aligned and a.verdict() == "not aligned: too few matches (0)"
    other = align_pair(scene(256, 10), scene(256, 11), "auto")  # two unrelated scenes
    assert not other.aligned and other.reason and other.valid is None
    off = align_pair(scene(128, 1), scene(128, 2), "off")
    assert off.verdict() == "not aligned: alignment is off" and off.meta()["align"] == "off"
    assert set(MODES) == {"auto", "off", "homography", "affine", "ecc"}
    with pytest.raises(UserError, match="not one of"):
        check_mode("sideways")


@pytest.mark.parametrize("mode", ["auto", "ecc", "homography", "affine"])
def test_a_strip_is_left_unaligned_with_a_reason(mode):
    """A 3x2000 strip made OpenCV's feature pyramid fail (cv2.error), which ended a whole inspect or predict run."""
    strip = np.ascontiguousarray(scene(2000, 5)[:3])
    a = align_pair(strip, np.roll(strip, 4, axis=1), mode)
    assert not a.aligned and a.verdict() == "not aligned: an image is too narrow to align (2000x3)"
    assert a.history.shape == strip.shape and a.valid is None
    b = align_pair(scene(320, 6), np.ascontiguousarray(scene(2000, 7)[:, :3]), mode)  # only the current is a strip
    assert not b.aligned and b.reason == "an image is too narrow to align (3x2000)" and b.history.shape == (2000, 3, 3)


def test_an_implausible_map_is_refused():
    # A mirror image: every match agrees on a map that flips the image, which no viewpoint change does.
    hist = scene(320, 4)
    a = align_pair(hist, np.ascontiguousarray(hist[:, ::-1]), "auto")
    assert not a.aligned


def test_unknown_pixels_are_zero_and_left_out_of_the_metrics():
    prob = np.full((4, 4), 0.9, np.float32)
    valid = np.ones((4, 4), bool)
    valid[:, :2] = False
    assert mask_unknown(prob, valid)[:, :2].max() == 0 and mask_unknown(prob, valid)[:, 2:].min() == np.float32(0.9)
    assert mask_unknown(prob, None) is prob
    mask = np.zeros((4, 4), bool)
    mask[:, 2:] = True
    with_all, covered = PixelMetrics(), PixelMetrics()
    with_all.update(mask_unknown(prob, valid), mask)
    covered.update(mask_unknown(prob, valid), mask, valid)
    assert covered.counts() == {"tp": 8, "fp": 0, "tn": 0, "fn": 0}
    assert with_all.counts() == {"tp": 8, "fp": 0, "tn": 8, "fn": 0}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "anodfdnet-align-d0.safetensors"
    save_checkpoint(path, build_model(ModelConfig.from_preset("lite", 0)), {"eval_size": 128})
    return path


def test_predictor_aligns_and_says_so(ckpt):
    M = similarity(320, 20, 10, 5, 1.05)
    hist, cur = view_pair(320, M, seed=5)
    p = Predictor(ckpt, device="cpu")
    assert p.align == "auto"
    res = p.run(hist, cur)
    a = res.alignment
    assert a.aligned and res.prob.shape == (320, 320)
    assert res.prob[~a.valid].max() == 0.0 and res.prob[a.valid].min() > 0.0
    off = Predictor(ckpt, device="cpu", align="off")
    assert not off.run(hist, cur).alignment.aligned
    assert off.run(hist, cur, align="affine").alignment.model == "affine"  # a per-call override
    with pytest.raises(UserError):
        Predictor(ckpt, device="cpu", align="diagonal")


def test_predict_and_evaluate_record_the_alignment(ckpt, tmp_path):
    M = similarity(320, -16, 12, -5, 1.0)
    hist, cur = view_pair(320, M, seed=6)
    for i, (h, c) in enumerate([(hist, cur), view_pair(320, None, seed=7)]):
        d = tmp_path / "pairs" / f"p{i}"
        d.mkdir(parents=True)
        Image.fromarray(h).save(d / "hist.png")
        Image.fromarray(c).save(d / "cur.png")
        gt = np.zeros(c.shape[:2], np.uint8)
        gt[200:216, 100:116] = 255
        Image.fromarray(gt).save(d / "cur_gt.png")
    one = tmp_path / "one"
    one.mkdir()
    p0 = tmp_path / "pairs" / "p0"
    assert main(["predict", "--checkpoint", str(ckpt), "--history", str(p0 / "hist.png"), "--current", str(p0 / "cur.png"),
                 "--out", str(one / "m.png"), "--heatmap", str(one / "h.png"), "--device", "cpu"]) == 0
    meta = json.loads(Image.open(one / "m.png").text["anodfdnet.align"])
    assert meta["aligned"] and meta["uncovered_pct"] > 0
    uncovered = np.array(Image.open(one / "m_uncovered.png")) > 0
    assert uncovered.any() and not (np.array(Image.open(one / "m.png")) > 0)[uncovered].any()
    assert (np.array(Image.open(one / "h.png").convert("RGB"))[uncovered] == 128).all()  # grey in the heat map
    assert main(["predict", "--checkpoint", str(ckpt), "--data", f"pairs:{tmp_path / 'pairs'}", "--out-dir",
                 str(tmp_path / "many"), "--device", "cpu", "--workers", "0"]) == 0
    lines = [json.loads(x) for x in (tmp_path / "many" / "alignment.jsonl").read_text().splitlines()]
    assert [x["name"] for x in lines] == ["p0", "p1"] and lines[0]["aligned"] and not lines[1]["aligned"]
    assert (tmp_path / "many" / "p0_uncovered.png").exists() and not (tmp_path / "many" / "p1_uncovered.png").exists()
    for mode in ("off", "auto"):
        out = tmp_path / f"eval-{mode}.json"
        assert main(["evaluate", "--checkpoint", str(ckpt), "--data", f"pairs:{tmp_path / 'pairs'}", "--device", "cpu",
                     "--align", mode, "--json", str(out)]) == 0
        summary = json.loads(out.read_text())["alignment"]
        assert summary["align"] == mode and summary["pairs"] == 2
        assert summary["aligned"] == (1 if mode == "auto" else 0)
        assert (summary["uncovered_pct"] > 0) == (mode == "auto")
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--checkpoint", str(ckpt), "--data", f"pairs:{tmp_path / 'pairs'}", "--align", "nope"])
    assert exit_.value.code == 2


def test_a_1024_pair_aligns_in_well_under_a_second():
    """Not a timing target (benchmarks/ALIGN.md measures that): the work stays on a downscaled image."""
    M = similarity(1024, 40, -30, 5, 1.05)
    hist, cur = view_pair(1024, M, seed=8)
    a = align_pair(hist, cur, "auto")
    assert a.aligned and a.seconds < 1.0 and grid_error(a.matrix, M, 1024) < 4.0
    assert math.isfinite(a.reprojection_px)


def test_aligned_training_source_warps_the_history_and_clears_the_mask_where_nothing_is_known(tmp_path):
    from anodfdnet.data import parse_spec
    from anodfdnet.data.aligned import AlignedSource, aligned

    M = similarity(320, 20, -14, 5, 1.05)
    hist, cur = view_pair(320, M, seed=9)
    d = tmp_path / "p" / "a"
    d.mkdir(parents=True)
    Image.fromarray(hist).save(d / "hist.png")
    Image.fromarray(cur).save(d / "cur.png")
    Image.fromarray(np.full(cur.shape[:2], 255, np.uint8)).save(d / "cur_gt.png")  # everything "anomalous"
    plain = parse_spec(f"pairs:{tmp_path / 'p'}")
    assert aligned(plain, "off") is plain
    src = aligned(plain, "auto")
    assert isinstance(src, AlignedSource) and src.spec.endswith("#align=auto") and src.key(0) == plain.key(0)
    pair = src[0]
    a = align_pair(hist, cur, "auto")
    assert np.array_equal(pair.history, a.history) and np.array_equal(pair.mask, a.valid)


def test_train_with_align_records_it_in_the_checkpoint(tiny_pairs, tmp_path):
    from anodfdnet.checkpoint import read_info
    from anodfdnet.train import TrainConfig, train

    spec = f"pairs:{tiny_pairs}"
    best = train(TrainConfig(data=[spec], val=[spec], out=str(tmp_path / "run"), size=64, epochs=1, steps_per_epoch=2,
                             batch=2, workers=0, progress=False, depth=0, preset="lite", align="auto", cache=False,
                             device="cpu", threads=1))
    info = read_info(best)
    assert info.align == "auto" and info.meta["train"]["align"] == "auto"
    assert read_info(best).meta.get("align") == "auto"
    from anodfdnet.cli import build_parser

    args = build_parser().parse_args(["train", "--data", spec, "--out", str(tmp_path / "x"), "--align", "ecc"])
    assert args.align == "ecc" and build_parser().parse_args(["train", "--data", spec, "--out", "x"]).align == "off"
