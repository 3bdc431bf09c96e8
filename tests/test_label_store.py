"""The label store on a real dataset on disk: round trips, concurrency, crashes, schema, compaction."""
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import datasets
import huggingface_hub.constants
import numpy as np
import pytest
from PIL import Image

from annotate.store import LabelStore, SchemaError
from anodfdnet.data import parse_spec
from anodfdnet.errors import UserError
from anodfdnet.data.labels import FEATURES, SCHEMA_VERSION, content_hash

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _private_datasets_cache(tmp_path, monkeypatch):
    """load_dataset converts to Arrow in a cache; keep it in the test's folder."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


def make_pair(seed: int, h: int = 37, w: int = 53):
    rng = np.random.default_rng(seed)
    hist = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    cur = hist.copy()
    mask = np.zeros((h, w), bool)
    y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
    cur[y:y + 6, x:x + 7] = (250, 20, 20)
    mask[y:y + 6, x:x + 7] = True
    return hist, cur, mask


def load_rows(root: Path, tmp_path: Path):
    """``datasets.load_dataset(ROOT)`` as a user calls it, with a fresh cache each time (datasets 5.2
    keys this call's cache on the card's pattern, not the shard list, so a reused cache is stale)."""
    return datasets.load_dataset(str(root), split="train", cache_dir=str(tmp_path / f"hf-cache-{uuid.uuid4().hex}"))


def shard_files(root: Path):
    d = root / "data"
    return sorted(os.listdir(d)) if d.is_dir() else []


def test_round_trip_is_pixel_exact(tmp_path):
    store = LabelStore(tmp_path / "labels")
    hist, cur, mask = make_pair(0)
    hist2, cur2, _ = make_pair(1, 24, 31)
    a = store.save(hist, cur, mask, "Ada Lovelace", "foreign body", "bolt on the rail", "upload", "lite-d2")
    b = store.save(Image.fromarray(hist2), Image.fromarray(cur2), np.zeros((24, 31), np.uint8), "bob", "no anomaly")
    assert (a.size, b.size) == (1, 2) and a.id != b.id
    assert a.content_hash == content_hash(hist, cur)

    ds = load_rows(tmp_path / "labels", tmp_path)
    assert ds.features == FEATURES and len(ds) == 2
    rows = {r["id"]: r for r in ds}
    r = rows[a.id]
    assert np.array_equal(np.array(r["history"]), hist)
    assert np.array_equal(np.array(r["current"]), cur)
    assert np.array_equal(np.array(r["mask"]) > 0, mask) and set(np.unique(np.array(r["mask"]))) == {0, 255}
    assert (r["annotator"], r["anomaly_type"], r["note"], r["source"], r["model_checkpoint"]) == (
        "Ada Lovelace", "foreign body", "bolt on the rail", "upload", "lite-d2")
    assert r["schema_version"] == SCHEMA_VERSION and r["content_hash"] == a.content_hash
    assert r["created_at"].endswith("Z") and r["created_at"][:4].isdigit()
    assert not np.array(rows[b.id]["mask"]).any()

    src = parse_spec(f"hf:{tmp_path / 'labels'}")
    assert len(src) == 2 and src.names == [a.id, b.id]  # ordered by created_at
    pair = src[0]
    assert np.array_equal(pair.history, hist) and np.array_equal(pair.current, cur) and np.array_equal(pair.mask, mask)
    assert pair.mask.dtype == bool and src.key(0) == a.content_hash and src.key(1) == b.content_hash
    assert src[1].mask.shape == (24, 31) and not src[1].mask.any()

    card = (tmp_path / "labels" / "README.md").read_text()
    assert card.startswith("---\n") and "path: data/*.parquet" in card and "license:" in card and "dtype: image" in card
    assert store.labelled_hashes() == {a.content_hash, b.content_hash}


def test_bad_specs_are_user_errors(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="no labels yet"):
        (tmp_path / "empty").mkdir()
        parse_spec(f"hf:{tmp_path / 'empty'}")
    with pytest.raises(UserError, match="neither a label folder nor a Hub dataset id"):
        parse_spec(f"hf:{tmp_path / 'missing' / 'deeper'}")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 at start-up
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="could not load the Hub dataset 'someone/labels'.*Offline"):
        parse_spec("hf:someone/labels")


_SAVER = """
import sys, numpy as np
sys.path.insert(0, {root!r})
from annotate.store import LabelStore
store = LabelStore({labels!r})
seed, n, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    rng = np.random.default_rng(seed * 1000 + i)
    img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), bool); mask[: 1 + i % 7, :5] = True
    row = store.save(img, img[::-1].copy(), mask, f"proc{{seed}}", "other", source=f"p{{seed}}-{{i}}")
    print(row.id, flush=True)
