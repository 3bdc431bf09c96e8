"""Crowd labelling on a real label dataset on disk: k labels per pair from concurrent annotators, agreement
and consensus against masks computed here, gold pairs, reviews, the labels policies training reads (and
retrain's report of them), old (v1) shards, export, status, and a review save killed mid-write."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from annotate.queue import LabelQueue
from annotate.review import ReviewQueue
from annotate.store import LabelStore
from annotate.summary import compact, summarize
from anodfdnet.data import parse_spec
from anodfdnet.data.label_policies import consensus_mask, mask_iou
from anodfdnet.data.labels import FEATURES, V1_FEATURES, content_hash
from anodfdnet.errors import UserError

from conftest import write_tiny_pairs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _private_datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    for name in ("ANODFDNET_LABELS_PER_PAIR", "ANODFDNET_GOLD", "ANODFDNET_GOLD_RATE", "ANODFDNET_QUEUE"):
        monkeypatch.delenv(name, raising=False)


def box(shape, y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def pair(seed: int, h: int = 30, w: int = 40):
    rng = np.random.default_rng(seed)
    hist = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    cur = hist.copy()
    cur[5:15, 5:15] = 255
    return hist, cur


def hand_iou(a, b) -> float:
    """IoU by counting, as a person would: |a and b| / |a or b|."""
    inter = sum(1 for x, y in zip(a.ravel(), b.ravel()) if x and y)
    union = sum(1 for x, y in zip(a.ravel(), b.ravel()) if x or y)
    return 1.0 if union == 0 else inter / union


def test_agreement_and_consensus_against_masks_computed_here():
    shape = (12, 16)
    a, b, c, d = box(shape, 2, 8, 2, 8), box(shape, 2, 8, 4, 10), box(shape, 3, 9, 2, 8), box(shape, 0, 0, 0, 0)
    for x, y in ((a, b), (a, c), (b, c), (a, d), (d, d)):
        assert mask_iou(x, y) == pytest.approx(hand_iou(x, y))
    assert mask_iou(d, d) == 1.0  # both say "nothing": they agree
    # Majority of three: a pixel is in the consensus when two or three painted it.
    votes = a.astype(int) + b + c
    assert np.array_equal(consensus_mask([a, b, c]), votes >= 2)
    # A tie (two of four) counts as anomalous; one of four does not.
    four = consensus_mask([a, b, d, d])
    assert np.array_equal(four, (a.astype(int) + b + d + d) * 2 >= 4)
    assert four[2, 5] and not four[2, 2]  # painted by a and b: tie -> anomalous; by a only: not


def test_five_annotator_threads_k3_every_pair_gets_exactly_three_people(tmp_path):
    queue_dir = write_tiny_pairs(tmp_path / "queue", n=6, size=32)
    store = LabelStore(tmp_path / "labels")
    queue = LabelQueue(store, f"pairs:{queue_dir}", k=3, gold="")
    names = [f"annotator {i}" for i in range(5)]
    first: dict[str, str] = {}
    start = threading.Barrier(5)
    first_round = threading.Barrier(5)
    errors, served = [], []

    def work(name):
        try:
            start.wait()
            rounds = 0
            while True:
                item = queue.next_for(name, holder=name)
                if rounds == 0:
                    first[name] = item.content_hash
                    first_round.wait()  # everyone holds their first pair at once
                rounds += 1
                if item is None:
                    if queue.progress()[0] == len(queue):
                        return
                    time.sleep(0.05)
                    continue
                served.append((name, item.content_hash))
                assert name not in {r.annotator for r in store.snapshot().rows if r.content_hash == item.content_hash}
                store.save(item.pair.history, item.pair.current, item.pair.mask, name, "other", source=item.source)
                queue.release(name)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
            start.abort()
            first_round.abort()

    threads = [threading.Thread(target=work, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert len(set(first.values())) == 5, "five people asking at once got the same pair"
    pairs = store.snapshot().pairs
    assert len(pairs) == 6
    for h, p in pairs.items():
        rows = [r for r in store.snapshot().rows if r.content_hash == h]
        assert len(rows) == 3 and len({r.annotator for r in rows}) == 3, [r.annotator for r in rows]
    assert queue.progress() == (6, 6) and queue.counts() == (6, 6, 6)


def test_one_hold_per_holder_and_a_grabbed_queue_is_taken_over(tmp_path):
    queue_dir = write_tiny_pairs(tmp_path / "queue", n=3, size=24)
    store = LabelStore(tmp_path / "labels")
    queue = LabelQueue(store, f"pairs:{queue_dir}", k=1, gold="", take_over_s=0.5)
    a = queue.next_for("mallory", holder="s1")
    b = queue.next_for("mallory", holder="s1")  # asking again gives the first one back
    assert queue.held_elsewhere("nobody") == 1 and a.index == b.index == 0
    # One client with three sessions holds the whole queue: an honest annotator waits, then takes over.
    for s in ("s1", "s2", "s3"):
        assert queue.next_for(None, holder=s) is not None
    assert queue.next_for("alice", holder="alice") is None
    time.sleep(0.6)
    took = queue.next_for("alice", holder="alice")
    assert took is not None and took.index == 0  # the oldest hold
    assert queue.held_elsewhere("alice") == 2


def test_gold_pairs_are_served_scored_and_never_trained(tmp_path):
    gold_dir = write_tiny_pairs(tmp_path / "gold", n=2, size=32, seed=7)
    queue_dir = write_tiny_pairs(tmp_path / "queue", n=6, size=32)
    store = LabelStore(tmp_path / "labels")
    queue = LabelQueue(store, f"pairs:{queue_dir}", k=2, gold=f"pairs:{gold_dir}", gold_rate=0.5, rng=random.Random(3))
    gold_src = parse_spec(f"pairs:{gold_dir}")
    ious = {"ann": [], "bob": []}
    served = {"ann": [], "bob": []}
    for name, shift in (("ann", 0), ("bob", 3)):
        while (item := queue.next_for(name, holder=name)) is not None:
            m = np.roll(item.pair.mask, shift, axis=1)
            known = queue.gold_mask(item.content_hash)
            served[name].append((item.gold, item.content_hash))
            # Every pair, gold or not, is shown by the first 8 hex digits of its hash: the name gives nothing away.
            assert item.display_name == item.content_hash[:8]
            if item.gold:
                assert known is not None and np.array_equal(known, gold_src[item.index].mask)
                ious[name].append(hand_iou(m, known))
                store.save(item.pair.history, item.pair.current, m, name, "other", kind="gold", gold_iou=mask_iou(m, known))
            else:
                assert known is None
                store.save(item.pair.history, item.pair.current, m, name, "other")
    for name in ("ann", "bob"):  # every queue pair and each gold pair once per person, gold mixed in at random
        golds = [h for g, h in served[name] if g]
        assert len(golds) == len(set(golds)) == 2 and sum(not g for g, _ in served[name]) == 6
    s = summarize(store, queue)
    people = {a.name: a for a in s.annotators}
    assert people["ann"].gold == 2 and people["ann"].gold_iou == pytest.approx(1.0)
    assert people["bob"].gold_iou == pytest.approx(np.mean(ious["bob"])) and people["bob"].gold_iou < 0.9
    assert s.gold_pairs == 2 and s.pairs == 6
    for policy in ("latest", "consensus&k=1"):
        src = parse_spec(f"hf:{tmp_path / 'labels'}?policy={policy}")
        gold_hashes = set(queue.gold_hashes())
        assert not any(src.key(i) in gold_hashes for i in range(len(src)))
        assert src.selection.left_out["gold pair (it scores annotators and never trains)"] == 2
    # The public view (the Label tab, the dataset card) has no gold figure; an annotator's pairs count gold
    # answers like any other. The owner's view (status) has them.
    public = s.markdown()
    assert "gold" not in public.lower() and "| ann | name | 8 |" in public
    assert "gold IoU 100.0 % over 2" in s.text()


def test_gold_comes_at_random_positions_and_at_its_rate(tmp_path):
    """Gold pairs are not served first (or at any fixed place): over 60 new annotators the first pair is gold
    for about the gold rate of them; over many requests the share of gold is about the rate."""
    gold_dir = write_tiny_pairs(tmp_path / "gold", n=3, size=32, seed=7)
    queue_dir = write_tiny_pairs(tmp_path / "queue", n=5, size=32)
    store = LabelStore(tmp_path / "labels")
    queue = LabelQueue(store, f"pairs:{queue_dir}", k=1, gold=f"pairs:{gold_dir}", gold_rate=0.25, rng=random.Random(11))
    first = []
    for i in range(60):
        first.append(queue.next_for(f"new person {i}", holder="h").gold)  # "h" asks again: its hold is given back
    assert 5 <= sum(first) <= 25  # binomial(60, 0.25): mean 15; never all first, never none
    draws = [queue.next_for(None, holder="anon", exclude=()).gold for _ in range(400)]
    assert 0.18 <= sum(draws) / len(draws) <= 0.32  # a visitor without a name is drawn for too
    plain = LabelQueue(store, f"pairs:{queue_dir}", k=1, gold="")  # no gold configured: pairs keep their names
    assert plain.next_for("x", holder="x").display_name.startswith("pair")
    assert queue.display_name == "queue" and str(tmp_path) not in queue.display_name


def _three_annotators(store: LabelStore, seed: int, masks, types=("foreign body",) * 3):
    hist, cur = pair(seed)
    for name, m, t in zip(("ann", "bob", "cat"), masks, types):
        store.save(hist, cur, m, name, t)
    return content_hash(hist, cur)


def test_reviews_round_trip_and_each_policy_gives_the_expected_rows(tmp_path):
    store = LabelStore(tmp_path / "labels")
    shape = (30, 40)
    m1 = [box(shape, 5, 15, 5, 15), box(shape, 5, 15, 7, 17), box(shape, 6, 16, 5, 15)]  # good agreement
    m2 = [box(shape, 0, 10, 0, 10), box(shape, 20, 30, 30, 40), box(shape, 5, 15, 5, 15)]  # none
    m3 = [box(shape, 2, 12, 2, 12), box(shape, 2, 12, 3, 13), box(shape, 3, 13, 2, 12)]
    h1 = _three_annotators(store, 1, m1)
    h2 = _three_annotators(store, 2, m2, ("foreign body", "oil leak", "other"))
    h3 = _three_annotators(store, 3, m3)
    hist4, cur4 = pair(4)
    store.save(hist4, cur4, m1[0], "ann", "other")  # a pair with one label
    early = store.save(hist4, cur4, m1[1], "bob", "other")
    store.save(hist4, cur4, m1[2], "bob", "other")  # bob changed his mind: his earlier row is superseded
    h4 = content_hash(hist4, cur4)

    reviews = ReviewQueue(store, k=3)
    order = [p.content_hash for p, _ in reviews.waiting()]
    assert order[0] == h2 and set(order) == {h1, h2, h3}  # lowest agreement first; h4 has two labels < k
    v2 = reviews.next_for("rita")
    assert v2.content_hash == h2 and v2.agreement.mask == pytest.approx(
        np.mean([hand_iou(a, b) for a, b in ((m2[0], m2[1]), (m2[0], m2[2]), (m2[1], m2[2]))]))
    assert v2.agreement.type == 0.0 and [a.annotator for a in v2.answers] == ["ann", "bob", "cat"]
    rejected = reviews.decide(h2, v2.row_ids, "rita", "name", "reject", note="nobody agrees")
    v1 = reviews.next_for("rita")
    assert v1.content_hash in (h1, h3)
    accepted = reviews.decide(h1, reviews.view(h1).row_ids, "rita", "name", "accept")
    fixed = box(shape, 2, 12, 2, 13)
    corrected = reviews.decide(h3, reviews.view(h3).row_ids, "rita", "name", "correct", fixed, "scratch / crack")
    assert reviews.waiting() == []

    # The review rows round-trip through the dataset as written.
    ds = datasets.load_dataset(str(tmp_path / "labels"), split="train", cache_dir=str(tmp_path / "c1"))
    rows = {r["id"]: r for r in ds}
    assert len(rows) == 15 and ds.features == FEATURES  # 9 + 3 answers, 3 reviews
    for row, verdict, mask in ((rejected, "reject", consensus_mask(m2)), (accepted, "accept", consensus_mask(m1)),
                               (corrected, "correct", fixed)):
        r = rows[row.id]
        assert (r["kind"], r["verdict"], r["annotator"], r["identity"]) == ("review", verdict, "rita", "name")
        assert np.array_equal(np.array(r["mask"]) > 0, mask)
        assert np.array_equal(np.array(r["current"]), pair({h1: 1, h2: 2, h3: 3}[r["content_hash"]])[1])
    assert rows[rejected.id]["note"] == "nobody agrees" and rows[corrected.id]["anomaly_type"] == "scratch / crack"

    labels = tmp_path / "labels"
    latest = parse_spec(f"hf:{labels}")
    assert len(latest) == 11 and early.id not in latest.names  # 3 + 3 + 3 + 2 answers
    cons = parse_spec(f"hf:{labels}?policy=consensus&k=3")
    assert sorted(cons.key(i) for i in range(len(cons))) == sorted([h1, h2, h3])
    assert cons.selection.left_out == {"fewer than k=3 labels": 1}
    i1 = [cons.key(i) for i in range(len(cons))].index(h1)
    assert np.array_equal(cons[i1].mask, consensus_mask(m1))
    acc = parse_spec(f"hf:{labels}?policy=accepted")
    assert sorted(acc.names) == sorted([accepted.id, corrected.id])
    assert acc.selection.left_out == {"rejected by a reviewer": 1, "not reviewed": 1}
    assert np.array_equal(acc[acc.names.index(corrected.id)].mask, fixed)
    agree = parse_spec(f"hf:{labels}?policy=consensus&k=2&min_agreement=0.5")
    assert sorted(agree.key(i) for i in range(len(agree))) == sorted([h1, h3, h4])
    assert agree.selection.left_out == {"agreement below 0.5": 1}
    with pytest.raises(UserError, match="does not apply to the accepted policy"):
        parse_spec(f"hf:{labels}?policy=accepted&min_agreement=0.5")
    with pytest.raises(UserError, match="unknown option"):
        parse_spec(f"hf:{labels}?polcy=latest")


def test_adapt_reports_what_each_policy_kept(tmp_path):
    import torch

    from anodfdnet.checkpoint import read_info, save_checkpoint
    from anodfdnet.models import ModelConfig, build_model
    from anodfdnet.adaptation import AdaptConfig, adapt

    store = LabelStore(tmp_path / "labels")
    shape = (32, 32)
    hashes = []
    for seed in range(4):
        hist, cur = pair(seed, 32, 32)
        for name, dx in (("ann", 0), ("bob", 1), ("cat", 2)):
            store.save(hist, cur, box(shape, 5, 15, 5 + dx, 15 + dx), name, "foreign body")
        hashes.append(content_hash(hist, cur))
    hist, cur = pair(9, 32, 32)
    store.save(hist, cur, box(shape, 1, 4, 1, 4), "ann", "other")  # one label only
    reviews = ReviewQueue(store, k=3)
    reviews.decide(hashes[0], reviews.view(hashes[0]).row_ids, "rita", "name", "accept")
    torch.manual_seed(0)
    init = tmp_path / "start.safetensors"
    save_checkpoint(init, build_model(ModelConfig.from_preset("lite", 0)), {"eval_size": 32})
    out = tmp_path / "run"
    adapt(AdaptConfig(labels=str(tmp_path / "labels"), out=str(out), init=str(init), steps=1, budget_minutes=None, size=32,
                      device="cpu", progress=False, labels_policy="consensus", labels_per_pair=3))
    report = json.loads((out / "report.json").read_text())
    assert report["labels_policy"] == "consensus" and report["pairs"] == 4
    assert report["labels_spec"] == f"hf:{tmp_path / 'labels'}?policy=consensus&k=3"
    p = report["label_policies"]
    assert (p["latest"]["pairs_kept"], p["latest"]["items"]) == (5, 13)
    assert (p["consensus"]["pairs_kept"], p["consensus"]["left_out"]) == (4, {"fewer than k=3 labels": 1})
    assert (p["accepted"]["pairs_kept"], p["accepted"]["left_out"]) == (1, {"not reviewed": 4})
    assert read_info(out / "adapted.safetensors").meta["labels_spec"] == report["labels_spec"]
    # The accepted policy keeps one pair: it is adapted to, but nothing can hold it out, so nothing is chosen.
    one = adapt(AdaptConfig(labels=str(tmp_path / "labels"), out=str(tmp_path / "run2"), init=str(init), steps=1,
                            budget_minutes=None, size=32, device="cpu", progress=False, labels_policy="accepted"))
    assert one["pairs"] == 1 and one["choice"] == "before" and one["best"] is None


def test_v1_shards_stay_readable_and_compaction_upgrades_them_and_refreshes_the_card(tmp_path, capsys):
    from annotate.__main__ import main

    labels = tmp_path / "labels"
    store = LabelStore(labels)
    hist, cur = pair(0)
    row = store.validate(hist, cur, box((30, 40), 5, 15, 5, 15), "old timer", "foreign body")
    v1 = {k: v for k, v in row.items() if k in V1_FEATURES}
    v1.update(id="a" * 32, created_at="2024-01-01T00:00:00.000000Z", schema_version=1)
    (labels / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([v1], schema=V1_FEATURES.arrow_schema), labels / "data" / "20240101T000000000000Z-old.parquet")
    (labels / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n\n# old card\n")
    new = LabelStore(labels).save(hist, cur, box((30, 40), 5, 15, 6, 16), "newcomer", "foreign body")
    assert "dtype: float32" in (labels / "README.md").read_text()  # the card now describes schema 2
    src = parse_spec(f"hf:{labels}?policy=consensus&k=2")
    assert len(src) == 1 and src.row(0)["annotator"] == "old timer"
    latest = parse_spec(f"hf:{labels}")
    assert latest.names == ["a" * 32, new.id]
    assert datasets.load_dataset(str(labels), split="train", cache_dir=str(tmp_path / "c"))["identity"] == [None, "name"]

    r = compact(LabelStore(labels), max_rows=10)
    assert r.removed == 2 and len(LabelStore(labels).shards()) == 1
    table = pq.read_table(LabelStore(labels).shards()[0])
    assert table.column("identity").to_pylist() == ["name", "name"] and table.column("schema_version").to_pylist() == [1, 2]
    card = (labels / "README.md").read_text()
    assert "license: cc-by-4.0" in card and "## Summary" in card and "2 label rows; 1 pairs labelled" in card
    assert parse_spec(f"hf:{labels}").names == ["a" * 32, new.id]
    assert main(["status", "--labels", str(labels), "--k", "2"]) == 0
    out = capsys.readouterr().out
    assert "1 with k=2 labels" in out and "old timer [name]: 1 pairs" in out and "mean mask IoU" in out


def test_export_writes_the_policy_as_an_ab_folder(tmp_path, capsys):
    from annotate.__main__ import main

    store = LabelStore(tmp_path / "labels")
    shape = (30, 40)
    masks = [box(shape, 5, 15, 5, 15), box(shape, 5, 15, 7, 17), box(shape, 6, 16, 5, 15)]
    h = _three_annotators(store, 1, masks)
    _three_annotators(store, 2, masks[:2] + [box(shape, 0, 0, 0, 0)], ("other", "other", "no anomaly"))
    out = tmp_path / "export"
    assert main(["export", "--format", "ab", str(out), "--labels", str(tmp_path / "labels"), "--labels-policy", "consensus",
                 "--k", "3"]) == 0
    assert "wrote 2 pairs" in capsys.readouterr().out
    ab = parse_spec(f"ab:{out}")
    hf = parse_spec(f"hf:{tmp_path / 'labels'}?policy=consensus&k=3")
    assert sorted(ab.names) == sorted(hf.key(i) for i in range(len(hf)))  # uploads record no source pair: the hash
    for i in range(len(hf)):
        j = ab.names.index(hf.key(i))
        assert np.array_equal(ab[j].mask, hf[i].mask) and np.array_equal(ab[j].current, hf[i].current)
        assert np.array_equal(ab[j].history, hf[i].history)
    k = [hf.key(i) for i in range(len(hf))].index(h)
    assert np.array_equal(hf[k].mask, consensus_mask(masks))
    assert main(["export", "--format", "ab", str(out), "--labels", str(tmp_path / "labels")]) == 2
    assert "not an empty folder" in capsys.readouterr().err


def test_export_names_files_after_the_source_pair(tmp_path, capsys):
    from annotate.__main__ import main

    store = LabelStore(tmp_path / "labels")
    shape = (30, 40)
    h1, c1 = pair(1)
    h2, c2 = pair(2)
    h3, c3 = pair(3)
    store.save(h1, c1, box(shape, 5, 15, 5, 15), "ann", "foreign body", source="ab:/srv/queue#bolt 07")
    store.save(h2, c2, box(shape, 5, 15, 5, 15), "ann", "foreign body", source="ab:/srv/other#bolt 07")  # same name
    store.save(h3, c3, box(shape, 5, 15, 5, 15), "ann", "foreign body", source="upload")
    store.save(h3, c3, box(shape, 6, 16, 5, 15), "bob", "foreign body", source="upload")  # the same pair again
    store.save(h1, c1, box(shape, 0, 0, 0, 0), "evil", "no anomaly", source="x#../../etc/passwd")
    out = tmp_path / "export"
    assert main(["export", "--format", "ab", str(out), "--labels", str(tmp_path / "labels")]) == 0
    hashes = {content_hash(h, c) for h, c in ((h1, c1), (h2, c2), (h3, c3))}
    names = sorted(p.stem for p in (out / "B").iterdir())
    h2_8 = content_hash(h2, c2)[:8]
    h3 = content_hash(h3, c3)
    assert names == sorted(["bolt_07", f"bolt_07-{h2_8}", h3, f"{h3}-2", "_.._etc_passwd"]), names
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == sorted(f"{n}.png" for n in names * 3)
    ab = parse_spec(f"ab:{out}")
    assert np.array_equal(ab[ab.names.index("bolt_07")].current, c1)
    assert np.array_equal(ab[ab.names.index(f"bolt_07-{h2_8}")].current, c2)
    assert len(hashes) == 3


_REVIEWER = """
import sys, numpy as np
sys.path.insert(0, {root!r})
from annotate.review import ReviewQueue
from annotate.store import LabelStore
store = LabelStore({labels!r})
queue = ReviewQueue(store, k=1)
h = sys.argv[1]
rows = queue.view(h).row_ids
i = 0
while True:
    m = np.zeros((192, 192), bool); m[: 1 + i % 50, :9] = True
    row = queue.decide(h, rows, "rita", "name", "correct", m, "other", note=str(i))
    print(row.id, flush=True)
    i += 1
