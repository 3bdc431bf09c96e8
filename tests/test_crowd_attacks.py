"""What a determined visitor can still try against a public Space, replayed over raw HTTP against app.py.

Each test is an attack as a script would make it (``/gradio_api/queue/join`` with an ``fn_index``,
``/gradio_api/call/<name>``, ``/gradio_api/component_server``), never through the page:

* reading gold scores back to reconstruct a gold mask, telling gold pairs from the others by name or
  place, and saving as fast as a script can (the rate limit);
* with ``ANODFDNET_REQUIRE_LOGIN=1`` and no sign-in: reviewing under a typed reviewer's name, saving, and
  taking queue holds without an identity;
* the ImageEditor's canvas upload route with a huge layer index, and a flood of canvases, with the
  server's resident memory measured before and after (the app is served in this process, so the
  server's RSS is this process's);
* an unreadable and a wrong-schema shard dropped into the label folder while the app serves.
"""
from __future__ import annotations

import io
import re
import uuid
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from annotate.store import LabelStore
from anodfdnet.data.labels import content_hash

from conftest import served_app, write_tiny_pairs
from test_crowd_app import call, config_fn, layer_of, upload

pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")
SAVES_PER_MINUTE = 6
MB = 1024 * 1024


def rss_mb() -> float:
    """Resident memory of this process (the server's: it is served in-process), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def component_id(url: str, elem_id: str) -> int:
    for c in httpx.get(f"{url}config").json()["components"]:
        if c.get("props", {}).get("elem_id") == elem_id:
            return c["id"]
    raise KeyError(elem_id)


def fn_with_outputs(url: str, *elem_ids: str) -> int:
    """The fn_index of the event whose outputs are exactly these components (e.g. a page-load event)."""
    ids = [component_id(url, e) for e in elem_ids]
    for i, dep in enumerate(httpx.get(f"{url}config").json()["dependencies"]):
        if list(dep.get("outputs", [])) == ids:
            return dep.get("id", i)
    raise KeyError(elem_ids)


def save_via_api(url: str, hist: np.ndarray, cur: np.ndarray, mask: np.ndarray, name: str, session: str | None = None):
    editor = {"background": upload(url, cur, "c.png"), "layers": [upload(url, layer_of(mask), "l.png")], "composite": None}
    kind = "other" if mask.any() else "no anomaly"
    return call(url, config_fn(url, "save_label"), [upload(url, hist, "h.png"), editor, name, kind, "", None, None],
                session or uuid.uuid4().hex)


def read_pairs(folder: Path) -> dict[str, tuple]:
    """content hash -> (history, current, mask) of a pairs: folder."""
    out = {}
    for d in sorted(folder.iterdir()):
        hist, cur = (np.array(Image.open(d / f)) for f in ("hist.png", "cur.png"))
        out[content_hash(hist, cur)] = (hist, cur, np.array(Image.open(d / "cur_gt.png")) > 0)
    return out


@pytest.fixture(scope="module")
def crowd(tmp_path_factory):
    """An open Space (no sign-in): a queue of 6 pairs, k=1, 3 gold pairs at rate 0.5, reviewer 'rita'."""
    tmp = tmp_path_factory.mktemp("attacks")
    queue = write_tiny_pairs(tmp / "queue", n=6, size=32)
    gold = write_tiny_pairs(tmp / "gold", n=3, size=32, seed=9)
    mp = pytest.MonkeyPatch()
    for name in ("SYSTEM", "SPACE_ID", "OAUTH_CLIENT_ID", "ANODFDNET_REQUIRE_LOGIN"):
        mp.delenv(name, raising=False)
    env = {"ANODFDNET_QUEUE": f"pairs:{queue}", "ANODFDNET_LABELS_PER_PAIR": "1", "ANODFDNET_GOLD": f"pairs:{gold}",
           "ANODFDNET_GOLD_RATE": "0.5", "ANODFDNET_REVIEWERS": "rita", "ANODFDNET_SAVES_PER_MINUTE": str(SAVES_PER_MINUTE)}
    (tmp / "checkpoints").mkdir()
    with served_app(tmp, tmp / "checkpoints", env) as url:
        yield url, tmp / "labels", queue, gold
    mp.undo()


# --- 1. Gold answers stay secret ---------------------------------------------------------------------

def test_probing_a_gold_mask_reads_back_no_score(crowd):
    """The attack: save masks covering parts of a gold pair and read the summary after each save. The public
    summary (the page-load event, by fn_index) shows no gold IoU, no gold count, no per-annotator gold
    column, and the annotator's pair count moves the same for a gold and a queue answer."""
    url, labels, queue, gold = crowd
    summary_fn = fn_with_outputs(url, "label-progress", "label-summary")
    golds = read_pairs(gold)
    h, (hist, cur, truth) = next(iter(golds.items()))
    texts = []
    for i, (y0, x0) in enumerate(((0, 0), (0, 16), (16, 0))):  # three probes over quarters of the image
        probe = np.zeros_like(truth)
        probe[y0:y0 + 16, x0:x0 + 16] = True
        ok, out = save_via_api(url, hist, cur, probe, "prober")
        assert ok, out
        ok, out = call(url, summary_fn, [], uuid.uuid4().hex)
        assert ok, out
        texts.append(str(out[1]))
    store = LabelStore(labels)
    gold_rows = [r for r in store.snapshot().rows if r.annotator == "prober"]
    assert len(gold_rows) == 3 and {r.kind for r in gold_rows} == {"gold"}  # they were stored as gold answers
    ious = {f"{100 * r.gold_iou:.1f}" for r in gold_rows}
    for text in texts:
        assert "gold" not in text.lower(), text
        assert not any(f"{v} %" in text or f"{v}%" in text for v in ious), text
        assert "| prober | name | 1 |" in text  # latest answer per pair: one pair answered, gold or not
    # A reviewer sees the prober's gold score beside their answers (Review tab, by fn_index): label a queue
    # pair as the prober, so a pair with k=1 answers waits for review.
    qh, (qhist, qcur, qtruth) = next(iter(read_pairs(queue).items()))
    ok, out = save_via_api(url, qhist, qcur, qtruth, "prober")
    assert ok, out
    seen, rita = None, uuid.uuid4().hex
    for _ in range(10):  # lowest agreement first: walk until the prober's pair comes up
        ok, out = call(url, config_fn(url, "next_pair"), ["rita", None], rita)
        assert ok, out
        if "prober" in str(out[3]):
            seen = str(out[3])
            break
        if "No pair is waiting" in str(out[-1]):
            break
        ok, _ = call(url, config_fn(url, "reject"), ["rita", "", None], rita)
    assert seen is not None and "gold IoU" in seen
    mean = np.mean([r.gold_iou for r in LabelStore(labels).snapshot().rows if r.annotator == "prober" and r.kind == "gold"])
    assert f"{100 * mean:.1f} % (1)" in seen, seen


