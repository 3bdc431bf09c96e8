"""The app's named API (/predict, /rethreshold) through gradio_client, against app.py served in-process."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from anodfdnet.data import synth  # noqa: E402
from anodfdnet.metrics import binarize  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")  # pandas deprecations inside Gradio

ROOT = Path(__file__).resolve().parents[1]
TRAINED = ROOT / "checkpoints" / "anodfdnet-effnet-d2.safetensors"


def model_name(depth: int) -> str:
    """What the app lists for a depth: the shipped effnet-dN, else the test session's untrained stand-in."""
    return f"effnet-d{depth}" if (ROOT / "checkpoints" / f"anodfdnet-effnet-d{depth}.safetensors").is_file() else f"untrained-d{depth}"


def read_mask(path) -> np.ndarray:
    a = np.array(Image.open(path))
    assert a.ndim == 2, f"the mask PNG should be greyscale, got shape {a.shape}"
    assert set(np.unique(a)) <= {0, 255}
    return a > 0


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    """A few synthetic pairs on disk: name -> (history path, current path, mask)."""
    root = tmp_path_factory.mktemp("pairs")
    out = {}
    for i, kind in enumerate(("foreign_body", "missing", "oil_leak", "scratch")):
        p = synth.generate_pair(100 + i, size=256, hardness="easy", anomaly=kind)
        d = root / kind
        d.mkdir()
        Image.fromarray(p.history).save(d / "hist.png")
        Image.fromarray(p.current).save(d / "cur.png")
        out[kind] = (str(d / "hist.png"), str(d / "cur.png"), p.mask)
    return out


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server, verbose=False)


def predict(client, hist, cur, model, threshold=0.5):
    return client.predict(handle_file(hist), handle_file(cur), model, threshold, api_name="/predict")


def test_api_lists_the_two_endpoints(client):
    api = client.view_api(print_info=False, return_format="dict")
    names = set(api["named_endpoints"])
    assert {"/predict", "/rethreshold"} <= names
    params = [p["parameter_name"] for p in api["named_endpoints"]["/predict"]["parameters"]]
    assert params == ["history", "current", "model", "threshold"]


def test_predict_outputs_and_figures(client, pair_files):
    hist, cur, _ = pair_files["foreign_body"]
    heat, overlay, mask, summary, figures, mask_file, heat_file = predict(client, hist, cur, model_name(2))
    assert Image.open(heat).size == (256, 256) and Image.open(heat).mode == "RGB"
    assert Image.open(overlay).size == (256, 256)
    m = read_mask(mask)
    assert m.shape == (256, 256)
    assert Path(mask_file).read_bytes() == Path(mask).read_bytes()
    assert Path(heat_file).read_bytes() == Path(heat).read_bytes()
    assert figures["checkpoint"] == model_name(2) and figures["depth"] == 2
    assert figures["anomalous_pixels"] == int(m.sum())
    assert figures["anomalous_area_pct"] == pytest.approx(100 * m.mean(), abs=1e-3)
    assert figures["regions"] >= len(figures["boxes"])
    assert figures["inference_seconds"] > 0 and figures["device"]
    assert "Anomalous area" in summary and "Inference" in summary
    # (Not "path": gradio_client would take a dict with that key for a file to download.)
    # The fastest accepted path serves it (auto: bf16 on a CPU with native bf16, else channels-last).
    import torch

    from anodfdnet.inference.runtime import DESCRIPTIONS, auto_path

    expected = auto_path(torch.device("cpu"))
    assert figures["inference_path"] == expected and DESCRIPTIONS[expected] in summary


def test_depth_can_be_named_by_number(client, pair_files):
    hist, cur, _ = pair_files["missing"]
    figures = predict(client, hist, cur, "4")[4]
    assert figures["depth"] == 4


@pytest.mark.skipif(not TRAINED.is_file(), reason="the shipped checkpoint checkpoints/anodfdnet-effnet-d2.safetensors is not there")
def test_known_pair_overlaps_known_anomaly(client, pair_files):
    hist, cur, truth = pair_files["foreign_body"]
    _, _, mask, _, figures, _, _ = predict(client, hist, cur, "effnet-d2")
    m = read_mask(mask)
    hit = np.count_nonzero(m & truth)
    assert hit > 0, f"the predicted mask ({m.sum()} px) misses the foreign body ({truth.sum()} px)"
    # Overlap, not accuracy (benchmarks and the model card measure that). The shipped effnet-d2 finds 94 % of
    # this foreign body's pixels at threshold 0.5, 96 % of what it marks being the body (the earlier
    # lite-d2 found 13 %); the minimums leave room for a retrained file, not for a broken pipeline.
    assert hit / truth.sum() >= 0.5, f"only {hit} of the {truth.sum()} foreign-body pixels were found"
    assert figures["align"] == "auto" and figures["align_verdict"].startswith("aligned: homography")
    assert hit / m.sum() >= 0.5, f"most of the {m.sum()} predicted pixels lie outside the foreign body"
    ys, xs = np.nonzero(truth)  # some listed region box covers part of the anomaly
    assert any(b["x"] <= xs.max() and xs.min() < b["x"] + b["width"] and b["y"] <= ys.max() and ys.min() < b["y"] + b["height"]
               for b in figures["boxes"])


