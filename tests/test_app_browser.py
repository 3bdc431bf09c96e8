"""The Detect tab end to end in a real browser (Debian chromium driven by Playwright).

A visitor opens the page, gets a clear message when an image is missing, uploads a pair, picks
Transformer depth 4, runs, drags the threshold slider (the overlay changes, the model does not run
again) and clicks an example. Screenshots of each step go to tests/artifacts/ for a person to look at.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)"),
    pytest.mark.filterwarnings("ignore:::gradio.queueing"),
]
playwright = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from anodfdnet.data import synth  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def page(app_server):
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(TIMEOUT_MS)
        outside = []
        pg.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None)
        pg.goto(app_server, wait_until="load")
        yield pg
        browser.close()
        assert not outside, f"the page asked for outside resources: {outside}"


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"app-{name}.png"), full_page=True)


def overlay_src(page) -> str:
    return page.locator("#overlay-output img").get_attribute("src") or ""


def wait_for_new_overlay(page, old: str) -> str:
    page.wait_for_function(
        "old => { const i = document.querySelector('#overlay-output img'); return i && i.src && i.src !== old; }",
        arg=old,
    )
    return overlay_src(page)


def test_detect_tab_end_to_end(page, app_server, tmp_path):
    # The page explains itself: a title, a one-line explanation, labelled inputs, an obvious Run button.
    expect(page.get_by_role("heading", name=re.compile("AnoDFDNet"))).to_be_visible()
    expect(page.get_by_text("known-good history photo", exact=False)).to_be_visible()
    expect(page.get_by_text("1. History: earlier, known good").first).to_be_visible()
    expect(page.get_by_text("2. Current: the photo to inspect").first).to_be_visible()
    run = page.locator("#anodfdnet-run")
    expect(run).to_be_visible()
    expect(page.locator("#examples img")).to_have_count(6)
    shot(page, "1-start")

    # Run with no images: a clear message, not a traceback.
    run.click()
    toast = page.locator("[data-testid=toast-body]", has_text="image is missing")
    expect(toast).to_be_visible()
    assert "Traceback" not in page.content()
    shot(page, "2-missing-image")
    toast.locator("[data-testid=toast-close]").click()
    expect(toast).to_have_count(0)

    # Upload a pair, pick depth 4, run.
    pair = synth.generate_pair(7, size=320, hardness="easy", anomaly="foreign_body")
    hist, cur = tmp_path / "history.png", tmp_path / "current.png"
    Image.fromarray(pair.history).save(hist)
    Image.fromarray(pair.current).save(cur)
    page.locator("#history-input input[type=file]").set_input_files(str(hist))
    page.locator("#current-input input[type=file]").set_input_files(str(cur))
    expect(page.locator("#history-input img")).to_be_visible()
    expect(page.locator("#current-input img")).to_be_visible()
    page.locator("#model-choice input").click()
    page.locator("[role=option]", has_text="Transformer depth 4").first.click()
    expect(page.locator("#model-choice input")).to_have_value(re.compile("Transformer depth 4"))
    run.click()
    expect(page.locator("#overlay-output img")).to_be_visible()
    summary = page.locator("#summary")
    expect(summary).to_contain_text("Anomalous area")
    expect(summary).to_contain_text("Transformer depth 4")
    expect(summary).to_contain_text("at threshold 0.50")
    expect(page.locator("#heatmap-output img")).to_be_visible()
    expect(page.locator("#mask-output img")).to_be_visible()
    with page.expect_download() as download:
        page.locator("#mask-download").click()
    assert Image.open(download.value.path()).size == (320, 320)
    inference = re.search(r"Inference:\s*(\d+) ms", summary.inner_text()).group(1)
    before = overlay_src(page)
    before_bytes = page.request.get(before).body()
    shot(page, "3-result")

    # Drag the threshold slider all the way left: every pixel becomes anomalous, instantly.
    box = page.locator("#threshold input[type=range]").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 4, y, steps=5)
    page.mouse.move(box["x"] - 20, y, steps=5)
    page.mouse.up()
    expect(page.locator("#threshold input[type=number]")).to_have_value("0")
    expect(summary).to_contain_text("at threshold 0.00")
    expect(summary).to_contain_text("100.00% of the image")
    after = wait_for_new_overlay(page, before)
    assert page.request.get(after).body() != before_bytes, "the overlay did not change with the threshold"
    assert re.search(r"Inference:\s*(\d+) ms", summary.inner_text()).group(1) == inference, "the model ran again"
    shot(page, "4-slider")

    # Click an example: it loads into both inputs and runs with the chosen model and threshold.
    page.locator("#examples img").nth(1).click()
    expect(page.locator("#current-input img")).to_have_attribute("src", re.compile(r"cur\.png"))
    wait_for_new_overlay(page, after)
    expect(summary).to_contain_text("Transformer depth 4")
    expect(summary).to_contain_text("of 147,456 pixels")  # the examples are 384 x 384
    shot(page, "5-example")