def test_gold_pairs_look_like_any_other_pair(crowd):
    """Names and order: every pair shown while gold is configured is named by 8 hex digits of its hash; a new
    annotator's first pair is gold for some annotators and not for others; the progress line names the
    set, never a server path (the queue's or the gold folder's)."""
    url, labels, queue, gold = crowd
    next_fn = config_fn(url, "load_next")
    gold_names = {h[:8] for h in read_pairs(gold)}
    queue_names = {h[:8] for h in read_pairs(queue)}
    first_is_gold, session = [], uuid.uuid4().hex  # one session: each request gives its previous hold back
    for i in range(24):
        ok, out = call(url, next_fn, [f"newcomer {i}", None], session)
        assert ok, out
        m = re.search(r"Pair `([^`]+)` loaded", str(out[-1]))
        assert m and re.fullmatch(r"[0-9a-f]{8}", m.group(1)), out[-1]
        assert m.group(1) in gold_names | queue_names
        first_is_gold.append(m.group(1) in gold_names)
        progress = next(str(o) for o in out if "Queue `" in str(o))
        assert "Queue `queue`" in progress and str(queue.parent) not in progress and "gold" not in progress
    assert 0 < sum(first_is_gold) < len(first_is_gold), first_is_gold  # rate 0.5: P(all or none) = 2**-23


def test_saves_beyond_the_rate_limit_are_refused(crowd):
    """A script saving as fast as it can: the limit binds the identity across fresh sessions, says when to
    retry, and writes nothing; another identity is not affected."""
    url, labels, queue, _ = crowd
    hist = np.random.default_rng(3).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    empty = np.zeros((24, 24), bool)
    before = LabelStore(labels).size()
    results = [save_via_api(url, hist, hist, empty, "speedy") for _ in range(SAVES_PER_MINUTE + 2)]
    assert all(ok for ok, _ in results[:SAVES_PER_MINUTE]), results
    for ok, err in results[SAVES_PER_MINUTE:]:
        assert not ok and re.search(rf"too many saves: at most {SAVES_PER_MINUTE} a minute \(ANODFDNET_SAVES_PER_MINUTE\); "
                                    r"save again in \d+ s\.", str(err)), err
    assert LabelStore(labels).size() == before + SAVES_PER_MINUTE
    ok, out = save_via_api(url, hist, hist, empty, "someone else")
    assert ok, out


