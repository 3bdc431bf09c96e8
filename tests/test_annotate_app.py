"""The Label tab of app.py: saving through gradio_client with an editor value, and painting in a real browser.

The app is served in-process with a queue of four small pairs, an untrained stand-in checkpoint for
"Start from the model", a temporary label folder, and Hub sync configured with a fake token while
``HF_HUB_OFFLINE=1``, so every save must stay local and the UI must say the shards wait to be pushed.
Screenshots go to tests/artifacts/ (ignored) for a person to look at.
"""
from __future__ import annotations

import re
import socket
from pathlib import Path

import datasets
import huggingface_hub.constants
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from annotate.tab import BRUSH_SIZE
from anodfdnet.data import parse_spec
from anodfdnet.metrics import binarize
from anodfdnet.predict import Predictor

from conftest import write_tiny_pairs

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
REPO = "someone/anodfdnet-labels"
TOKEN = "hf_fakeTokenForTheLabelTab"
ROW_ID = re.compile(r"row `?([0-9a-f]{32})`?")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(url, label folder, queue folder, checkpoint path) of app.py's app with the Label tab set up."""
    import torch

    import app
    from anodfdnet.checkpoint import save_checkpoint
    from anodfdnet.models import ModelConfig, build_model

    tmp = tmp_path_factory.mktemp("label-app")
    queue = write_tiny_pairs(tmp / "queue", n=4, size=96)
    ckpt = tmp / "checkpoints" / "anodfdnet-tiny-d0.safetensors"
    torch.manual_seed(0)
    save_checkpoint(ckpt, build_model(ModelConfig.from_preset("lite", 0)), {"note": "untrained stand-in for tests"})
    mp = pytest.MonkeyPatch()
    mp.setenv("ANODFDNET_CHECKPOINT_DIR", str(ckpt.parent))
    mp.setenv("ANODFDNET_CACHE", str(ROOT / ".cache" / "anodfdnet"))  # ignored; the demo's examples are kept
    mp.setenv("ANODFDNET_LABEL_DIR", str(tmp / "labels"))
    mp.setenv("ANODFDNET_QUEUE", f"pairs:{queue}")
    mp.setenv("HF_TOKEN", TOKEN)
    mp.setenv("ANODFDNET_DATASET_REPO", REPO)
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import; the env var alone is too late
    mp.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp / "hf-cache"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    blocks = app.build_app()
    _, url, _ = app.launch(blocks, server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield url, tmp / "labels", queue, ckpt
    finally:
        blocks.close()
        mp.undo()


def read_row(labels: Path, row_id: str):
    """(pair, raw row) of one saved label, read back the way training reads it (hf:DIR)."""
    src = parse_spec(f"hf:{labels}")
    i = src.names.index(row_id)
    return src[i], src.row(i)


def n_rows(labels: Path) -> int:
    from annotate.store import LabelStore

    return LabelStore(labels).size()


def png(path: Path, array: np.ndarray) -> str:
    Image.fromarray(array).save(path)
    return str(path)


def test_save_through_gradio_client_with_an_editor_value(served, tmp_path):
    url, labels, _, _ = served
    rng = np.random.default_rng(1)
    hist = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    cur = hist.copy()
    cur[10:20, 30:50] = (255, 255, 0)
    layer = np.zeros((40, 60, 4), np.uint8)
    layer[10:20, 30:50] = (255, 0, 128, 140)
    layer[25, 5] = (255, 0, 128, 1)  # a faint anti-aliased edge pixel is still painted
    expected = layer[..., 3] > 0
    client = Client(url, verbose=False)
    editor = {"background": handle_file(png(tmp_path / "cur.png", cur)),
              "layers": [handle_file(png(tmp_path / "layer.png", layer))], "composite": None}
    status = client.predict(handle_file(png(tmp_path / "hist.png", hist)), editor, "api user", "oil leak", "via the API",
                            api_name="/save_label")
    assert status.startswith("**Saved** row") and f"saved locally, 1 waiting to be pushed to {REPO}" in status
    assert TOKEN not in status
    pair, row = read_row(labels, ROW_ID.search(status).group(1))
    assert np.array_equal(pair.mask, expected)
    assert np.array_equal(pair.history, hist) and np.array_equal(pair.current, cur)
    assert (row["annotator"], row["anomaly_type"], row["note"], row["source"], row["model_checkpoint"]) == (
        "api user", "oil leak", "via the API", "upload", "")

    # A rejected save is an error the client sees, and writes nothing.
    n = len(parse_spec(f"hf:{labels}"))
    with pytest.raises(Exception, match="Not saved: the annotator name may hold only"):
        client.predict(handle_file(str(tmp_path / "hist.png")), editor, "<bob>", "oil leak", "", api_name="/save_label")
    with pytest.raises(Exception, match="Not saved: the mask is empty"):
        client.predict(handle_file(str(tmp_path / "hist.png")), {**editor, "layers": []}, "bob", "oil leak", "",
                       api_name="/save_label")
    assert len(parse_spec(f"hf:{labels}")) == n


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)")
def test_paint_a_stroke_in_the_browser_and_save_it(served):
    from playwright.sync_api import expect, sync_playwright

    url, labels, queue, ckpt = served
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(60_000)
        page.goto(url, wait_until="load")
        page.get_by_role("tab", name="Label").click()
        expect(page.locator("#label-progress")).to_contain_text("pairs labelled")
        page.locator("#label-next").click()
        expect(page.locator("#label-status")).to_contain_text("Pair pair00 loaded")
        page.screenshot(path=str(ARTIFACTS / "label-1-pair-loaded.png"), full_page=True)

        # Paint a horizontal stroke across the middle of the current image (the brush is the default tool).
        # The editor centres the 96x96 image in its canvas at the zoom its toolbar shows (e.g. "435%").
        box = page.locator("#label-editor canvas").first.bounding_box()
        zoom = page.locator("#label-editor").get_by_text(re.compile(r"^\d+%$")).first.inner_text()
        scale = int(zoom.rstrip("%")) / 100
        left = box["x"] + box["width"] / 2 - 48 * scale
        top = box["y"] + box["height"] / 2 - 48 * scale
        y_img, x0_img, x1_img = 48, 20, 76
        page.mouse.move(left + x0_img * scale, top + y_img * scale)
        page.mouse.down()
        page.mouse.move(left + x1_img * scale, top + y_img * scale, steps=4)  # each event costs the canvas ~0.5 s
        page.mouse.up()
        page.locator("#label-annotator textarea, #label-annotator input").first.fill("browser user")
        page.locator("#label-type input").click()
        page.get_by_role("option", name="scratch / crack").click()
        page.screenshot(path=str(ARTIFACTS / "label-2-painted.png"), full_page=True)
        page.locator("#label-save").click()
        expect(page.locator("#label-status")).to_contain_text("Saved")
        status = page.locator("#label-status").inner_text()
        assert "waiting to be pushed" in status and TOKEN not in page.content()
        expect(page.locator("#label-progress")).to_contain_text("1 / 4 pairs labelled")
        expect(page.locator("#label-progress")).to_contain_text("On screen: pair pair01")  # the next one came up
        page.screenshot(path=str(ARTIFACTS / "label-3-saved.png"), full_page=True)

        pair, row = read_row(labels, ROW_ID.search(status).group(1))
        assert row["source"] == f"pairs:{queue}#pair00" and row["annotator"] == "browser user"
        assert np.array_equal(pair.current, np.array(Image.open(queue / "pair00" / "cur.png")))
        ys, xs = np.nonzero(pair.mask)
        assert len(ys), "the saved mask is empty"
        r = BRUSH_SIZE  # the brush's radius in image pixels: the stroke is the path widened by r
        assert abs(ys.min() - (y_img - r)) <= 2 and abs(ys.max() - (y_img + r)) <= 2
        assert abs(xs.min() - (x0_img - r)) <= 2 and abs(xs.max() - (x1_img + r)) <= 2
        assert pair.mask[y_img, x0_img:x1_img].all() and not pair.mask[:30].any() and not pair.mask[66:].any()

        # Model-assisted: the model paints the next pair; saving keeps its mask and names the model.
        page.get_by_role("button", name="Start from the model").click()
        expect(page.locator("#label-status")).to_contain_text("The model tiny-d0 painted")
        page.locator("#label-type input").click()
        page.get_by_role("option", name="other").click()
        page.screenshot(path=str(ARTIFACTS / "label-4-model-assisted.png"), full_page=True)
        page.locator("#label-save").click()
        expect(page.locator("#label-status")).to_contain_text("Saved")
        pair2, row2 = read_row(labels, ROW_ID.search(page.locator("#label-status").inner_text()).group(1))
        expect(page.locator("#label-progress")).to_contain_text("On screen: pair pair02")
        page.locator("#label-skip").click()  # Skip moves on without saving
        expect(page.locator("#label-progress")).to_contain_text("2 / 4 pairs labelled. The dataset holds 3 labels. On screen: pair pair03")
        browser.close()
    assert row2["source"].endswith("#pair01") and row2["model_checkpoint"] == "tiny-d0"
    predicted = binarize(Predictor(ckpt).predict(pair2.history, pair2.current), 0.5)
    assert np.array_equal(pair2.mask, predicted)


