"""The Detect tab shows a person the pair (issue 12), in a real browser (Debian chromium, Playwright):
the aligned history against the current in a comparison slider with the alignment's verdict and the
uncovered area; the heat map over the current image with an opacity slider, a legend in its colours and
numbered region boxes; a new model or alignment re-runs at once; the model menu names depth and size and
the line under it the checkpoint's recorded validation F1 per set; at phone width (390 px) nothing overflows or
overlaps, the menus' text is not clipped and no text says left/right; the comparison slider's halves line up
with the images sent (1280 and 390 px).
Screenshots go to tests/artifacts/detect-*.png."""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)"),
    pytest.mark.filterwarnings("ignore:::gradio.queueing"),
]
pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect, sync_playwright  # noqa: E402

expect.set_options(timeout=60_000)  # a loaded machine answers slowly; every wait polls for its condition

from anodfdnet.data import synth  # noqa: E402
from anodfdnet.visualize import heatmap_rgb  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def moved_pair(tmp_path_factory) -> tuple[str, str]:
    """A generated pair whose current view is moved (shift, rotation, scale) against the history."""
    p = synth.generate_pair(3, size=320, hardness="easy", anomaly="foreign_body")
    m = cv2.getRotationMatrix2D((160, 160), 6, 1.06)
    m[:, 2] += (18, -12)
    cur = cv2.warpAffine(p.current, m, (320, 320), borderMode=cv2.BORDER_REFLECT101)
    d = tmp_path_factory.mktemp("moved")
    Image.fromarray(p.history).save(d / "history.png")
    Image.fromarray(cur).save(d / "current.png")
    return str(d / "history.png"), str(d / "current.png")


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_page(browser, url: str, width: int, height: int):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(60_000)
    page.goto(url, wait_until="load")
    return page


def run_pair(page, pair) -> None:
    page.locator("#history-input input[type=file]").set_input_files(pair[0])
    page.locator("#current-input input[type=file]").set_input_files(pair[1])
    expect(page.locator("#current-input img")).to_be_visible()
    page.locator("#anodfdnet-run").click()
    expect(page.locator("#alignment")).to_contain_text("Alignment:")


def choose(page, elem: str, text: str) -> None:
    """Pick the option holding ``text`` as a person does (open the menu, click the option) and check that the menu
    shows it; a pick the menu did not take is tried again, at most twice, as a person would click again. What the page
    does after is asserted by the caller. (Twice in CI the alignment verdict stayed unchanged for 300 s after a pick
    the menu had taken: the views after the overlapping re-runs were dropped, fixed in demo/tab.py's ``after``.)"""
    box = page.locator(f"#{elem} input")
    for attempt in range(3):
        box.click()
        page.locator("[role=option]", has_text=text).first.click()
        try:
            expect(box).to_have_value(re.compile(re.escape(text)), timeout=5_000)
            return
        except AssertionError:
            if attempt == 2:
                raise


def drag_to_the_end(page, elem: str) -> None:
    rng = page.locator(f"#{elem} input[type=range]")
    rng.scroll_into_view_if_needed()
    box = rng.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.8, y, steps=4)
    page.mouse.move(box["x"] + box["width"] + 20, y, steps=4)
    page.mouse.up()