# --- 3. The canvas upload route ------------------------------------------------------------------------

def _blob(url: str, cid: int, session: str, kind: str, index, blob_id: str, payload: bytes) -> httpx.Response:
    data = {"session_hash": session, "component_id": str(cid), "fn_name": "accept_blobs", "type": kind,
            "index": str(index), "id": blob_id}
    return httpx.post(f"{url}gradio_api/component_server", data=data, files={"file": ("blob", payload, "image/png")},
                      timeout=120)


def _png(side: int, rng=None) -> bytes:
    rng = rng or np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (side, side, 4), dtype=np.uint8)).save(buf, "PNG", compress_level=0)
    return buf.getvalue()


def test_a_huge_layer_index_allocates_nothing(crowd):
    """Gradio 6.31's accept_blobs grows the layer list to index + 1 entries: ~770 MB for index 10^8 from a
    200-byte request, kept. Replayed on both editors (Label and Review), three times each, with RSS."""
    url = crowd[0]
    tiny = _png(8)
    before = rss_mb()
    for elem in ("label-editor", "review-editor"):
        cid = component_id(url, elem)
        for _ in range(3):
            r = _blob(url, cid, uuid.uuid4().hex, "layer", 100_000_000, uuid.uuid4().hex, tiny)
            assert r.status_code == 400 and "index must lie between 0 and 3" in r.text, r.text
    grown = rss_mb() - before
    assert grown < 100, f"the server grew by {grown:.0f} MB"
    cid = component_id(url, "label-editor")
    for kind, index, blob_id, why in (("layer", -1, "a", "index must lie"), ("layer", "1e9", "a", "whole number"),
                                      ("mask", 0, "a", "type must be one of"), ("layer", 0, "x" * 65, "id must be")):
        r = _blob(url, cid, uuid.uuid4().hex, kind, index, blob_id, tiny)
        assert r.status_code == 400 and why in r.text, (kind, index, r.text)
    assert _blob(url, cid, uuid.uuid4().hex, "layer", 0, uuid.uuid4().hex, tiny).status_code == 200  # what the page sends


def test_a_flood_of_canvases_stays_bounded(crowd):
    """Canvases that no event ever reads: 40 of ~3 MB from one session, then 160 from fresh sessions. Pending
    canvases stay within the per-session and global bounds, and so does the server's memory."""
    from annotate import editor

    url = crowd[0]
    cid = component_id(url, "label-editor")
    big = _png(880)  # ~3 MB, incompressible
    before, (count0, bytes0) = rss_mb(), editor.PENDING.count()
    session = uuid.uuid4().hex
    for _ in range(40):
        assert _blob(url, cid, session, "background", "null", uuid.uuid4().hex, big).status_code == 200
    count, nbytes = editor.PENDING.count()
    assert count - count0 <= editor.MAX_PENDING_PER_SESSION and nbytes - bytes0 <= editor.MAX_PENDING_PER_SESSION * len(big)
    for _ in range(160):
        assert _blob(url, cid, uuid.uuid4().hex, "background", "null", uuid.uuid4().hex, big).status_code == 200
    count, nbytes = editor.PENDING.count()
    assert count <= editor.MAX_PENDING and nbytes <= editor.MAX_PENDING_BYTES
    grown = rss_mb() - before
    # 200 x 3 MB = 620 MB unbounded; the bound is 64 canvases (~200 MB here) whatever is sent.
    assert grown < (editor.MAX_PENDING * len(big) + 60 * MB) / MB, f"the server grew by {grown:.0f} MB"


# --- 4. A corrupt shard while the app serves -------------------------------------------------------------