def test_rethreshold_zero_full_one_empty(client, pair_files):
    hist, cur, _ = pair_files["oil_leak"]
    predict(client, hist, cur, model_name(2), 0.5)
    overlay0, mask0, _, fig0, file0 = client.predict(0.0, api_name="/rethreshold")
    assert read_mask(mask0).all() and fig0["anomalous_area_pct"] == 100.0 and fig0["regions"] == 1
    overlay1, mask1, summary1, fig1, _ = client.predict(1.0, api_name="/rethreshold")
    assert not read_mask(mask1).any() and fig1["anomalous_pixels"] == 0 and fig1["regions"] == 0
    assert np.array_equal(np.array(Image.open(overlay1)).shape, (256, 256, 3))
    assert "none" in summary1
    # the model was not run again: same inference figures as the /predict that made the map
    assert fig0["inference_seconds"] == fig1["inference_seconds"]
    for bad, message in ((1.5, "between 0 and 1"), ("abc", "must be a number"), (None, "must be a number")):
        with pytest.raises(AppError, match=message):
            client.predict(bad, api_name="/rethreshold")
    assert client.predict(0.0, api_name="/rethreshold")[3]["anomalous_area_pct"] == 100.0


def test_rethreshold_without_a_map_is_a_clear_error(app_server):
    with pytest.raises(AppError, match="run the model first"):
        Client(app_server, verbose=False).predict(0.5, api_name="/rethreshold")


def _bad_inputs(tmp: Path, good_cur: str) -> dict:
    corrupt = tmp / "corrupt.png"
    corrupt.write_bytes(Path(good_cur).read_bytes()[:200])  # a PNG cut short
    text = tmp / "notes.txt"
    text.write_text("this is not an image\n")
    huge = tmp / "huge.png"  # 7000 x 6000 = 42 MP, a small file: refused from the header
    Image.new("L", (7000, 6000)).save(huge, optimize=False)
    fat = tmp / "fat.png"  # 26 MB: over the upload limit
    fat.write_bytes(np.random.default_rng(0).integers(0, 255, 26_000_000, dtype=np.uint8).tobytes())
    return {
        "missing image": ((None, handle_file(good_cur)), "missing"),
        "corrupt file": ((handle_file(str(corrupt)), handle_file(good_cur)), "could not be read|not an image"),
        "text file": ((handle_file(str(text)), handle_file(good_cur)), "not an image"),
        "too many pixels": ((handle_file(good_cur), handle_file(str(huge))), "too large"),
        "file too big": ((handle_file(str(fat)), handle_file(good_cur)), "exceeds the maximum file size"),
    }


def test_bad_inputs_get_an_error_and_the_server_keeps_serving(client, pair_files, tmp_path):
    hist, cur, _ = pair_files["scratch"]
    model = model_name(2)
    for what, (images, message) in _bad_inputs(tmp_path, cur).items():
        with pytest.raises(Exception, match=message) as err:
            client.predict(*images, model, 0.5, api_name="/predict")
        if what != "file too big":  # that one is refused by the upload route, before the app runs
            assert isinstance(err.value, AppError), f"{what}: {err.value!r}"
            assert "Traceback" not in str(err.value)
        figures = predict(client, hist, cur, model)[4]  # the next good request still works
        assert figures["checkpoint"] == model, what
    for model_arg, threshold, message in (("no-such-model", 0.5, "no model"), (model, 1.5, "between 0 and 1")):
        with pytest.raises(AppError, match=message):
            predict(client, hist, cur, model_arg, threshold)
    assert predict(client, hist, cur, model)[4]["checkpoint"] == model


def test_oversized_upload_is_refused_by_the_server(app_server):
    import httpx

    big = httpx.post(f"{app_server}gradio_api/upload", files={"files": ("big.png", b"\0" * 26_000_000, "image/png")})
    assert big.status_code == 413
    small = httpx.post(f"{app_server}gradio_api/upload", files={"files": ("small.png", b"\0" * 1000, "image/png")})
    assert small.status_code == 200


def test_mismatched_sizes_and_odd_modes_work_with_a_note(client, pair_files, tmp_path):
    hist, cur, _ = pair_files["missing"]
    small = tmp_path / "hist16.png"  # 16-bit greyscale, half size
    grey = np.array(Image.open(hist).convert("L").resize((128, 128)), dtype=np.uint16) * 257
    Image.fromarray(grey).save(small)
    rgba = tmp_path / "cur_rgba.png"
    Image.open(cur).convert("RGBA").save(rgba)
    figures = predict(client, str(small), str(rgba), model_name(2))[4]
    assert figures["image_width"] == 256 and figures["image_height"] == 256
    assert any("resized" in n for n in figures["notes"]), figures["notes"]