"""


def _saver(tmp_path: Path, labels: Path, seed: int, n: int, size: int = 24) -> subprocess.Popen:
    script = tmp_path / "saver.py"
    script.write_text(_SAVER.format(root=str(ROOT), labels=str(labels)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    return subprocess.Popen([sys.executable, str(script), str(seed), str(n), str(size)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_fifty_concurrent_saves_from_threads_and_processes(tmp_path):
    labels = tmp_path / "labels"
    procs = [_saver(tmp_path, labels, seed, n) for seed, n in ((1, 13), (2, 12))]  # 25 rows from 2 processes
    store = LabelStore(labels)
    ids, errors = [], []

    def one(i):
        try:
            hist, cur, mask = make_pair(100 + i)
            ids.append(store.save(hist, cur, mask, f"thread {i}", "scratch / crack").id)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(25)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        ids += out.split()
    assert not errors
    assert len(ids) == len(set(ids)) == 50
    assert LabelStore(labels).size() == 50
    ds = load_rows(labels, tmp_path)
    assert len(ds) == 50 and set(ds["id"]) == set(ids)
    assert len(parse_spec(f"hf:{labels}")) == 50


def test_writer_killed_mid_save_loses_no_completed_row(tmp_path):
    labels = tmp_path / "labels"
    proc = _saver(tmp_path, labels, seed=7, n=10_000, size=192)  # big enough that saves take a while
    saved = []
    deadline = time.monotonic() + 60
    while len(saved) < 6 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        saved.append(line.strip())
    # Kill while a shard is being written: poll for the writer's temporary file.
    caught = False
    while not caught and time.monotonic() < deadline:
        caught = any(f.startswith(".tmp-") for f in shard_files(labels))
        time.sleep(0.0005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    for line in proc.stdout.read().split():  # ids printed before the kill landed
        saved.append(line)
    assert len(saved) >= 6, proc.stderr.read()
    assert caught, "the writer was never seen mid-write"

    ds = load_rows(labels, tmp_path)
    assert set(saved) <= set(ds["id"])
    assert len(ds) in (len(saved), len(saved) + 1)  # a save may have finished without printing its id
    assert all(f.endswith(".parquet") or f.startswith(".tmp-") for f in shard_files(labels))
    assert len(parse_spec(f"hf:{labels}")) == len(ds)
    store = LabelStore(labels)
    store.save(*make_pair(3), "after", "other")  # the store goes on working
    assert store.size() == len(ds) + 1


def test_shard_with_another_schema_is_refused(tmp_path):
    store = LabelStore(tmp_path / "labels")
    hist, cur, mask = make_pair(0)
    good = store.validate(hist, cur, mask, "ann", "oil leak")
    row = {"id": "x" * 32, "created_at": "2025-01-01T00:00:00.000000Z", **good}
    wrong = datasets.Features({**FEATURES, "anomaly_type": datasets.ClassLabel(names=["oil leak", "other"])})
    ds = datasets.Dataset.from_dict({k: [row[k]] for k in FEATURES}, features=wrong)
    with pytest.raises(SchemaError, match="anomaly_type"):
        store.write_shard(ds, "bad.parquet")
    missing = datasets.Dataset.from_dict({k: [row[k]] for k in FEATURES if k != "note"},
                                         features=datasets.Features({k: v for k, v in FEATURES.items() if k != "note"}))
    with pytest.raises(SchemaError, match="missing note"):
        store.write_shard(missing, "bad.parquet")
    assert shard_files(tmp_path / "labels") == []
    store.write_shard(datasets.Dataset.from_dict({k: [row[k]] for k in FEATURES}, features=FEATURES), "good.parquet")
    assert store.size() == 1


@pytest.mark.parametrize("change, message", [
    ({"history": b"not an image"}, "history image"),
    ({"current": "/nonexistent/cur.png"}, "does not exist"),
    ({"mask": np.zeros((5, 5), bool)}, "must match"),
    ({"mask": np.full((37, 53), 128, np.uint8)}, "not binary"),
    ({"annotator": ""}, "annotator"),
    ({"annotator": "x" * 65}, "at most 64"),
    ({"annotator": "<script>alert(1)</script>"}, "only letters"),
    ({"anomaly_type": "dent"}, "not an anomaly type"),
    ({"anomaly_type": "no anomaly"}, "not empty"),
    ({"mask": np.zeros((37, 53), bool)}, "mask is empty"),
    ({"note": "n" * 5000}, "note"),
])
def test_rejected_save_says_why_and_writes_nothing(tmp_path, change, message):
    hist, cur, mask = make_pair(0)
    args = {"history": hist, "current": cur, "mask": mask, "annotator": "ann", "anomaly_type": "loose part", "note": ""}
    args.update(change)
    store = LabelStore(tmp_path / "labels")
    with pytest.raises(UserError, match=message):
        store.save(**args)
    assert shard_files(tmp_path / "labels") == [] and store.size() == 0


def test_compaction_keeps_every_row_exactly_once(tmp_path, monkeypatch):
    labels = tmp_path / "labels"
    store = LabelStore(labels)
    ids = [store.save(*make_pair(i), f"a{i}", "other").id for i in range(7)]
    report = store.compact(max_rows=3)
    assert len(report.merged) == 2 and report.removed == 6 and report.rows == 6
    assert len(store.shards()) == 3  # 3 + 3 merged, the last one left alone
    ds = load_rows(labels, tmp_path)
    assert sorted(ds["id"]) == sorted(ids)
    src = parse_spec(f"hf:{labels}")
    assert src.names == ids  # same order as before compaction (by created_at)
    assert np.array_equal(src[4].current, make_pair(4)[1])

    # A crash after the merged shard is in place but before the small shards are gone: rows are
    # duplicated on disk, never lost; the reader de-duplicates and recovery removes the leftovers.
    ids += [store.save(*make_pair(10 + i), "b", "other").id for i in range(3)]
    monkeypatch.setattr(LabelStore, "_remove_sources", lambda self, paths: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        store.compact(max_rows=100)
    monkeypatch.undo()
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    raw = load_rows(labels, tmp_path)
    assert len(raw) > len(ids) and set(raw["id"]) == set(ids)
    assert sorted(parse_spec(f"hf:{labels}").names) == sorted(ids)
    fresh = LabelStore(labels)
    assert fresh.size() == len(ids)
    assert fresh.recover() == 6 and len(fresh.shards()) == 1
    assert sorted(load_rows(labels, tmp_path)["id"]) == sorted(ids)


def test_compact_and_status_commands(tmp_path, capsys, monkeypatch):
    from annotate.__main__ import main

    monkeypatch.delenv("HF_TOKEN", raising=False)
    labels = tmp_path / "labels"
    store = LabelStore(labels)
    ids = [store.save(*make_pair(i), "cli", "other").id for i in range(4)]
    assert main(["compact", "--labels", str(labels), "--max-rows", "10"]) == 0
    assert "merged 4 shards into 1 (4 rows); 4 -> 1 shards, 4 label rows" in capsys.readouterr().out
    assert main(["status", "--labels", str(labels)]) == 0
    out = capsys.readouterr().out
    assert "4 rows in 1 shards" in out and "Hub sync is off" in out and "4 pairs labelled; 4 with k=1 labels" in out
    assert sorted(parse_spec(f"hf:{labels}").names) == sorted(ids)
    assert main(["compact", "--labels", str(tmp_path / "nothing")]) == 2
    assert "holds no labels" in capsys.readouterr().err


# --- One corrupt shard never stops the store (issue 22) --------------------------------------------------


BAD = {"20000101T000000000000Z-truncated.parquet": "not a readable Parquet file",
       "20000101T000000000001Z-other-schema.parquet": "not in the label schema (missing"}


def damaged_folder(tmp_path: Path, name: str, rows: int = 3) -> tuple[Path, list[str]]:
    """A label folder with ``rows`` good rows, a shard cut in half and a Parquet shard of another schema
    (what a crashed copy tool or a stray export leaves in data/)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    labels = tmp_path / name
    store = LabelStore(labels)
    ids = [store.save(*make_pair(i), "ann", "other").id for i in range(rows)]
    good = store.shards()[0]
    (labels / "data" / "20000101T000000000000Z-truncated.parquet").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    pq.write_table(pa.table({"id": ["y" * 32], "annotator": [None], "score": [0.5]}),
                   labels / "data" / "20000101T000000000001Z-other-schema.parquet")
    return labels, ids