def test_the_pair_the_heat_map_and_re_runs(browser, app_server, moved_pair):
    page = open_page(browser, app_server, 1400, 1000)
    # The model menu: depth and validation F1 per named set, never a server path.
    page.locator("#model-choice input").click()
    options = [o.inner_text() for o in page.locator("[role=option]").all()]
    assert options and all("Transformer depth" in o for o in options)
    assert all("/" not in o for o in options), options
    page.keyboard.press("Escape")
    figures_line = page.locator("#model-figures")
    expect(figures_line).to_contain_text("validation F1 recorded in the checkpoint at")
    expect(figures_line).to_contain_text("pairs")
    run_pair(page, moved_pair)
    verdict = page.locator("#alignment")
    expect(verdict).to_contain_text(re.compile(r"aligned: homography, \d+ inliers, \d+\.\d px"))
    expect(verdict).to_contain_text(re.compile(r"\d+\.\d % of the current view uncovered"))
    expect(verdict).to_contain_text("not covered by the history is grey")
    # The comparison slider holds the aligned history and the current.
    expect(page.locator("#compare img")).to_have_count(2)
    # The heat map over the current image; the opacity slider changes it; the legend uses its colours.
    heat = page.locator("#heatmap-output img")
    expect(heat).to_be_visible()
    before = heat.get_attribute("src")
    drag_to_the_end(page, "heat-opacity")
    expect(page.locator("#heat-opacity input[type=number]")).to_have_value("1")
    expect(heat).not_to_have_attribute("src", before)
    bar = page.locator("#heat-legend [data-part=bar]").get_attribute("style")
    ends = heatmap_rgb(np.float32([[0.0, 1.0]]))[0]
    for rgb in ends:
        assert f"rgb({rgb[0]}, {rgb[1]}, {rgb[2]})" in bar or "#%02x%02x%02x" % tuple(rgb) in bar, bar
    expect(page.locator("#heat-legend")).to_contain_text("not covered by the history")
    figures = page.locator("#summary")
    expect(figures).to_contain_text("Regions:")
    page.screenshot(path=str(ARTIFACTS / "detect-1-aligned.png"), full_page=True)
    # A new alignment re-runs at once: off.
    choose(page, "align-choice", "off: use the photos as they are")
    expect(verdict).to_contain_text("not aligned: alignment is off")
    page.screenshot(path=str(ARTIFACTS / "detect-2-align-off.png"), full_page=True)
    # A new model re-runs at once, without Run.
    choose(page, "model-choice", "Transformer depth 0")
    expect(figures).to_contain_text("Transformer depth 0")
    expect(page.locator("#model-figures")).to_contain_text(re.compile(r"-d0\b"))  # the line follows the menu
    expect(verdict).to_contain_text("not aligned: alignment is off")  # the alignment choice is kept
    # Two models chosen in quick succession, both runs in flight: the page ends on the second choice, whichever
    # run finishes last (demo.latest).
    # (Depths 8 and 2: test_app_api counts the loads of depth 1, which no other test may load.)
    choose(page, "model-choice", "Transformer depth 8")
    choose(page, "model-choice", "Transformer depth 2")
    expect(figures).to_contain_text("Transformer depth 2")
    page.wait_for_timeout(3000)  # the first choice's run has ended too
    expect(figures).to_contain_text("Transformer depth 2")
    expect(page.locator("#model-choice input")).to_have_value(re.compile("Transformer depth 2"))
    page.close()


def test_the_views_after_a_prediction_are_never_dropped(app_server):
    """The comparison, verdict, heat view and live view follow each prediction with trigger mode always_last. With
    Gradio's default ("once") a prediction ending while the views of the one before were still drawing lost its
    views: an alignment pick sends the menu's input event twice, the two re-runs overlap, and the page kept the old
    verdict beside the new figures (the test above, 1 run in 6, traced)."""
    import httpx

    deps = httpx.get(f"{app_server}config").json()["dependencies"]
    views = [d for d in deps if d.get("api_name") in ("page_view", "page_live")]
    assert {d["api_name"] for d in views} == {"page_view", "page_live"}
    assert all(d["trigger_mode"] == "always_last" for d in views), [(d["api_name"], d["trigger_mode"]) for d in views]


