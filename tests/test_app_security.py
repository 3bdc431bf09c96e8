"""app.py against a hostile visitor, over raw HTTP as an attacker would call it.

Every event that takes an image is called by name (``/gradio_api/call/<name>``) and, for the events the
page uses without an API name, by ``fn_index`` through ``/gradio_api/queue/join`` (the answer read from
the SSE stream at ``/gradio_api/queue/data``), with crafted file payloads: absolute, relative,
``..``-climbing and symlinked paths, a folder, a bare path string, each with and without Gradio's
``meta`` key. The server must refuse them all, with an error that is the same whether the file exists
or not. Also: oversized data: URLs, checkpoint paths in /config and errors, private events called by
fn_index, and HTML in file names.
"""
from __future__ import annotations

import base64
import io
import json
import os
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from anodfdnet.data import synth

pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")

META = {"_type": "gradio.FileData"}
SECRET_RGB = (201, 17, 163)  # a colour no synthetic pair has: its pixels in an answer would be a leak


# ---------------------------------------------------------------------------------------------------
# Raw HTTP, the way an attacker calls the app


def call_named(url: str, name: str, data: list, timeout: float = 180) -> tuple[bool, object]:
    """(success, output data or error text) of POST /gradio_api/call/<name> and its SSE answer."""
    r = httpx.post(f"{url}gradio_api/call/{name}", json={"data": data}, timeout=timeout)
    if r.status_code != 200:
        return False, f"HTTP {r.status_code}: {r.text}"
    event_id = r.json()["event_id"]
    event = None
    with httpx.stream("GET", f"{url}gradio_api/call/{name}/{event_id}", timeout=timeout) as s:
        for line in s.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                payload = json.loads(line[5:])
                if event == "complete":
                    return True, payload
                return False, payload.get("error") if isinstance(payload, dict) else payload
    return False, "no answer"


def call_fn_index(url: str, fn_index: int, data: list, timeout: float = 180) -> tuple[bool, object]:
    """(success, output data or error text) of POST /gradio_api/queue/join with an fn_index, read from
    the session's SSE stream at /gradio_api/queue/data."""
    session = uuid.uuid4().hex
    body = {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None}
    r = httpx.post(f"{url}gradio_api/queue/join", json=body, timeout=timeout)
    if r.status_code != 200:
        return False, f"HTTP {r.status_code}: {r.text}"
    event_id = r.json()["event_id"]
    with httpx.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}, timeout=timeout) as s:
        for line in s.iter_lines():
            if not line.startswith("data:"):
                continue
            msg = json.loads(line[5:])
            if msg.get("event_id") == event_id and msg.get("msg") == "process_completed":
                out = msg.get("output") or {}
                if msg.get("success"):
                    return True, out.get("data")
                return False, out.get("error")
    return False, "no answer"


def fn_index(url: str, api_name: str) -> int:
    """The fn_index of an event, public or private, as the page's /config lists it."""
    for i, dep in enumerate(httpx.get(f"{url}config").json()["dependencies"]):
        if dep.get("api_name") == api_name:
            return dep.get("id", i)
    raise KeyError(api_name)


def upload(url: str, path: Path, name: str | None = None) -> dict:
    """Upload a file the way the page and gradio_client do; the FileData payload that names it."""
    with open(path, "rb") as f:
        r = httpx.post(f"{url}gradio_api/upload", files={"files": (name or path.name, f, "image/png")}, timeout=60)
    r.raise_for_status()
    return {"path": r.json()[0], "orig_name": name or path.name, "meta": META}


def upload_folder() -> Path:
    import gradio as gr

    return Path(gr.utils.get_upload_folder())


