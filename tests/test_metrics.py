"""PixelMetrics against exact computations written out here, plus the ROC figure and the table rows."""
import math

import cv2
import numpy as np
import pytest
import torch

from anodfdnet.metrics import KEYS, PixelMetrics, binarize, format_header, format_row, plot_roc


def exact(prob: np.ndarray, mask: np.ndarray, thr: float = 0.5) -> dict:
    """The paper's metrics computed directly from all pixels (no histograms)."""
    p, m = prob.ravel().astype(np.float64), mask.ravel()
    pred = p >= thr
    tp = int(np.sum(pred & m)); fp = int(np.sum(pred & ~m)); tn = int(np.sum(~pred & ~m)); fn = int(np.sum(~pred & m))
    div = lambda a, b: a / b if b else 0.0  # noqa: E731
    out = dict(tp=tp, fp=fp, tn=tn, fn=fn, precision=div(tp, tp + fp), recall=div(tp, tp + fn),
               oa=div(tp + tn, tp + fp + tn + fn), f1=div(2 * tp, 2 * tp + fp + fn), iou=div(tp, tp + fp + fn))
    pos, neg = p[m], p[~m]
    # AUC = P(score_pos > score_neg) + 0.5 P(tie): Mann-Whitney U via ranks with ties averaged.
    allv = np.concatenate([pos, neg])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(len(allv)); ranks[order] = np.arange(1, len(allv) + 1)
    uniq, inv, cnt = np.unique(allv, return_inverse=True, return_counts=True)
    ranks = (np.bincount(inv, weights=ranks) / cnt)[inv]
    out["auc"] = (ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))
    # EER: brute force over every distinct threshold, then interpolate at the FPR = FNR crossing.
    ts = np.concatenate([[np.inf], uniq[::-1]])
    fpr = np.array([(neg >= t).mean() for t in ts]); fnr = np.array([(pos < t).mean() for t in ts])
    d = fpr - fnr
    k = int(np.argmax(d >= 0))
    a = -d[k - 1] / (d[k] - d[k - 1])
    out["eer"] = fpr[k - 1] + a * (fpr[k] - fpr[k - 1])
    return out


def random_pair(rng, h=60, w=80):
    mask = np.zeros((h, w), bool)
    mask[10:35, 20:50] = True
    mask ^= rng.random((h, w)) < 0.05
    prob = np.clip(np.where(mask, rng.normal(0.65, 0.2, (h, w)), rng.normal(0.35, 0.2, (h, w))), 0, 1)
    return prob.astype(np.float32), mask


def test_binarize_is_greater_or_equal():
    p = np.array([0.49, 0.5, 0.51], np.float32)
    assert binarize(p, 0.5).tolist() == [False, True, True]
    assert binarize(torch.from_numpy(p), 0.5).tolist() == [False, True, True]


def test_against_exact_computation():
    rng = np.random.default_rng(0)
    prob, mask = random_pair(rng)
    pm = PixelMetrics()
    pm.update(prob, mask)
    got, ref = pm.compute(), exact(prob, mask)
    assert list(got) == list(KEYS) and got["pairs"] == 1
    assert pm.counts() == {k: ref[k] for k in ("tp", "fp", "tn", "fn")}
    for k in ("precision", "recall", "oa", "f1", "iou"):
        assert got[k] == pytest.approx(ref[k], abs=1e-12)
    assert got["auc"] == pytest.approx(ref["auc"], abs=1e-3)
    assert got["eer"] == pytest.approx(ref["eer"], abs=1e-3)
    assert 0.5 < got["auc"] < 1 and 0 < got["eer"] < 0.5


def test_accumulation_equals_one_big_image_and_accepts_torch():
    rng = np.random.default_rng(1)
    pairs = [random_pair(rng) for _ in range(3)]
    acc = PixelMetrics()
    for i, (p, m) in enumerate(pairs):
        acc.update(torch.from_numpy(p) if i % 2 else p, torch.from_numpy(m) if i % 2 else m)
    big = PixelMetrics()
    big.update(np.concatenate([p for p, _ in pairs]), np.concatenate([m for _, m in pairs]))
    a, b = acc.compute(), big.compute()
    assert a["pairs"] == 3 and b["pairs"] == 1
    assert {k: a[k] for k in KEYS[1:]} == {k: b[k] for k in KEYS[1:]}
    ref = exact(np.concatenate([p for p, _ in pairs]), np.concatenate([m for _, m in pairs]))
    assert a["f1"] == pytest.approx(ref["f1"], abs=1e-12)
    assert a["auc"] == pytest.approx(ref["auc"], abs=1e-3)