def test_twenty_concurrent_clients(app_server, pair_files):
    from anodfdnet.predict import Predictor
    from demo import models
    from demo.tab import PROB_CAP

    model = model_name(1)  # not used by the other tests: the 20 requests race to load it
    loads_before = models.shared_cache().loads
    kinds = list(pair_files)
    reference = Predictor(model)
    probs = {k: np.minimum(reference.predict(*pair_files[k][:2]), PROB_CAP) for k in kinds}
    results, errors = {}, {}

    def one(i: int):
        try:
            kind, threshold = kinds[i % len(kinds)], round(0.3 + 0.02 * i, 2)
            out = predict(Client(app_server, verbose=False), *pair_files[kind][:2], model, threshold)
            results[i] = (kind, threshold, read_mask(out[2]), out[4])
        except Exception as e:  # noqa: BLE001 - reported below
            errors[i] = repr(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(results) == 20
    for i, (kind, threshold, mask, figures) in results.items():
        expected = binarize(probs[kind], threshold)
        assert figures["threshold"] == threshold and figures["checkpoint"] == model
        assert np.mean(mask == expected) > 0.999, f"client {i} ({kind} at {threshold}) got a wrong mask"
    assert models.shared_cache().loads == loads_before + 1, "the model should load once for all 20 requests"


def test_render_regions_boxes_and_outline():
    """The re-threshold step on its own: two known blobs give two regions with exact boxes."""
    from demo.render import OUTLINE, render

    prob = np.zeros((64, 96), np.float32)
    prob[10:20, 5:25] = 0.9  # 10 x 20 = 200 px
    prob[40:44, 70:73] = 0.6  # 4 x 3 = 12 px
    current = np.full((64, 96, 3), 100, np.uint8)
    r = render(prob, current, 0.5)
    assert r.n_regions == 2 and r.anomalous_pixels == 212
    assert [b.to_dict() for b in r.regions] == [
        {"x": 5, "y": 10, "width": 20, "height": 10, "area": 200},
        {"x": 70, "y": 40, "width": 3, "height": 4, "area": 12},
    ]
    assert r.overlay[15, 15, 0] > 150 and r.overlay[15, 15, 1] < 100  # tinted red inside
    assert tuple(r.overlay[9, 15]) == OUTLINE  # outlined just outside
    assert tuple(r.overlay[30, 50]) == (100, 100, 100)  # untouched elsewhere
    assert render(prob, current, 0.7).n_regions == 1
    assert render(prob, current, 0.0).mask.all() and not render(prob, current, 0.95).mask.any()


def test_a_missing_threshold_is_the_models_calibrated_one(client, pair_files, app_server):
    """/predict without a threshold uses the checkpoint's calibrated threshold, recorded in its metadata."""
    import os

    import torch

    from anodfdnet.checkpoint import save_checkpoint
    from anodfdnet.models import ModelConfig, build_model

    torch.manual_seed(0)
    folder = Path(os.environ["ANODFDNET_CHECKPOINT_DIR"])
    save_checkpoint(folder / "calibrated-d0.safetensors", build_model(ModelConfig.from_preset("lite", 0)),
                    {"threshold": 0.37, "note": "test checkpoint with a calibrated threshold"})
    hist, cur, _ = pair_files["oil_leak"]
    *_, summary, figures, mask_png, _ = predict(client, hist, cur, "calibrated-d0", threshold=None)
    assert figures["threshold"] == pytest.approx(0.37) and figures["checkpoint"] == "calibrated-d0"
    *_, figures, _, _ = predict(client, hist, cur, "calibrated-d0", threshold=0.6)  # an explicit threshold wins
    assert figures["threshold"] == pytest.approx(0.6)


def test_a_session_chooses_its_alignment(app_server, pair_files):
    """/set_alignment sets the session's alignment for its next /predict calls (auto until then); one Client is
    one session, so another client still gets auto; anything but a listed mode is a one-sentence error."""
    api = Client(app_server, verbose=False).view_api(print_info=False, return_format="dict")
    assert "/set_alignment" in api["named_endpoints"]
    hist, cur, _ = pair_files["foreign_body"]
    a, b = Client(app_server, verbose=False), Client(app_server, verbose=False)
    a.predict("off", api_name="/set_alignment")
    assert predict(a, hist, cur, model_name(2))[4]["align_verdict"] == "not aligned: alignment is off"
    assert predict(b, hist, cur, model_name(2))[4]["align"] == "auto"
    with pytest.raises(Exception, match="not one of"):
        a.predict("sideways", api_name="/set_alignment")
    assert predict(a, hist, cur, model_name(2))[4]["align"] == "off"  # the refused value changed nothing