# ---------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def files(app_server, tmp_path_factory):
    """A secret image outside the upload folder, a good uploaded pair, and crafted payloads."""
    tmp = tmp_path_factory.mktemp("hostile")
    secret_dir = tmp / "secret"
    secret_dir.mkdir()
    secret = secret_dir / "secret.png"
    Image.new("RGB", (256, 256), SECRET_RGB).save(secret)
    pair = synth.generate_pair(5, size=256, hardness="easy", anomaly="foreign_body")
    hist, cur = tmp / "hist.png", tmp / "cur.png"
    Image.fromarray(pair.history).save(hist)
    Image.fromarray(pair.current).save(cur)
    links = upload_folder() / f"probe-{uuid.uuid4().hex}"
    links.mkdir(parents=True)
    (links / "secret-link.png").symlink_to(secret)
    (links / "missing-link.png").symlink_to(secret_dir / "missing.png")
    return {
        "secret": secret, "missing": secret_dir / "missing.png", "links": links,
        "hist": upload(app_server, hist), "cur": upload(app_server, cur), "cur_file": cur,
    }


def crafted(files, exists: bool) -> dict[str, object]:
    """Payload forms naming the secret (exists=True) or a file that is not there (exists=False)."""
    target: Path = files["secret"] if exists else files["missing"]
    cwd = Path.cwd()
    forms = {
        "absolute": str(target),
        "relative": os.path.relpath(target, cwd),
        "dot-dot": str(cwd / ("../" * len(cwd.parts)) / str(target).lstrip("/")),
        "symlink in the upload folder": str(files["links"] / ("secret-link.png" if exists else "missing-link.png")),
        "folder": str(target.parent if exists else target.parent / "no-such-folder"),
    }
    out: dict[str, object] = {}
    for form, path in forms.items():
        out[f"{form}, no meta"] = {"path": path}
        out[f"{form}, meta"] = {"path": path, "meta": META}
    out["bare path string"] = str(target)
    return out


# The private events with image inputs, by the names Gradio gives them (Run click, example click, re-run on a
# model change, re-run on an alignment change, the Label tab's two; "predict" is the /predict API).
PRIVATE_IMAGE_EVENTS = ("predict_1", "predict_2", "page_rerun", "page_rerun_1", "save_label", "start_from_model")


def _slots(files, fn_names: dict) -> list:
    """(endpoint description, caller, build data from a payload) for every image input of every event."""
    editor = lambda bg, layers=(): {"background": bg, "layers": list(layers), "composite": None}  # noqa: E731
    hist, cur = files["hist"], files["cur"]
    label = ["eve", "no anomaly", ""]
    return [
        ("/predict history", "predict", lambda p: [p, cur, "", 0.5]),
        ("/predict current", "predict", lambda p: [hist, p, "", 0.5]),
        # By fn_index the page sends a placeholder for the session's alignment (a gr.State) too.
        ("example click (fn_index) current", fn_names["predict_2"], lambda p: [hist, p, "", 0.5, None]),
        ("Run click (fn_index) history", fn_names["predict_1"], lambda p: [p, cur, "", 0.5, None]),
        ("re-run on a model change (fn_index) history", fn_names["page_rerun"],
         lambda p: [p, cur, "", 0.5, None]),
        ("re-run on an alignment change (fn_index) current", fn_names["page_rerun_1"],
         lambda p: [hist, p, "", 0.5, None]),
        ("/save_label history", "save_label", lambda p: [p, editor(cur), *label]),
        ("/save_label editor background", "save_label", lambda p: [hist, editor(p), *label]),
        ("/save_label editor layer", "save_label", lambda p: [hist, editor(cur, [p]), "eve", "other", ""]),
        ("/save_label history (fn_index)", fn_names["save_label"], lambda p: [p, editor(cur), *label, None, None]),
        ("start from the model history (fn_index)", fn_names["start_from_model"], lambda p: [p, editor(cur), "", 0.5]),
        ("start from the model background (fn_index)", fn_names["start_from_model"], lambda p: [hist, editor(p), "", 0.5]),
    ]


def _call(url, how, data):
    return call_named(url, how, data) if isinstance(how, str) else call_fn_index(url, how, data)


def _label_rows() -> int:
    data = Path(os.environ["ANODFDNET_LABEL_DIR"]) / "data"
    return len(list(data.glob("*.parquet"))) if data.is_dir() else 0


# ---------------------------------------------------------------------------------------------------
# Tests