def test_phone_width_nothing_overlaps_and_no_left_right(browser, app_server, moved_pair):
    page = open_page(browser, app_server, 390, 844)
    # Before Run, "Results appear here after Run" once; the model menu's shown text is not clipped.
    expect(page.locator("#model-choice input")).to_have_value(re.compile("Transformer depth"))
    expect(page.locator("#live-view")).to_be_visible()
    expect(page.get_by_text("Results appear here after")).to_have_count(1)
    for elem in ("model-choice", "align-choice"):
        sw, cw = page.locator(f"#{elem} input").evaluate("e => [e.scrollWidth, e.clientWidth]")
        assert sw <= cw, f"{elem}: the shown text is clipped ({sw} px of text in {cw} px)"
    intro = page.locator("#component-0, .prose").first.inner_text() + page.get_by_text("known-good").first.inner_text()
    assert not re.search(r"\b(left|right)\b", intro, re.IGNORECASE), intro
    run_pair(page, moved_pair)
    expect(page.locator("#alignment")).to_contain_text("aligned: homography")
    page.wait_for_timeout(500)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 391, f"the page is {width} px wide at a 390 px viewport"
    # The two inputs, the heat view and the live view are stacked, not squeezed side by side.
    h, c = page.locator("#history-input").bounding_box(), page.locator("#current-input").bounding_box()
    assert c["y"] >= h["y"] + h["height"] - 1
    panes = page.locator("#live-view canvas").all()
    assert panes[1].bounding_box()["y"] >= panes[0].bounding_box()["y"] + panes[0].bounding_box()["height"] - 1
    # The dropdown's text stays clear of its caret.
    for elem in ("model-choice", "align-choice"):
        text = page.locator(f"#{elem} input").bounding_box()
        caret = page.locator(f"#{elem} .icon-wrap, #{elem} svg").last.bounding_box()
        assert text["x"] + text["width"] <= caret["x"] + 1, (elem, text, caret)
    # Image labels stay clear of their buttons.
    for elem in ("heatmap-output", "compare"):
        label = page.locator(f"#{elem} [data-testid=block-label]").bounding_box()
        buttons = page.locator(f"#{elem} .icon-button-wrapper").first.bounding_box()
        assert label["x"] + label["width"] <= buttons["x"] + 1, (elem, label, buttons)
    # Every element of the page lies inside the viewport's width.
    ids = ("#history-input, #current-input, #model-choice, #align-choice, #anodfdnet-run, #threshold, #heatmap-output, "
           "#live-view, #compare, #alignment, #summary, #heat-legend")
    wide = page.evaluate("""(sel) => [...document.querySelectorAll(sel)]
        .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && (r.left < -1 || r.right > 391); })
        .map(e => e.id)""", ids)
    assert wide == [], wide
    page.screenshot(path=str(ARTIFACTS / "detect-3-phone.png"), full_page=True)
    page.close()


# --- The comparison slider in register (issue 23): both images in one box, the halves row for row ---

STRIPES = [(18, 30), (52, 60), (75, 115), (150, 158), (190, 230), (262, 270), (290, 312)]  # rows of a 320-row pair
HIST_RGB = ((40, 40, 40), (235, 235, 235))  # (background, stripe)
CUR_RGB = ((30, 30, 110), (240, 200, 30))


@pytest.fixture(scope="module")
def striped_pair(tmp_path_factory) -> tuple[str, str]:
    """The same horizontal stripes (irregular, so a shift shows) in two colourings, 480 x 320."""
    d = tmp_path_factory.mktemp("striped")
    for name, (bg, fg) in (("history", HIST_RGB), ("current", CUR_RGB)):
        img = np.empty((320, 480, 3), np.uint8)
        img[:] = bg
        for y0, y1 in STRIPES:
            img[y0:y1] = fg
        Image.fromarray(img).save(d / f"{name}.png")
    return str(d / "history.png"), str(d / "current.png")


def _stripe_row(r: float) -> bool | None:
    """Whether image row r (fractional) lies in a stripe; None within a row of an edge (interpolated)."""
    for y0, y1 in STRIPES:
        if y0 + 1 <= r <= y1 - 1:
            return True
        if y0 - 1 < r < y0 + 1 or y1 - 1 < r < y1 + 1:
            return None
    return False


def _nearest(px, colours) -> int | None:
    """Index of the colour px is (within 40 per channel) among colours, else None."""
    for i, c in enumerate(colours):
        if np.abs(px.astype(int) - np.array(c)).max() <= 40:
            return i
    return None