def assert_set_aside(labels: Path, text: str) -> None:
    """Both bad files are in quarantine/ (not data/), and ``text`` names each with why."""
    assert {p.name for p in (labels / "quarantine").glob("*.parquet")} == set(BAD)
    assert not set(BAD) & {p.name for p in (labels / "data").glob("*.parquet")}
    for name, why in BAD.items():
        assert name in text and why in text, (name, text)


def test_status_and_saving_go_on_with_a_corrupt_and_a_wrong_schema_shard(tmp_path, capsys):
    from annotate.__main__ import main

    labels, ids = damaged_folder(tmp_path, "labels")
    assert main(["status", "--labels", str(labels)]) == 0
    out = capsys.readouterr().out
    assert "3 rows in 3 shards" in out and "3 pairs labelled" in out and "None" not in out
    assert_set_aside(labels, out)
    assert (labels / "quarantine" / f"{next(iter(BAD))}.why").read_text().startswith("not a readable Parquet file")
    store = LabelStore(labels)
    new = store.save(*make_pair(9), "after", "other")  # saving goes on
    assert store.size() == 4 and sorted(parse_spec(f"hf:{labels}").names) == sorted([*ids, new.id])
    assert main(["status", "--labels", str(labels)]) == 0  # later runs still list what was moved aside
    assert_set_aside(labels, capsys.readouterr().out)