def test_crafted_paths_are_refused_alike_on_every_image_input(app_server, files):
    fn_names = {n: fn_index(app_server, n) for n in PRIVATE_IMAGE_EVENTS}
    rows_before = _label_rows()
    leaks, differing = [], []
    present, absent = crafted(files, True), crafted(files, False)
    for where, how, build in _slots(files, fn_names):
        for form in present:
            ok, answer = _call(app_server, how, build(present[form]))
            ok2, answer2 = _call(app_server, how, build(absent[form]))
            text = json.dumps(answer)
            if ok or ok2:
                leaks.append(f"{where}, {form}: accepted ({text[:200]})")
                continue
            if answer != answer2:
                differing.append(f"{where}, {form}: {answer!r} vs {answer2!r}")
            for revealing in (str(files["secret"].parent), "secret", "missing", "No such file", "does not exist"):
                if revealing in text:
                    leaks.append(f"{where}, {form}: the error names {revealing!r}: {text[:200]}")
    assert not leaks, "\n".join(leaks)
    assert not differing, "the error tells whether a file exists:\n" + "\n".join(differing)
    assert _label_rows() == rows_before, "a crafted payload was saved as a label"


def test_refusal_is_one_plain_sentence(app_server, files):
    ok, text = call_named(app_server, "predict", [files["hist"], {"path": str(files["secret"])}, "", 0.5])
    assert not ok and text == (
        "The current image did not arrive as an upload: upload the file again "
        "(through the API, pass it with gradio_client.handle_file)."
    )


def test_the_good_uploads_still_work(app_server, files):
    ok, out = call_named(app_server, "predict", [files["hist"], files["cur"], "", 0.5])
    assert ok, out
    assert out[4]["image_width"] == 256


def _png_bytes(rgb=(10, 200, 30), size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, "PNG")
    return buf.getvalue()


def _big_files(since: float, min_bytes: int) -> list[str]:
    out = []
    for root, _, names in os.walk(upload_folder()):
        for n in names:
            p = Path(root) / n
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            if st.st_mtime >= since and st.st_size >= min_bytes:
                out.append(str(p))
    return out


def test_a_data_url_over_the_limit_is_refused_before_it_is_decoded_or_written(app_server, files):
    raw = np.random.default_rng(0).integers(0, 256, 45_000_000, dtype=np.uint8).tobytes()  # 60 MB of base64
    url = "data:image/png;base64," + base64.b64encode(raw).decode()
    del raw
    start = time.time() - 1
    ok, text = call_named(app_server, "predict", [{"url": url, "path": None}, files["cur"], "", 0.5])
    assert not ok and "files up to 25 MB are accepted" in str(text), text
    ok, text = call_named(app_server, "predict", [files["hist"], url, "", 0.5])  # a bare string: Gradio refuses it
    assert not ok, text
    assert _big_files(start, 1_000_000) == [], "the refused request's bytes were left on disk"


def test_a_small_data_url_is_read_in_memory(app_server, files):
    url = "data:image/png;base64," + base64.b64encode(_png_bytes()).decode()
    start = time.time() - 1
    ok, out = call_named(app_server, "predict", [{"url": url, "path": None}, {"url": url, "path": None}, "", 0.5])
    assert ok, out
    assert (out[4]["image_width"], out[4]["image_height"]) == (64, 48)
    assert not [p for p in _big_files(start, 0) if "pasted" in p], "a data URL was written to disk"


def test_config_and_api_show_model_names_not_server_paths(app_server):
    from anodfdnet.checkpoint import list_checkpoints

    config = httpx.get(f"{app_server}config").text
    info = httpx.get(f"{app_server}gradio_api/info").text
    for ckpt in list_checkpoints():
        for text, where in ((config, "/config"), (info, "/gradio_api/info")):
            assert str(ckpt.path.parent) not in text, f"{where} shows the server path of {ckpt.name}"
    assert str(Path.cwd()) not in config
    named = set(json.loads(info)["named_endpoints"])
    assert named == {"/predict", "/rethreshold", "/set_alignment", "/save_label"}, named