def check_comparison_in_register(page) -> dict:
    """Both <img> of the comparison share one box inside the container, the whole picture is visible, and the
    screen's rows beside the boundary (history before it, current after it) are the stripes of the images sent."""
    imgs = page.locator("#compare img")
    expect(imgs).to_have_count(2)
    page.locator("#compare").scroll_into_view_if_needed()  # the images load lazily, once in view
    page.wait_for_function("() => [...document.querySelectorAll('#compare img')].every(i => i.complete && i.naturalWidth > 0)")
    page.wait_for_timeout(300)  # the slider's ResizeObserver places the handle after layout
    geo = page.evaluate("""() => {
        const box = e => { const r = e.getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height}; };
        const imgs = [...document.querySelectorAll('#compare img')];
        const clip = getComputedStyle(imgs[1]).clipPath;
        const wrap = imgs[0].closest('.wrap') || imgs[0].parentElement.parentElement;
        return {imgs: imgs.map(box), natural: [imgs[0].naturalWidth, imgs[0].naturalHeight],
                fit: imgs.map(i => getComputedStyle(i).objectFit), clip, wrap: box(wrap),
                handle: box(document.querySelector('#compare .outer .inner'))};
    }""")
    a, b = geo["imgs"]
    assert all(abs(a[k] - b[k]) <= 0.5 for k in "xywh"), f"the history and current images are drawn in different boxes: {a} vs {b}"
    assert geo["fit"] == ["contain", "contain"], geo["fit"]
    wrap = geo["wrap"]
    assert a["y"] >= wrap["y"] - 0.5 and a["y"] + a["h"] <= wrap["y"] + wrap["h"] + 0.5, (a, wrap)
    assert a["x"] >= wrap["x"] - 0.5 and a["x"] + a["w"] <= wrap["x"] + wrap["w"] + 0.5, (a, wrap)
    # Where object-fit: contain puts the picture inside the element's box.
    nw, nh = geo["natural"]
    s = min(a["w"] / nw, a["h"] / nh)
    pw, ph = nw * s, nh * s
    px, py = a["x"] + (a["w"] - pw) / 2, a["y"] + (a["h"] - ph) / 2
    m = re.search(r"inset\(0(?:px)? 0(?:px)? 0(?:px)? ([\d.]+)%\)", geo["clip"])
    assert m, geo["clip"]
    boundary = a["x"] + float(m.group(1)) / 100 * a["w"]
    assert px + 30 < boundary < px + pw - 30, (boundary, px, pw)
    assert abs(geo["handle"]["x"] - boundary) <= 2, f"the handle ({geo['handle']['x']}) is not at the boundary ({boundary})"
    shot = np.array(Image.open(__import__("io").BytesIO(page.screenshot())).convert("RGB"))
    checked = 0
    for side, x, colours in (("history", boundary - 26, HIST_RGB), ("current", boundary + 26, CUR_RGB)):
        for y in range(int(np.ceil(py)) + 1, int(py + ph) - 1):
            want = _stripe_row((y + 0.5 - py) / s)
            if want is None:
                continue
            got = _nearest(shot[y, int(x)], colours)
            assert got == int(want), (f"{side} at screen row {y} (image row {(y + 0.5 - py) / s:.1f}): expected "
                                      f"{'stripe' if want else 'background'} {colours[int(want)]}, the screen shows {tuple(shot[y, int(x)])}")
            checked += 1
    assert checked > 2 * 0.8 * ph, checked
    return {"box": a, "picture": (px, py, pw, ph), "boundary": boundary}


@pytest.mark.parametrize("width", [1280, 390])
def test_comparison_halves_line_up_with_the_images_sent(browser, app_server, striped_pair, width):
    page = open_page(browser, app_server, width, 900)
    choose(page, "align-choice", "off: use the photos as they are")  # the images as sent, not warped
    run_pair(page, striped_pair)
    check_comparison_in_register(page)
    page.locator("#compare").screenshot(path=str(ARTIFACTS / f"detect-4-compare-{width}.png"))
    page.close()
