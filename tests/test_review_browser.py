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
expect.set_options(timeout=60_000)  # a loaded machine answers slowly; every wait polls for its condition
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


def check_masks_gallery(page) -> None:
    """Each mask of the gallery is shown whole (nothing cropped or clipped, its bottom rows on screen as sent)
    with its caption in full beside it, not over it."""
    items = page.locator("#review-masks img")
    expect(items).to_have_count(4)
    expected = ["ann: foreign body, IoU", "bob: foreign body, IoU", "cat: foreign body, IoU", "consensus: foreign body"]
    for i in range(4):
        img = items.nth(i)
        img.scroll_into_view_if_needed()  # the gallery's images load lazily
        page.wait_for_function("(i) => { const e = document.querySelectorAll('#review-masks img')[i]; "
                               "return e && e.complete && e.naturalWidth > 0; }", arg=i)
        wrong = "the gallery's layout never settled"
        for _ in range(40):  # until the layout has settled: the same geometry before and after the screenshot
            geo = img.evaluate(GALLERY_GEOMETRY)
            shot = np.array(Image.open(io.BytesIO(page.screenshot())).convert("RGB"), np.int16)
            if geo == img.evaluate(GALLERY_GEOMETRY) and (wrong := _mask_on_screen(geo, shot, i)) is None:
                break
            page.wait_for_timeout(500)
        else:
            raise AssertionError(wrong)
        lb = page.locator("#review-masks [data-testid=block-label]").bounding_box()
        label = {"x": lb["x"], "y": lb["y"], "w": lb["width"], "h": lb["height"]}
        assert not _overlap(label, geo["pic"]), f"the gallery's label ({label}) covers mask {i} ({geo['pic']})"
        cap = geo["cap"]
        assert cap and cap["visible"] and cap["text"].startswith(expected[i]), (i, cap)
        assert cap["sw"] <= cap["cw"] + 1, f"caption {cap['text']!r} is cut"
        assert not _overlap(cap, geo["pic"]), f"caption {cap['text']!r} ({cap}) covers mask {i} ({geo['pic']})"


GALLERY_GEOMETRY = """(img) => {
    const box = e => { const r = e.getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height}; };
    const b = box(img), nw = img.naturalWidth, nh = img.naturalHeight, fit = getComputedStyle(img).objectFit;
    const s = fit === 'cover' ? Math.max(b.w / nw, b.h / nh) : fit === 'fill' ? null : Math.min(b.w / nw, b.h / nh, fit === 'scale-down' ? 1 : 1e9);
    const pic = s === null ? b : {x: b.x + (b.w - nw * s) / 2, y: b.y + (b.h - nh * s) / 2, w: nw * s, h: nh * s};
    const item = img.closest('.gallery-item') || img.parentElement;
    const cap = item.querySelector('.caption-label');
    const clips = [];  // every box between the picture and the gallery that clips its content
    for (let e = img.parentElement; e; e = e.parentElement) {
        const cs = getComputedStyle(e);
        if (cs.overflowX !== 'visible' || cs.overflowY !== 'visible')
            clips.push({...box(e), sw: e.scrollWidth, sh: e.scrollHeight, cw: e.clientWidth, ch: e.clientHeight});
        if (e.id === 'review-masks') break;
    }
    const cs = cap && getComputedStyle(cap);
    return {img: b, pic, fit, natural: [nw, nh], clips, src: img.src,
            cap: cap && {...box(cap), text: cap.innerText, sw: cap.scrollWidth, cw: cap.clientWidth,
                         visible: cs.visibility !== 'hidden' && cs.display !== 'none' && Number(cs.opacity) === 1}};
}"""


def _overlap(a, b) -> bool:
    return not (a["y"] >= b["y"] + b["h"] - 1 or a["y"] + a["h"] <= b["y"] + 1
                or a["x"] >= b["x"] + b["w"] - 1 or a["x"] + a["w"] <= b["x"] + 1)