def test_private_events_called_by_fn_index_validate_their_inputs(app_server, files):
    """'Start from the model' is reachable by fn_index (the page needs it): it must take only listed
    model names, never a path, and say so without server paths."""
    from anodfdnet.checkpoint import list_checkpoints

    start = fn_index(app_server, "start_from_model")
    editor = {"background": files["cur"], "layers": [], "composite": None}
    shipped = list_checkpoints()[0]
    answers = {}
    for ref in (str(shipped.path), "/etc/hostname", "/no/such/file.safetensors", "hf://someone/repo/x.safetensors",
                "../checkpoints/anodfdnet-effnet-d2.safetensors"):
        ok, answer = call_fn_index(app_server, start, [files["hist"], editor, ref, 0.5])
        assert not ok, f"{ref}: accepted"
        assert "/" not in str(answer).replace(ref, ""), f"{ref}: the error shows a server path: {answer}"
        answers[ref] = str(answer).replace(ref, "REF")
    assert len(set(answers.values())) == 1, answers
    ok, answer = call_fn_index(app_server, start, [files["hist"], editor, shipped.name, "abc"])
    assert not ok and "threshold" in str(answer), answer
    ok, out = call_fn_index(app_server, start, [files["hist"], editor, shipped.name, 0.5])
    assert ok, out