def test_compact_sets_a_corrupt_shard_aside_and_names_it(tmp_path, capsys):
    from annotate.__main__ import main

    labels, ids = damaged_folder(tmp_path, "labels")
    assert main(["compact", "--labels", str(labels), "--max-rows", "10"]) == 0
    out = capsys.readouterr().out
    assert "merged 3 shards into 1 (3 rows)" in out
    assert_set_aside(labels, out)
    assert sorted(parse_spec(f"hf:{labels}").names) == sorted(ids)


def test_export_and_the_hf_reader_set_a_corrupt_shard_aside_and_name_it(tmp_path, capsys, caplog):
    from annotate.__main__ import main

    labels, ids = damaged_folder(tmp_path, "labels")
    assert main(["export", "--format", "ab", str(tmp_path / "out"), "--labels", str(labels)]) == 0
    out = capsys.readouterr().out
    assert "wrote 3 pairs" in out and len(os.listdir(tmp_path / "out" / "label")) == 3
    assert_set_aside(labels, out)
    # The reader evaluate, train and retrain use (hf:DIR): the warning in the log names each file.
    labels2, ids2 = damaged_folder(tmp_path, "labels2")
    with caplog.at_level("WARNING", logger="anodfdnet.data.label_files"):
        src = parse_spec(f"hf:{labels2}?policy=consensus&k=1")
    assert len(src) == 3 and {n for n, _ in src.quarantined} == set(BAD)
    assert_set_aside(labels2, caplog.text)


