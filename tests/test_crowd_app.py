"""Crowd labelling through app.py over HTTP: five separate clients (each its own Gradio session) label a
queue with k = 3 and gold pairs mixed in; the Review tab's events refuse a caller who is not a reviewer,
on the server; and on a Space with sign-in (Gradio's own OAuth session cookie and ``gr.OAuthProfile``,
no network) a save is attributed to the signed-in account, an anonymous one is marked so, and
``ANODFDNET_REQUIRE_LOGIN=1`` refuses it."""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from annotate.store import LabelStore
from annotate.summary import summarize
from anodfdnet.data import parse_spec
from anodfdnet.data.label_policies import mask_iou
from anodfdnet.data.labels import content_hash

from conftest import served_app, write_tiny_pairs

pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")
META = {"_type": "gradio.FileData"}
K = 3


def config_fn(url: str, api_name: str) -> int:
    for i, dep in enumerate(httpx.get(f"{url}config").json()["dependencies"]):
        if dep.get("api_name") == api_name:
            return dep.get("id", i)
    raise KeyError(api_name)


def call(url: str, fn: int, data: list, session: str, cookies: dict | None = None, timeout: float = 180):
    """(success, output data or error text) of one event called by fn_index in the given session."""
    body = {"data": data, "fn_index": fn, "session_hash": session, "event_data": None, "trigger_id": None}
    with httpx.Client(cookies=cookies, timeout=timeout) as c:
        r = c.post(f"{url}gradio_api/queue/join", json=body)
        assert r.status_code == 200, r.text
        event_id = r.json()["event_id"]
        with c.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}) as s:
            for line in s.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("event_id") == event_id and msg.get("msg") == "process_completed":
                    out = msg.get("output") or {}
                    return (True, out.get("data")) if msg.get("success") else (False, out.get("error"))
    return False, "no answer"


def upload(url: str, array: np.ndarray, name: str, cookies: dict | None = None) -> dict:
    import io

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    r = httpx.post(f"{url}gradio_api/upload", files={"files": (name, buf.getvalue(), "image/png")}, cookies=cookies, timeout=60)
    r.raise_for_status()
    return {"path": r.json()[0], "orig_name": name, "meta": META}


def layer_of(mask: np.ndarray) -> np.ndarray:
    layer = np.zeros((*mask.shape, 4), np.uint8)
    layer[mask] = (255, 0, 128, 140)
    return layer