def test_a_model_that_fails_to_load_is_named_not_located(app_server, files):
    """A listed checkpoint whose weights do not fit its config: the error names the model, not its file."""
    import json as _json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from anodfdnet.checkpoint import list_checkpoints

    folder = Path(os.environ["ANODFDNET_CHECKPOINT_DIR"])
    good = next(i for i in list_checkpoints() if i.config.depth == 0)
    with safe_open(str(good.path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        metadata = dict(f.metadata())
    config = _json.loads(metadata["config"])
    config["depth"] = 1  # weights of depth 0, config of depth 1
    metadata["config"] = _json.dumps(config)
    broken = folder / "anodfdnet-broken-d1.safetensors"
    save_file(tensors, str(broken), metadata=metadata)
    try:
        ok, text = call_named(app_server, "predict", [files["hist"], files["cur"], "broken-d1", 0.5])
        assert not ok and "broken-d1" in str(text) and "could not be loaded" in str(text), text
        assert str(folder) not in str(text) and ".safetensors" not in str(text), text
    finally:
        broken.unlink()


def test_html_in_a_file_name_is_escaped_in_the_error(app_server, files, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    name = '<img src=x onerror="window.__xss=1">.png'
    ok, text = call_named(app_server, "predict", [files["hist"], upload(app_server, bad, name), "", 0.5])
    assert not ok and "not an image file" in str(text), text
    assert "<img" not in str(text) and "&lt;img" in str(text), text


def test_the_pair_view_events_validate_their_inputs(app_server, files):
    """The Detect tab's private events of the pair view (alignment menu, re-run, opacity, comparison) are
    reachable by fn_index: an alignment is one of the listed modes or a one-sentence refusal, whatever the
    request sends; without a prediction in the session they change nothing; a good re-run still works."""
    from anodfdnet.align import MODES

    set_align = fn_index(app_server, "page_set_align")
    for bad in ("../../etc/passwd", "<b>x</b>", 3, ["auto"]):
        ok, answer = call_fn_index(app_server, set_align, [bad])
        assert not ok and "lignment" in str(answer) and "<b>" not in str(answer), (bad, answer)
    ok, answer = call_fn_index(app_server, set_align, ["off"])
    assert ok, answer  # (a State output: the session keeps it, the answer does not carry it)
    for name, data in (("page_opacity", [None, 0.5, "abc"]), ("page_view", [None, 0.5, 9])):
        ok, answer = call_fn_index(app_server, fn_index(app_server, name), data)
        assert ok, (name, answer)  # no map in this session: nothing to draw, nothing read
    # A hostile value in the alignment's slot never reaches the model as anything but a listed mode.
    rerun = fn_index(app_server, "page_rerun")
    ok, out = call_fn_index(app_server, rerun, [files["hist"], files["cur"], "", 0.5, "../x"])
    assert (ok and out[4]["align"] in MODES) or (not ok and "lignment" in str(out)), out
    ok, out = call_fn_index(app_server, rerun, [files["hist"], files["cur"], "", 0.5, None])
    assert ok and out[4]["align"] == "auto" and "align_verdict" in out[4], out


def test_set_alignment_by_raw_http_takes_listed_modes_only(app_server):
    """/set_alignment (public): a listed mode, or one escaped sentence that names the modes; nothing else."""
    for bad in ("../../etc/passwd", "<img src=x onerror=alert(1)>", 7, {"path": "/etc/hostname"}):
        ok, answer = call_named(app_server, "set_alignment", [bad])
        assert not ok and "one of auto, off" in str(answer) and "<img" not in str(answer), (bad, answer)
    ok, answer = call_named(app_server, "set_alignment", ["ecc"])
    assert ok, answer


UNLISTED_FORMATS = ("TGA", "ICO", "PCX", "SGI", "PPM", "GIF", "IM", "DDS")  # all decodable by Pillow
LISTED_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP")


def test_every_image_input_decodes_exactly_the_listed_formats(app_server, files, tmp_path):
    """The refusal lists PNG, JPEG, BMP, TIFF and WebP: Pillow knows many more formats, each a decoder a
    stranger's bytes would reach. Every other format is refused from its header on every image input (by
    name and by fn_index), with the sentence that lists the formats; the listed ones still work."""
    fn_names = {n: fn_index(app_server, n) for n in PRIVATE_IMAGE_EVENTS}
    pair = synth.generate_pair(7, size=64, hardness="easy", anomaly="foreign_body")
    uploads = {}
    for fmt in (*UNLISTED_FORMATS, *LISTED_FORMATS):
        path = tmp_path / f"current.{fmt.lower()}"
        Image.fromarray(pair.current).save(path, fmt)
        uploads[fmt] = upload(app_server, path)
    rows = _label_rows()
    wrong = []
    for where, how, build in _slots(files, fn_names):
        for fmt in UNLISTED_FORMATS if where.startswith("/predict current") else UNLISTED_FORMATS[::3]:
            ok, answer = _call(app_server, how, build(uploads[fmt]))
            if ok or "(PNG, JPEG, BMP, TIFF or WebP)" not in str(answer):
                wrong.append(f"{where}, {fmt}: {'accepted' if ok else answer}")
    assert not wrong, "\n".join(wrong)
    assert _label_rows() == rows
    for fmt in LISTED_FORMATS:
        ok, out = call_named(app_server, "predict", [files["hist"], uploads[fmt], "", 0.5])
        assert ok and out[4]["image_width"] == 64, (fmt, out)


def test_the_upload_events_take_nothing_a_request_sends(app_server, files):
    """The Label tab's upload/clear events (private, without the queue) only make the caller's own session's run
    the newest (demo.latest): whatever a request sends, a crafted path or HTML, is ignored, never opened or echoed,
    and a 1 MB session id is answered too (the ticket table keeps its digest: tests/test_latest_runs.py)."""
    deps = httpx.get(f"{app_server}config").json()["dependencies"]
    bumps = [d.get("id", i) for i, d in enumerate(deps) if str(d.get("api_name")).startswith("pair_changed")]
    assert len(bumps) == 3, "the history's upload and clear, the editor's clear"
    crafted = {"path": str(files["secret"]), "meta": {"_type": "gradio.FileData"}}
    for fn in bumps:
        for data, session in (([], "s"), ([crafted], "s"), (["<script>x</script>"] * 3, "s"), ([], "a" * 10**6)):
            body = {"data": data, "fn_index": fn, "session_hash": session, "event_data": None, "trigger_id": None}
            r = httpx.post(f"{app_server}gradio_api/run/predict", json=body, timeout=60)
            assert r.status_code == 200 and r.json()["data"] == [], r.text[:300]
            assert "secret" not in r.text and "<script>" not in r.text