"""


def test_sigkill_during_review_saves_loses_no_confirmed_review(tmp_path):
    labels = tmp_path / "labels"
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (192, 192, 3), dtype=np.uint8)
    label = LabelStore(labels).save(img, img[::-1].copy(), box((192, 192), 3, 9, 3, 9), "ann", "other")
    script = tmp_path / "reviewer.py"
    script.write_text(_REVIEWER.format(root=str(ROOT), labels=str(labels)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), label.content_hash], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    confirmed = []
    deadline = time.monotonic() + 120
    while len(confirmed) < 5 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        confirmed.append(line.strip())
    caught = False
    while not caught and time.monotonic() < deadline:  # kill while a review shard is being written
        caught = any(f.startswith(".tmp-") for f in os.listdir(labels / "data"))
        time.sleep(0.0005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    confirmed += proc.stdout.read().split()
    assert len(confirmed) >= 5, proc.stderr.read()
    assert caught, "the reviewer was never seen mid-write"
    store = LabelStore(labels)  # start-up removes the killed writer's temporary file (unless it was killed
    left = [f for f in os.listdir(labels / "data") if f.startswith(".tmp-")]  # between creating and locking it:
    assert all((labels / "data" / f).stat().st_size == 0 for f in left)  # then it is empty, left for 10 s)
    reviews = [r for r in store.snapshot().rows if r.kind == "review"]
    assert set(confirmed) <= {r.id for r in reviews} and len(reviews) in (len(confirmed), len(confirmed) + 1)
    latest = max(reviews, key=lambda r: r.order)
    acc = parse_spec(f"hf:{labels}?policy=accepted")
    assert acc.names == [latest.id]  # the latest verdict counts, and it reads whole
    assert acc[0].mask.shape == (192, 192)


def test_the_decoded_pair_cache_keeps_each_annotators_mask_and_a_growing_consensus_apart(tmp_path):
    from anodfdnet.data.pair_cache import cached

    store = LabelStore(tmp_path / "labels")
    shape = (30, 40)
    hist, cur = pair(0)
    a, b, c = box(shape, 5, 15, 5, 15), box(shape, 0, 5, 0, 5), box(shape, 5, 15, 6, 16)
    store.save(hist, cur, a, "ann", "other")
    store.save(hist, cur, b, "bob", "other")
    root = tmp_path / "cache"
    latest = cached(parse_spec(f"hf:{tmp_path / 'labels'}"), root)
    assert latest.key(0) == latest.key(1)  # one pair, two answers
    for _ in range(2):  # decoded, then from the cache
        assert np.array_equal(latest[0].mask, a) and np.array_equal(latest[1].mask, b)
    spec = f"hf:{tmp_path / 'labels'}?policy=consensus&k=2"
    assert np.array_equal(cached(parse_spec(spec), root)[0].mask, consensus_mask([a, b]))
    store.save(hist, cur, c, "cat", "other")  # the consensus of the same pair, under the same spec, changes
    assert np.array_equal(cached(parse_spec(spec), root)[0].mask, consensus_mask([a, b, c]))