@pytest.fixture(scope="module")
def crowd(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crowd-app")
    queue = write_tiny_pairs(tmp / "queue", n=4, size=48)
    gold = write_tiny_pairs(tmp / "gold", n=2, size=48, seed=5)
    mp = pytest.MonkeyPatch()
    for name in ("SYSTEM", "SPACE_ID", "OAUTH_CLIENT_ID", "ANODFDNET_REQUIRE_LOGIN"):
        mp.delenv(name, raising=False)
    env = {"ANODFDNET_QUEUE": f"pairs:{queue}", "ANODFDNET_LABELS_PER_PAIR": str(K), "ANODFDNET_GOLD": f"pairs:{gold}",
           "ANODFDNET_GOLD_RATE": "1", "ANODFDNET_REVIEWERS": "rita"}
    # Rate 1: each client is handed both gold pairs before queue pairs, so every run has gold answers to check
    # (at 0.2 a run with no gold draw at all happened in CI; the rate itself is tested in test_crowd_labels).
    (tmp / "checkpoints").mkdir()
    with served_app(tmp, tmp / "checkpoints", env) as url:
        yield url, tmp / "labels", queue, gold
    mp.undo()


def test_five_separate_clients_label_every_pair_exactly_three_times(crowd):
    url, labels, queue, gold = crowd
    next_fn, save_fn = config_fn(url, "load_next"), config_fn(url, "save_label")
    files = {}
    for folder, spec in ((queue, "q"), (gold, "g")):
        for d in sorted(folder.iterdir()):
            hist, cur = (np.array(Image.open(d / f)) for f in ("hist.png", "cur.png"))
            # With gold pairs mixed in, the page names every pair by its hash (a file name would give gold away).
            files[content_hash(hist, cur)[:8]] = (hist, cur, np.array(Image.open(d / "cur_gt.png")) > 0, spec)
    painted: dict[tuple[str, str], np.ndarray] = {}
    errors = []

    def annotator(i: int):
        name, session = f"client {i}", uuid.uuid4().hex
        try:
            for _ in range(200):
                ok, out = call(url, next_fn, [name, None], session)
                assert ok, out
                m = re.search(r"Pair `([^`]+)` loaded", str(out[-1]))
                if m is None:
                    assert "No pair is free" in str(out[-1]), out[-1]
                    if _queue_done(labels, queue):
                        return
                    time.sleep(0.2)  # the last slots are held by others, or are pairs this client labelled
                    continue
                hist, cur, truth, _ = files[m.group(1)]
                mask = np.roll(truth, i, axis=1)  # client i paints the truth shifted by i pixels
                h = content_hash(hist, cur)
                painted[(name, h)] = mask
                editor = {"background": upload(url, cur, "cur.png"), "layers": [upload(url, layer_of(mask), "layer.png")],
                          "composite": None}
                ok, out = call(url, save_fn, [upload(url, hist, "hist.png"), editor, name, "foreign body", "", None, None], session)
                assert ok, out
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=annotator, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    store = LabelStore(labels)
    snap = store.snapshot()
    queue_hashes = {content_hash(v[0], v[1]) for k, v in files.items() if v[3] == "q"}
    gold_hashes = {content_hash(v[0], v[1]) for k, v in files.items() if v[3] == "g"}
    for h in queue_hashes:
        rows = [r for r in snap.rows if r.content_hash == h]
        assert len(rows) == K and len({r.annotator for r in rows}) == K and {r.kind for r in rows} == {"label"}
        assert {r.identity for r in rows} == {"name"} and all(r.source.startswith("pairs:") for r in rows)
        p = snap.pairs[h]  # agreement and consensus as computed here
        masks = [painted[(r.annotator, h)] for r in p.answer_rows()]
        expected = np.mean([mask_iou(a, b) for j, a in enumerate(masks) for b in masks[j + 1:]])
        assert snap.agreement(p).mask == pytest.approx(expected)
    gold_rows = [r for r in snap.rows if r.kind == "gold"]
    assert len(gold_rows) == 5 * len(gold_hashes) and {r.content_hash for r in gold_rows} == gold_hashes
    for r in gold_rows:  # each gold answer scored against the known mask
        truth = files[r.content_hash[:8]][2]
        assert r.gold_iou == pytest.approx(mask_iou(painted[(r.annotator, r.content_hash)], truth), abs=1e-6)
    summary = summarize(store, k=K)
    assert summary.with_k == 4 and summary.pairs == 4
    for a in summary.annotators:
        mine = [r.gold_iou for r in gold_rows if r.annotator == a.name]
        assert (a.gold_iou is None) == (not mine) and (not mine or a.gold_iou == pytest.approx(np.mean(mine)))
    cons = parse_spec(f"hf:{labels}?policy=consensus&k={K}")
    assert len(cons) == 4 and not ({cons.key(i) for i in range(4)} & gold_hashes)


def _queue_done(labels: Path, queue: Path) -> bool:
    pairs = LabelStore(labels).snapshot().pairs
    hashes = [content_hash(np.array(Image.open(d / "hist.png")), np.array(Image.open(d / "cur.png"))) for d in sorted(queue.iterdir())]
    return all(h in pairs and len(pairs[h].answers) >= K for h in hashes)


def test_review_events_check_the_reviewer_on_the_server(crowd):
    url, labels, _, _ = crowd
    store = LabelStore(labels)
    if not any(len(p.answers) >= K for p in store.snapshot().pairs.values()):  # run alone: label one pair here
        rng = np.random.default_rng(0)
        hist = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
        for name in ("x1", "x2", "x3"):
            store.save(hist, hist, np.zeros((20, 20), bool), name, "no anomaly")
    next_fn, accept_fn, correct_fn = (config_fn(url, n) for n in ("next_pair", "accept", "correct"))
    mallory, rita = uuid.uuid4().hex, uuid.uuid4().hex
    rows = store.size()
    ok, err = call(url, next_fn, ["mallory", None], mallory)
    assert not ok and "Not allowed: mallory is not a reviewer" in str(err)
    ok, err = call(url, accept_fn, ["mallory", "", None], mallory)
    assert not ok and "Not allowed" in str(err)
    ok, err = call(url, correct_fn, ["<b>rita</b>", {"path": "/etc/hostname"}, "other", "", None], mallory)
    assert not ok and "Not allowed" in str(err) and "<b>" not in str(err)
    assert store.size() == rows
    ok, out = call(url, next_fn, ["rita", None], rita)
    assert ok and "Reviewing as **rita**" in str(out[-1])
    ok, out = call(url, accept_fn, ["rita", "looks right", None], rita)
    assert ok and "Accepted" in str(out[-1])
    reviews = [r for r in LabelStore(labels).snapshot().rows if r.kind == "review"]
    assert len(reviews) == 1 and (reviews[0].annotator, reviews[0].verdict) == ("rita", "accept")


# --- Sign-in: a Space with hf_oauth: true, as Gradio sees it --------------------------------------------

SECRET = "space-oauth-secret"


def session_cookie(username: str, secret: str = SECRET) -> dict:
    """The session cookie Gradio's OAuth callback sets on a Space, signed as Starlette's SessionMiddleware
    signs it (itsdangerous, keyed with Gradio's hash of the Space's OAuth client secret)."""
    from itsdangerous import TimestampSigner

    info = {"oauth_info": {"access_token": "token", "scope": "openid profile", "expires_at": 4102444800,
                           "userinfo": {"preferred_username": username, "name": username.title(),
                                        "profile": f"https://huggingface.co/{username}", "picture": ""}}}
    key = hashlib.sha256((secret + "-v4").encode()).hexdigest()
    return {"session": TimestampSigner(key).sign(base64.b64encode(json.dumps(info).encode())).decode()}


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    import gradio.http_server
    import gradio.oauth

    tmp = tmp_path_factory.mktemp("space-app")
    mp = pytest.MonkeyPatch()
    env = {"SYSTEM": "spaces", "SPACE_ID": "someone/anodfdnet", "OAUTH_CLIENT_ID": "client-id",
           "OAUTH_CLIENT_SECRET": SECRET, "OAUTH_SCOPES": "openid profile", "OPENID_PROVIDER_URL": "http://127.0.0.1:9"}
    for k, v in env.items():
        mp.setenv(k, v)
        if hasattr(gradio.oauth, k):
            mp.setattr(gradio.oauth, k, v)  # read by gradio.oauth when it is imported
    # Gradio starts a hot reloader on Spaces, which needs the `spaces` package; it is not what is tested here.
    mp.setattr(gradio.http_server, "get_space", lambda: None)
    mp.setenv("ANODFDNET_REVIEWERS", "rita-reviews")
    for name in ("ANODFDNET_QUEUE", "ANODFDNET_GOLD", "ANODFDNET_LABELS_PER_PAIR", "ANODFDNET_REQUIRE_LOGIN"):
        mp.delenv(name, raising=False)
    (tmp / "checkpoints").mkdir()
    with served_app(tmp, tmp / "checkpoints") as url:
        yield url, tmp / "labels"
    mp.undo()


def test_a_signed_in_save_is_attributed_to_the_profile(space, monkeypatch):
    url, labels = space
    page = httpx.get(url).text
    assert "Sign in with Hugging Face" in httpx.get(f"{url}config").text and page
    save_fn = config_fn(url, "save_label")
    rng = np.random.default_rng(1)
    hist = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
    mask = np.zeros((24, 24), bool)
    mask[4:9, 4:9] = True

    def save(cookies, typed="typed name", session=None):
        editor = {"background": upload(url, hist, "c.png", cookies), "layers": [upload(url, layer_of(mask), "l.png", cookies)],
                  "composite": None}
        return call(url, save_fn, [upload(url, hist, "h.png", cookies), editor, typed, "other", "", None, None],
                    session or uuid.uuid4().hex, cookies=cookies)

    ok, out = save(session_cookie("ada-lovelace"))
    assert ok, out
    assert "as ada-lovelace (signed in with Hugging Face)" in str(out[0])
    row = LabelStore(labels).snapshot().rows[-1]
    assert (row.annotator, row.identity) == ("ada-lovelace", "hf")  # the typed name is not used

    session = uuid.uuid4().hex
    ok, out = save(None, session=session)
    assert ok, out
    row = LabelStore(labels).snapshot().rows[-1]
    assert row.identity == "anonymous" and re.fullmatch(r"anonymous-[0-9a-f]{8}", row.annotator)
    ok, _ = save(None, session=session)  # the same session is the same anonymous annotator
    assert LabelStore(labels).snapshot().rows[-1].annotator == row.annotator

    ok, out = save(session_cookie("ada-lovelace", secret="forged"))  # a cookie not signed by the Space
    assert ok and LabelStore(labels).snapshot().rows[-1].identity == "anonymous"

    monkeypatch.setenv("ANODFDNET_REQUIRE_LOGIN", "1")
    n = LabelStore(labels).size()
    ok, err = save(None)
    assert not ok and "Not saved: sign in with Hugging Face first" in str(err)
    assert LabelStore(labels).size() == n
    ok, out = save(session_cookie("grace"))
    assert ok and LabelStore(labels).snapshot().rows[-1].annotator == "grace"

    # Review: only the signed-in reviewer account; a typed reviewer name means nothing here.
    next_fn = config_fn(url, "next_pair")
    ok, err = call(url, next_fn, ["rita-reviews", None], uuid.uuid4().hex)
    assert not ok and "sign in with Hugging Face to review" in str(err)
    ok, err = call(url, next_fn, ["", None], uuid.uuid4().hex, cookies=session_cookie("grace"))
    assert not ok and "grace is not a reviewer" in str(err)
    ok, out = call(url, next_fn, ["", None], uuid.uuid4().hex, cookies=session_cookie("rita-reviews"))
    assert ok and "Reviewing as **rita-reviews**" in str(out[-1])