def test_prob_is_resized_to_the_mask_resolution():
    mask = np.zeros((64, 96), bool)
    mask[16:48, 24:72] = True
    small = cv2.resize(mask.astype(np.float32), (48, 32), interpolation=cv2.INTER_AREA)  # half size
    pm = PixelMetrics()
    pm.update(small, mask)
    c = pm.counts()
    assert sum(c.values()) == mask.size  # counted at the mask's resolution
    expected = cv2.resize(small, (96, 64), interpolation=cv2.INTER_LINEAR) >= 0.5
    assert c["tp"] == int(np.sum(expected & mask)) and c["fp"] == int(np.sum(expected & ~mask))
    assert pm.compute()["iou"] > 0.9
    pm2 = PixelMetrics()
    pm2.update(torch.from_numpy(small)[None, None], mask)  # 1 x 1 x h x w is accepted
    assert pm2.counts() == c


def test_perfect_and_degenerate_cases():
    mask = np.zeros((16, 16), bool)
    mask[4:8, 4:8] = True
    pm = PixelMetrics()
    pm.update(mask.astype(np.float32), mask)
    m = pm.compute()
    assert m["f1"] == m["iou"] == m["oa"] == m["auc"] == 1.0 and m["eer"] == 0.0

    pm = PixelMetrics()  # no positives in the ground truth, nothing predicted: 0/0 ratios are 0.0
    pm.update(np.zeros((16, 16), np.float32), np.zeros((16, 16), bool))
    m = pm.compute()
    assert m["precision"] == m["recall"] == m["f1"] == m["iou"] == 0.0 and m["oa"] == 1.0
    assert math.isnan(m["auc"]) and math.isnan(m["eer"])

    pm = PixelMetrics()  # all positive
    pm.update(np.full((8, 8), 0.7, np.float32), np.ones((8, 8), bool))
    m = pm.compute()
    assert m["precision"] == m["recall"] == 1.0 and math.isnan(m["auc"])

    empty = PixelMetrics().compute()
    assert empty["pairs"] == 0 and empty["f1"] == 0.0 and math.isnan(empty["auc"])


def test_rejects_bad_inputs():
    pm = PixelMetrics()
    with pytest.raises(ValueError):
        pm.update(np.full((4, 4), 3.0, np.float32), np.zeros((4, 4), bool))  # logits, not probabilities
    with pytest.raises(ValueError):
        pm.update(np.zeros((2, 4, 4), np.float32), np.zeros((4, 4), bool))


def test_state_round_trip_and_merge():
    rng = np.random.default_rng(2)
    (p1, m1), (p2, m2) = random_pair(rng), random_pair(rng)
    a, b, both = PixelMetrics(), PixelMetrics(), PixelMetrics()
    a.update(p1, m1); b.update(p2, m2); both.update(p1, m1); both.update(p2, m2)
    s = a.state()
    assert s.dtype == torch.int64 and s.ndim == 1
    summed = PixelMetrics()
    summed.load_state(a.state() + b.state())  # what dist.all_reduce(SUM) does across ranks
    assert summed.compute() == both.compute()
    a.merge(b)
    assert a.compute() == both.compute()
    with pytest.raises(ValueError):
        PixelMetrics(bins=100).load_state(s)
    fpr, tpr, thr = both.roc()
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and np.all(np.diff(fpr) >= 0) and np.all(np.diff(thr) < 0)


def test_plot_roc_writes_png(tmp_path):
    rng = np.random.default_rng(3)
    pm = PixelMetrics()
    pm.update(*random_pair(rng))
    fpr, tpr, _ = pm.roc()
    out = plot_roc(fpr, tpr, tmp_path / "sub" / "roc.png", title="test set")
    img = cv2.imread(str(out))
    assert img is not None and img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
    assert (img < 128).any() and (img > 200).any()


def test_format_row():
    m = dict(pairs=12, precision=0.8, recall=0.75, oa=0.99, f1=0.7624, iou=0.6, auc=0.95, eer=float("nan"))
    header, row = format_header(), format_row("anodfdnet", m)
    assert len(header) == len(row)
    assert "76.24" in row and " 12 " in row and "n/a" in row


def test_roc_title_fits_the_figure(tmp_path):
    """A long title (a checkpoint on a SPEC with a path) is drawn whole inside the figure, not cut at its edges."""
    from PIL import Image as PILImage

    from anodfdnet.metrics import plot_roc

    f = np.linspace(0, 1, 50)
    for title in ("effnet-d2 on deeppcb:/work/shared/data/deeppcb/trainval.txt@val", "effnet-d2 on " + "x" * 150, "d2"):
        a = np.array(PILImage.open(plot_roc(f, np.sqrt(f), tmp_path / "roc.png", title=title)).convert("L"))
        band = a[:40]  # the title's first line
        assert (band < 128).sum() > 50, "no title drawn"
        assert (a[:, :3] < 128).sum() == 0 and (a[:, -3:] < 128).sum() == 0, f"the title {title[:30]!r}... touches the figure's edge"
