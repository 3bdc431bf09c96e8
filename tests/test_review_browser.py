"""The Review tab in a real browser (Debian chromium driven by Playwright), at desktop width (1280 px) and at
phone width (390 px).

Two pairs wait for review, each with three annotators' masks (k = 3); one annotator also answered a gold
pair. A reviewer types their name, loads a pair and sees what the page must show: the history and the
current image exactly as stored (pixels compared), each annotator's mask and the consensus, the answers
table with names, IoUs and the gold score, and a verdict that lands in the label dataset. A typed name not
on the list gets a visible refusal. At 390 px nothing is wider than the screen and the images are stacked.
Screenshots go to tests/artifacts/ for a person to look at.
"""
from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from annotate.store import LabelStore
from anodfdnet.data.label_policies import mask_iou

from conftest import needs_chromium, served_app

pytestmark = [needs_chromium, pytest.mark.filterwarnings("ignore:::gradio.queueing")]
expect = pytest.importorskip("playwright.sync_api").expect
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SHAPE = (96, 128)


def box(y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros(SHAPE, bool)
    m[y0:y1, x0:x1] = True
    return m


def make_pair(seed: int):
    rng = np.random.default_rng(seed)
    base = rng.integers(30, 200, (SHAPE[0] // 8, SHAPE[1] // 8, 3), dtype=np.uint8)
    hist = np.array(Image.fromarray(base).resize(SHAPE[::-1], Image.NEAREST))
    cur = hist.copy()
    cur[20:50, 30:70] = (240, 240, 40)
    return hist, cur


@pytest.fixture(scope="module")
def review_app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("review-browser")
    store = LabelStore(tmp / "labels")
    pairs = {}
    for seed, masks in ((1, (box(20, 50, 30, 70), box(22, 50, 34, 70), box(20, 46, 30, 66))),   # agree well
                        (2, (box(20, 50, 30, 70), box(0, 30, 0, 40), box(60, 90, 80, 120)))):  # agree badly
        hist, cur = make_pair(seed)
        for name, m in zip(("ann", "bob", "cat"), masks):
            row = store.save(hist, cur, m, name, "foreign body")
        pairs[row.content_hash] = (hist, cur, masks)
    ghist, gcur = make_pair(9)  # a gold answer of ann's, as the queue stores one
    store.save(ghist, gcur, box(20, 50, 30, 70), "ann", "foreign body", kind="gold", gold_iou=0.75)
    mp = pytest.MonkeyPatch()
    for name in ("SYSTEM", "SPACE_ID", "OAUTH_CLIENT_ID", "ANODFDNET_REQUIRE_LOGIN", "ANODFDNET_GOLD"):
        mp.delenv(name, raising=False)
    (tmp / "checkpoints").mkdir()
    env = {"ANODFDNET_LABELS_PER_PAIR": "3", "ANODFDNET_REVIEWERS": "rita"}
    with served_app(tmp, tmp / "checkpoints", env) as url:
        yield url, tmp / "labels", pairs
    mp.undo()


def open_review(browser, url: str, width: int):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(60_000)
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None)
    page.goto(url, wait_until="load")
    page.get_by_role("tab", name="Review").click()
    expect(page.locator("#review-next")).to_be_visible()
    return page, outside


def shown_pixels(page, elem: str) -> np.ndarray:
    """The image an <img> of the page shows, fetched from its src (the app sends PNG: lossless)."""
    src = page.locator(f"#{elem} img").first.get_attribute("src")
    return np.array(Image.open(io.BytesIO(httpx.get(src, timeout=30).content)).convert("RGB"))


def check_pair_on_screen(page, pairs) -> str:
    """What the page shows for the pair under review; returns its content hash."""
    expect(page.locator("#review-status")).to_contain_text("Reviewing as rita")
    expect(page.locator("#review-history img")).to_be_visible()
    expect(page.locator("#review-current img")).to_be_visible()
    current = shown_pixels(page, "review-current")
    found = [h for h, (_, cur, _) in pairs.items() if cur.shape == current.shape and np.array_equal(cur, current)]
    assert len(found) == 1, "the current image shown is not a stored pair's, pixel for pixel"
    h = found[0]
    hist, _, masks = pairs[h]
    assert np.array_equal(shown_pixels(page, "review-history"), hist)
    expect(page.locator("#review-masks img")).to_have_count(4)  # three annotators and the consensus
    table = page.locator("#review-table")
    for name in ("ann", "bob", "cat"):
        expect(table).to_contain_text(name)
    expect(table).to_contain_text("gold IoU")
    expect(table).to_contain_text("75.0 % (1)")  # ann's gold score, for the reviewer
    pairwise = np.mean([mask_iou(a, b) for i, a in enumerate(masks) for b in masks[i + 1:]])
    expect(table).to_contain_text(f"{100 * pairwise:.1f} %")
    return h


def test_review_tab_at_desktop_width(chromium, review_app):
    url, labels, pairs = review_app
    page, outside = open_review(chromium, url, 1280)
    page.locator("#review-name input, #review-name textarea").first.fill("mallory")
    page.locator("#review-next").click()
    expect(page.locator("[data-testid=toast-body]", has_text="mallory is not a reviewer")).to_be_visible()
    page.locator("#review-name input, #review-name textarea").first.fill("rita")
    page.locator("#review-next").click()
    h = check_pair_on_screen(page, pairs)
    first_masks = pairs[h][2]
    assert mask_iou(first_masks[0], first_masks[1]) < 0.5  # lowest agreement first
    page.screenshot(path=str(ARTIFACTS / "review-1-desktop.png"), full_page=True)
    page.locator("#review-accept").click()
    expect(page.locator("#review-status")).to_contain_text("Accepted")
    expect(page.locator("#review-status")).to_contain_text("Next pair loaded")
    reviews = [r for r in LabelStore(labels).snapshot().rows if r.kind == "review"]
    assert [(r.annotator, r.verdict, r.content_hash) for r in reviews] == [("rita", "accept", h)]
    assert not outside, outside
    page.close()


def test_review_tab_at_phone_width(chromium, review_app):
    url, labels, pairs = review_app
    page, outside = open_review(chromium, url, 390)
    page.locator("#review-name input, #review-name textarea").first.fill("rita")
    page.locator("#review-next").click()
    h = check_pair_on_screen(page, pairs)
    page.wait_for_timeout(300)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 391, f"the page is {width} px wide at a 390 px viewport"
    ids = "#review-name, #review-next, #review-history, #review-current, #review-masks, #review-table, #review-editor, " \
          "#review-accept, #review-reject, #review-correct"
    wide = page.evaluate("""(sel) => [...document.querySelectorAll(sel)]
        .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && (r.left < -1 || r.right > 391); })
        .map(e => e.id)""", ids)
    assert wide == [], wide
    hist_box, cur_box = page.locator("#review-history").bounding_box(), page.locator("#review-current").bounding_box()
    assert cur_box["y"] >= hist_box["y"] + hist_box["height"] - 1, "history and current are not stacked"
    page.screenshot(path=str(ARTIFACTS / "review-2-phone.png"), full_page=True)
    page.locator("#review-reject").scroll_into_view_if_needed()
    page.locator("#review-reject").click()
    expect(page.locator("#review-status")).to_contain_text("Rejected")
    rows = [r for r in LabelStore(labels).snapshot().rows if r.kind == "review" and r.content_hash == h]
    assert [(r.annotator, r.verdict) for r in rows][-1] == ("rita", "reject")
    assert not outside, outside
    page.close()