def _mask_on_screen(geo, shot, i) -> str | None:
    """Why mask i is not shown whole as sent (None: it is): cropped, clipped by a box, scrolled, or other pixels."""
    pic, (nw, nh) = geo["pic"], geo["natural"]
    if pic["w"] < 90:
        return f"mask {i} is drawn only {pic['w']:.0f} px wide"
    img = geo["img"]
    if not (pic["x"] >= img["x"] - 1 and pic["y"] >= img["y"] - 1 and pic["x"] + pic["w"] <= img["x"] + img["w"] + 1
            and pic["y"] + pic["h"] <= img["y"] + img["h"] + 1):
        return f"mask {i} is cropped ({geo['fit']}): the {nw}x{nh} picture is drawn {pic} in a box {img}"
    for c in geo["clips"]:
        if not (pic["x"] >= c["x"] - 1 and pic["y"] >= c["y"] - 1 and pic["x"] + pic["w"] <= c["x"] + c["w"] + 1
                and pic["y"] + pic["h"] <= c["y"] + c["h"] + 1):
            return f"mask {i} ({pic}) is clipped by a box at {c}"
        if c["sh"] > c["ch"] + 1 or c["sw"] > c["cw"] + 1:
            return f"mask {i}: the gallery scrolls ({c})"
    x0, y0 = round(pic["x"]), round(pic["y"])
    x1, y1 = round(pic["x"] + pic["w"]), round(pic["y"] + pic["h"])
    if x0 < 0 or y0 < 0 or y1 > shot.shape[0] or x1 > shot.shape[1]:
        return f"mask {i} ({pic}) is not inside the viewport after scrolling to it"
    # The pixels, at the image's own resolution: each of its pixels, bottom rows included, as sent.
    sent = np.array(Image.open(io.BytesIO(httpx.get(geo["src"], timeout=30).content)).convert("RGB"), np.int16)
    seen = np.array(Image.fromarray(shot[y0:y1, x0:x1].astype(np.uint8)).resize((nw, nh), Image.BOX), np.int16)
    bad = np.abs(seen - sent).max(axis=2) > 48
    rows = max(2, nh // 10)
    if bad.mean() > 0.02 or bad[-rows:].mean() > 0.02:
        return (f"mask {i} on screen is not the image sent: {100 * bad.mean():.1f} % of its pixels differ, "
                f"{100 * bad[-rows:].mean():.1f} % of its bottom rows")
    return None


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
    check_masks_gallery(page)
    page.locator("#review-editor").scroll_into_view_if_needed()
    on_top = page.evaluate("""() => {  // the correction editor's canvas takes the pointer (no overlay left on it)
        const c = document.querySelector('#review-editor canvas');
        if (!c) return 'no canvas';
        const r = c.getBoundingClientRect();
        const el = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
        return el === c ? 'canvas' : (el ? el.tagName + '.' + el.className : 'nothing');
    }""")
    assert on_top == "canvas", f"the correction editor's canvas is covered by {on_top}"
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
    check_masks_gallery(page)
    page.wait_for_timeout(300)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 391, f"the page is {width} px wide at a 390 px viewport"
    ids = "#review-name, #review-next, #review-history, #review-current, #review-masks, #review-table, #review-editor, " \
          "#review-accept, #review-reject, #review-correct"
    wide = page.evaluate("""(sel) => [...document.querySelectorAll(sel)]
        .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && (r.left < -1 || r.right > 391); })
        .map(e => e.id)""", ids)
    assert wide == [], wide
    split = page.evaluate("""() => {  // words of the answers' table drawn on more than one line
        const out = [];
        for (const cell of document.querySelectorAll('#review-table th, #review-table td')) {
            const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
            for (let n = walker.nextNode(); n; n = walker.nextNode()) {
                for (const m of n.data.matchAll(/\S+/g)) {
                    const r = document.createRange();
                    r.setStart(n, m.index);
                    r.setEnd(n, m.index + m[0].length);
                    const tops = new Set([...r.getClientRects()].filter(q => q.width > 0).map(q => Math.round(q.top)));
                    if (tops.size > 1) out.push(m[0]);
                }
            }
        }
        return out;
    }""")
    assert split == [], f"the answers' table breaks words: {split}"
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