# --- Issue 10: exactly what the person painted; clear refusals; a pair saved again ----------------------


def _editor(cur_path: str, layers=()) -> dict:
    return {"background": handle_file(cur_path), "layers": [handle_file(p) for p in layers], "composite": None}


def test_paint_layers_are_read_by_the_documented_rule_only(served, tmp_path):
    url, labels, _, _ = served
    rng = np.random.default_rng(2)
    hist = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    cur = hist.copy()
    cur[5:15, 10:30] = 250
    h, c = png(tmp_path / "h.png", hist), png(tmp_path / "c.png", cur)
    client = Client(url, verbose=False)

    # An ordinary black-and-white mask PNG (greyscale, no alpha): white is the mask, not "everything".
    bw = np.zeros((40, 60), np.uint8)
    bw[5:15, 10:30] = 255
    status = client.predict(handle_file(h), _editor(c, [png(tmp_path / "bw.png", bw)]), "mask user", "foreign body", "",
                            api_name="/save_label")
    pair, _ = read_row(labels, ROW_ID.search(status).group(1))
    assert np.array_equal(pair.mask, bw == 255), f"{pair.mask.sum()} px saved for {int((bw == 255).sum())} painted"

    # The same as RGB, and as RGBA that is opaque everywhere: still a black-and-white mask.
    for name, arr in (("rgb.png", np.repeat(bw[..., None], 3, 2)),
                      ("opaque.png", np.dstack([bw, bw, bw, np.full_like(bw, 255)]))):
        status = client.predict(handle_file(h), _editor(c, [png(tmp_path / name, arr)]), "mask user", "foreign body", "",
                                api_name="/save_label")
        assert np.array_equal(read_row(labels, ROW_ID.search(status).group(1))[0].mask, bw == 255), name

    # Ambiguous layers are refused with the accepted forms, and nothing is written.
    n = n_rows(labels)
    grey = np.tile(np.linspace(0, 255, 60, dtype=np.uint8), (40, 1))  # grey levels, no alpha
    photo = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)  # a colour picture, no alpha
    for name, arr in (("grey.png", grey), ("photo.png", photo)):
        with pytest.raises(Exception, match="neither of the accepted forms.*transparency.*black-and-white mask"):
            client.predict(handle_file(h), _editor(c, [png(tmp_path / name, arr)]), "mask user", "foreign body", "",
                           api_name="/save_label")
    assert n_rows(labels) == n