def test_a_corrupt_and_a_wrong_schema_shard_are_set_aside_and_saving_goes_on(crowd, capsys):
    url, labels, queue, _ = crowd
    data = labels / "data"
    hist = np.random.default_rng(8).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    ok, out = save_via_api(url, hist, hist, np.zeros((24, 24), bool), "before the damage")
    assert ok, out
    good = sorted(data.glob("*.parquet"))[-1]
    (data / "20000101T000000000000Z-truncated.parquet").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (data / "20000101T000000000001Z-garbage.parquet").write_bytes(b"PAR1 this is not parquet at all")
    pq.write_table(pa.table({"id": ["x"], "annotator": [None], "something": [1]}), data / "20000101T000000000002Z-other.parquet")
    bad = {"20000101T000000000000Z-truncated.parquet", "20000101T000000000001Z-garbage.parquet",
           "20000101T000000000002Z-other.parquet"}
    ok, out = save_via_api(url, hist, hist, np.zeros((24, 24), bool), "after the damage")
    assert ok, out  # the save lands
    assert {p.name for p in (labels / "quarantine").glob("*.parquet")} == bad
    assert not bad & {p.name for p in data.glob("*.parquet")}
    ok, out = call(url, config_fn(url, "load_next"), ["after the damage", None], uuid.uuid4().hex)
    assert ok and "loaded" in str(out[-1]), out  # the queue serves
    ok, out = call(url, fn_with_outputs(url, "label-progress", "label-summary"), [], uuid.uuid4().hex)
    assert ok and "rows" in str(out[1]), out  # the summary shows
    from annotate.__main__ import main

    capsys.readouterr()
    assert main(["status", "--labels", str(labels)]) == 0
    text = capsys.readouterr().out
    for name in bad:
        assert f"quarantine/{name}" in text, text
    assert "not in the label schema (missing" in text and "not a readable Parquet file" in text


# --- 2. ANODFDNET_REQUIRE_LOGIN=1 without sign-in -------------------------------------------------------

# Last in this file: while this fixture lives, ANODFDNET_REQUIRE_LOGIN=1 is set for the whole process.
@pytest.fixture(scope="module")
def login_required(tmp_path_factory):
    """A deployment with ANODFDNET_REQUIRE_LOGIN=1 where sign-in does not exist (not a Space), reviewer
    'rita', a queue of 2 pairs with k=1, and one pair already labelled (so a review has something to judge)."""
    tmp = tmp_path_factory.mktemp("login")
    queue = write_tiny_pairs(tmp / "queue", n=2, size=32)
    store = LabelStore(tmp / "labels")
    hist = np.random.default_rng(4).integers(0, 255, (20, 20, 3), dtype=np.uint8)
    store.save(hist, hist, np.zeros((20, 20), bool), "earlier", "no anomaly")
    mp = pytest.MonkeyPatch()
    for name in ("SYSTEM", "SPACE_ID", "OAUTH_CLIENT_ID", "ANODFDNET_GOLD"):
        mp.delenv(name, raising=False)
    env = {"ANODFDNET_QUEUE": f"pairs:{queue}", "ANODFDNET_LABELS_PER_PAIR": "1", "ANODFDNET_REVIEWERS": "rita",
           "ANODFDNET_REQUIRE_LOGIN": "1"}
    (tmp / "checkpoints").mkdir()
    with served_app(tmp, tmp / "checkpoints", env) as url:
        yield url, tmp / "labels", queue
    mp.undo()


def test_without_sign_in_no_write_and_no_hold_is_possible(login_required, monkeypatch):
    """A typed reviewer name 'rita' must not review (by fn_index: next, accept, reject, correct), a save is
    refused (named endpoint and fn_index), and Next pair with no identity or a typed one takes no hold."""
    url, labels, queue = login_required
    rows = LabelStore(labels).size()
    rita = uuid.uuid4().hex
    for event, data in (("next_pair", ["rita", None]), ("accept", ["rita", "", None]), ("reject", ["rita", "", None]),
                        ("correct", ["rita", None, "other", "", None])):
        ok, err = call(url, config_fn(url, event), data, rita)
        assert not ok and "Not allowed: reviews need a signed-in account (ANODFDNET_REQUIRE_LOGIN=1)" in str(err), (event, err)
    hist = np.random.default_rng(5).integers(0, 255, (20, 20, 3), dtype=np.uint8)
    ok, err = save_via_api(url, hist, hist, np.zeros((20, 20), bool), "rita")
    assert not ok and "saves only labels of signed-in annotators" in str(err), err
    next_fn = config_fn(url, "load_next")
    for name in ("", "alice", "", "bob"):  # four sessions ask for the two queue pairs
        ok, err = call(url, next_fn, [name, None], uuid.uuid4().hex)
        assert not ok and "signed-in annotators" in str(err), err
    assert LabelStore(labels).size() == rows
    # Had any refused request taken a hold, the two pairs would now be held for ten minutes (taken over
    # only after one): with the requirement lifted, two fresh annotators get both pairs at once.
    monkeypatch.delenv("ANODFDNET_REQUIRE_LOGIN")
    served = set()
    for name in ("carol", "dave"):
        ok, out = call(url, next_fn, [name, None], uuid.uuid4().hex)
        assert ok and "loaded" in str(out[-1]), out
        served.add(re.search(r"Pair `([^`]+)` loaded", str(out[-1])).group(1))
    assert served == {"pair00", "pair01"}
