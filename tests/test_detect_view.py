"""The Detect tab shows a person the pair (issue 12), in a real browser (Debian chromium, Playwright):
the aligned history against the current in a comparison slider with the alignment's verdict and the
uncovered area; the heat map over the current image with an opacity slider, a legend in its colours and
numbered region boxes; a new model or alignment re-runs at once; the model menu names depth and
validation F1 per set; at phone width (390 px) nothing overflows or overlaps and no text says left/right.
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
    page.locator(f"#{elem} input").click()
    page.locator("[role=option]", has_text=text).first.click()


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
    expect(verdict).to_contain_text("not aligned: alignment is off")  # the alignment choice is kept
    page.close()


def test_phone_width_nothing_overlaps_and_no_left_right(browser, app_server, moved_pair):
    page = open_page(browser, app_server, 390, 844)
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