def test_save_label_refuses_bad_files_with_the_sentences_predict_gives(served, tmp_path):
    url, labels, _, _ = served
    rng = np.random.default_rng(3)
    hist = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    h, c = png(tmp_path / "h.png", hist), png(tmp_path / "c.png", hist)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(Path(h).read_bytes()[:100])
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    huge = tmp_path / "huge.png"  # 9000 x 9000, a small file: must be refused from its header
    Image.new("L", (9000, 9000)).save(huge)
    header_only = tmp_path / "header-only.png"  # the same header, no pixel data: only a header check can size it
    header_only.write_bytes(huge.read_bytes()[:200])
    client = Client(url, verbose=False)
    n = n_rows(labels)
    cases = [
        ((handle_file(str(text)), _editor(c)), "Not saved: the history image 'notes.png' is not an image file that can be read"),
        ((handle_file(h), _editor(str(text))), "Not saved: the current image 'notes.png' is not an image file that can be read"),
        ((handle_file(str(corrupt)), _editor(c)), "Not saved: the history image 'corrupt.png' could not be read"),
        ((handle_file(h), _editor(c, [str(text)])), "Not saved: the paint layer image 'notes.png' is not an image file"),
        ((handle_file(str(huge)), _editor(c)), r"Not saved: the history image 'huge.png' is too large \(9000x9000"),
        ((handle_file(h), _editor(str(header_only))), r"Not saved: the current image 'header-only.png' is too large \(9000x9000"),
    ]
    for inputs, message in cases:
        with pytest.raises(Exception, match=message):
            client.predict(*inputs, "ann", "no anomaly", "", api_name="/save_label")
    assert n_rows(labels) == n