def test_evaluate_on_hf_labels_with_a_corrupt_shard_names_it_and_runs(tmp_path):
    import torch

    from anodfdnet.checkpoint import save_checkpoint
    from anodfdnet.models import ModelConfig, build_model

    labels, _ = damaged_folder(tmp_path, "labels")
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(ckpt, build_model(ModelConfig.from_preset("lite", 0)), {"note": "untrained stand-in for tests"})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_DATASETS_CACHE": str(tmp_path / "hf-cache")}
    r = subprocess.run([sys.executable, "-m", "anodfdnet", "evaluate", "--checkpoint", str(ckpt), "--data", f"hf:{labels}",
                        "--device", "cpu", "--size", "64", "--align", "off"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert_set_aside(labels, r.stderr)


def test_a_damaged_page_behind_a_good_footer_is_found_when_read(tmp_path, caplog):
    """A shard whose footer reads but whose mask column's page is damaged: the store moves it aside when a
    mask of it is read (saying so, naming it), and the hf: reader when its load fails."""
    import pyarrow.parquet as pq

    def damage(path: Path) -> None:
        rg = pq.ParquetFile(path).metadata.row_group(0)
        off = next(rg.column(i).data_page_offset for i in range(rg.num_columns) if rg.column(i).path_in_schema == "mask.bytes")
        b = bytearray(path.read_bytes())
        b[off:off + 24] = b"\xff" * 24
        path.write_bytes(bytes(b))

    labels = tmp_path / "labels"
    store = LabelStore(labels)
    rows = [store.save(*make_pair(i), "ann", "other") for i in range(3)]
    damage(labels / "data" / rows[1].shard)
    fresh = LabelStore(labels)
    assert fresh.size() == 3  # its footer and index columns read
    with pytest.raises(UserError, match=rf"label shard data/{rows[1].shard} is unreadable .* moved aside to quarantine/"):
        fresh.masks([rows[1].id])
    assert fresh.size() == 2 and [q.name for q in fresh.quarantined()] == [rows[1].shard]
    (labels / "quarantine" / rows[1].shard).rename(labels / "data" / rows[1].shard)  # back, for the reader
    with caplog.at_level("WARNING", logger="anodfdnet.data.label_files"):
        src = parse_spec(f"hf:{labels}")
    assert sorted(src.names) == sorted([rows[0].id, rows[2].id]) and rows[1].shard in caplog.text


@pytest.mark.parametrize("argv", [["status"], ["compact"], ["export", "--format", "ab", "OUT"]])
@pytest.mark.parametrize("k", ["0", "-1", "two"])
def test_k_below_one_is_refused_everywhere(tmp_path, capsys, argv, k):
    from annotate.__main__ import main

    labels, _ = damaged_folder(tmp_path, "labels", rows=1)
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in argv]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--labels", str(labels), "--k", k])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--k" in err and ("at least 1" in err or "not a whole number" in err), err


def test_retrain_labels_per_pair_below_one_is_refused(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "anodfdnet", "retrain", "--labels", str(tmp_path), "--from", "x", "--out",
                        str(tmp_path / "o"), "--labels-policy", "consensus", "--labels-per-pair", "0"],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 2 and "k must be at least 1" in r.stderr and "Traceback" not in r.stderr, r.stderr


# --- Issue 10: what is stored is what training reads; a pair saved again; killed writers ---------------


def test_a_history_of_another_size_is_stored_as_training_reads_it(tmp_path):
    from anodfdnet.data.images import resize_rgb

    store = LabelStore(tmp_path / "labels")
    hist, cur, mask = make_pair(0, 37, 53)
    small = np.array(Image.fromarray(hist).resize((26, 18)))
    row = store.save(small, cur, mask, "ann", "loose part")
    assert row.history_resized == (26, 18)
    r = load_rows(tmp_path / "labels", tmp_path)[0]
    stored = np.array(r["history"])
    assert stored.shape == cur.shape and np.array_equal(stored, resize_rgb(small, cur.shape[:2]))
    pair = parse_spec(f"hf:{tmp_path / 'labels'}")[0]
    assert np.array_equal(pair.history, stored)  # the reader has nothing left to resize
    assert row.content_hash == content_hash(stored, cur) == store.pair_hash(small, cur)
    assert "resized to it before it was stored" in (tmp_path / "labels" / "README.md").read_text()
    assert store.save(hist, cur, mask, "ann", "loose part").history_resized is None


def test_a_pair_saved_again_by_its_annotator_replaces_the_earlier_answer_for_training(tmp_path):
    store = LabelStore(tmp_path / "labels")
    hist, cur, mask = make_pair(0)
    other = np.zeros_like(mask)
    other[:4, :4] = True
    first = store.save(hist, cur, mask, "alice", "loose part")
    assert first.replaces == ()
    bob = store.save(hist, cur, other, "bob", "foreign body")
    second = store.save(hist, cur, other, "alice", "foreign body", "changed my mind")
    assert second.replaces == (first.id,) and bob.replaces == ()
    third = store.save(hist, cur, mask, " alice ", "loose part")  # the name as stored (stripped)
    assert set(third.replaces) == {first.id, second.id}
    unrelated = store.save(*make_pair(1), "alice", "other")
    assert unrelated.replaces == ()

    assert store.size() == 5  # append-only: every row is kept
    assert len(load_rows(tmp_path / "labels", tmp_path)) == 5
    src = parse_spec(f"hf:{tmp_path / 'labels'}")  # training: each annotator's latest answer per pair
    assert src.names == [bob.id, third.id, unrelated.id]
    assert np.array_equal(src[1].mask, mask) and np.array_equal(src[0].mask, other)
    assert "training uses that annotator's latest row" in (tmp_path / "labels" / "README.md").read_text()


def test_latest_per_annotator_is_a_plain_function_of_the_columns():
    from anodfdnet.data.labels import latest_per_annotator

    ids = ["r1", "r2", "r3", "r4", "r5"]
    hashes = ["p", "p", "p", "q", "p"]
    who = ["a", "b", "a", "a", "a"]
    at = ["2025-01-01T00:00:01Z", "2025-01-01T00:00:02Z", "2025-01-01T00:00:03Z", "2025-01-01T00:00:00Z",
          "2025-01-01T00:00:03Z"]  # r3 and r5 at the same instant: the id breaks the tie
    assert latest_per_annotator(ids, hashes, who, at) == [3, 1, 4]
    assert latest_per_annotator([], [], [], []) == []


_HELD_WRITER = """
import sys, time, numpy as np
sys.path.insert(0, {root!r})
import pyarrow as pa
from annotate.store import LabelStore
from anodfdnet.data.labels import FEATURES
store = LabelStore({labels!r})
img = np.zeros((16, 16, 3), np.uint8)
row = store.validate(img, img, np.zeros((16, 16), bool), "w", "no anomaly")
row = {{"id": "f" * 32, "created_at": "2025-01-01T00:00:00.000000Z", **row}}
table = pa.Table.from_pylist([row], schema=FEATURES.arrow_schema)
store.write_shard(table, "held.parquet", before_publish=lambda: (print("writing", flush=True), time.sleep(600)))
"""


def test_temporary_files_of_killed_writers_are_removed_on_start_up_and_live_ones_kept(tmp_path):
    labels = tmp_path / "labels"
    LabelStore(labels).save(*make_pair(0), "ann", "other")
    script = tmp_path / "held.py"
    script.write_text(_HELD_WRITER.format(root=str(ROOT), labels=str(labels)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]
    try:
        for p in procs:  # both are mid-write: their temporary shards are on disk, written and locked
            assert p.stdout.readline().strip() == "writing", p.stderr.read()
        partials = [f for f in shard_files(labels) if f.startswith(".tmp-")]
        assert len(partials) == 2 and all(f.endswith(".parquet.partial") for f in partials)
        assert LabelStore(labels).remove_stale_temporaries() == 0  # never a save in progress
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(timeout=30)
        store = LabelStore(labels)  # start-up: the killed writer's file goes, the live one stays
        left = [f for f in shard_files(labels) if f.startswith(".tmp-")]
        assert len(left) == 1 and left[0] in partials
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait(timeout=30)
        LabelStore(labels)
        assert [f for f in shard_files(labels) if f.startswith(".tmp-")] == []
        assert store.size() == 1 and len(parse_spec(f"hf:{labels}")) == 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