def test_saving_a_pair_again_says_it_replaces_the_earlier_answer(served, tmp_path):
    url, labels, _, _ = served
    rng = np.random.default_rng(4)
    hist = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    small = np.array(Image.fromarray(hist).resize((30, 20)))
    h, hs, c = png(tmp_path / "h.png", hist), png(tmp_path / "hs.png", small), png(tmp_path / "c.png", hist)
    client = Client(url, verbose=False)
    first = client.predict(handle_file(h), _editor(c), "carol", "no anomaly", "", api_name="/save_label")
    assert "replaces" not in first
    again = client.predict(handle_file(h), _editor(c), "carol", "no anomaly", "sure", api_name="/save_label")
    earlier = ROW_ID.search(first).group(1)
    assert f"You had labelled this pair before (row `{earlier}`)" in again and "replaces that answer for training" in again
    other = client.predict(handle_file(h), _editor(c), "dave", "no anomaly", "", api_name="/save_label")
    assert "replaces" not in other
    names = parse_spec(f"hf:{labels}").names
    assert ROW_ID.search(again).group(1) in names and earlier not in names and ROW_ID.search(other).group(1) in names

    resized = client.predict(handle_file(hs), _editor(c), "erin", "no anomaly", "", api_name="/save_label")
    assert "The history (30x20) was stored resized to the current image's size" in resized
    pair, row = read_row(labels, ROW_ID.search(resized).group(1))
    assert np.array(row["history"]).shape == (40, 60, 3)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)")
def test_an_uploaded_pair_is_cleared_after_save_and_html_in_names_stays_text(served, tmp_path):
    """No queue pair on screen: after Save the editor, history and type are cleared, so a second click
    cannot save the pair again; a file name holding HTML shows as text in the error, never as markup."""
    from playwright.sync_api import expect, sync_playwright

    url, labels, _, _ = served
    rng = np.random.default_rng(9)
    hist = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    h, c = png(tmp_path / "hist.png", hist), png(tmp_path / "cur.png", hist)
    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    evil = evil_dir / '<img src=x onerror="window.__xss=1">.png'
    evil.write_bytes(b"not an image")
    n = n_rows(labels)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(60_000)
        page.goto(url, wait_until="load")
        page.get_by_role("tab", name="Label").click()
        expect(page.locator("#label-progress")).to_contain_text("pairs labelled")
        page.locator("#label-history input[type=file]").set_input_files(str(evil))
        page.locator("#label-editor input[type=file]").set_input_files(c)
        page.locator("#label-annotator textarea, #label-annotator input").first.fill("uploader")
        page.locator("#label-type input").click()
        page.get_by_role("option", name="no anomaly").click()
        page.locator("#label-save").click()
        toast = page.locator("[data-testid=toast-body]", has_text="Not saved")
        expect(toast).to_be_visible()
        assert page.evaluate("window.__xss") is None, "the file name ran as markup"
        assert toast.locator("img").count() == 0
        expect(toast).to_contain_text('<img src=x onerror="window.__xss=1">.png')
        toast.locator("[data-testid=toast-close]").click()

        page.locator("#label-history input[type=file]").set_input_files(h)
        expect(page.locator("#label-history img")).to_be_visible()
        page.locator("#label-save").click()
        expect(page.locator("#label-status")).to_contain_text("Saved")
        assert "no anomaly" in page.locator("#label-status").inner_text()
        expect(page.locator("#label-type input")).to_have_value("")  # the next pair starts afresh
        expect(page.locator("#label-history img")).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "label-5-upload-saved-and-cleared.png"), full_page=True)
        page.locator("#label-type input").click()
        page.get_by_role("option", name="no anomaly").click()
        page.locator("#label-save").click()  # a second click has nothing to save
        expect(page.locator("[data-testid=toast-body]", has_text="there is no current image")).to_be_visible()
        browser.close()
    assert n_rows(labels) == n + 1
