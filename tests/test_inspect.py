"""Batch inspection (``python -m anodfdnet inspect``): both engines, resuming, manifests, the results table, the
report in a real browser, and the way into the Label queue. Small generated pairs (96-128 px) and the shipped
effnet-d2 (an untrained lite model where it is absent)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from anodfdnet.checkpoint import save_checkpoint
from anodfdnet.cli import main as cli_main
from anodfdnet.errors import UserError
from anodfdnet.inspect import InspectConfig, inspect_archive
from anodfdnet.inspect import results as results_mod
from anodfdnet.inspect.results import SCHEMA, Journal, TableRefresh, count_results, ranked, write_table
from anodfdnet.models import ModelConfig, build_model

from conftest import needs_chromium, shipped_checkpoint, write_tiny_pairs

REPO = Path(__file__).resolve().parents[1]
PROB_ATOL = 1e-5  # local vs Ray: the same model on the same CPU path; measured identical to the last bit


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    shipped = shipped_checkpoint("effnet-d2")
    if shipped is not None:
        return str(shipped)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "lite-d0.safetensors"
    return str(save_checkpoint(path, build_model(ModelConfig.from_preset("lite", 0)), {"threshold": 0.5}))


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return write_tiny_pairs(tmp_path_factory.mktemp("pairs") / "tiny", n=6, size=96, seed=1)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, pairs, checkpoint):
    out = tmp_path_factory.mktemp("runs") / "local"
    return inspect_archive(InspectConfig(data=f"pairs:{pairs}", out=str(out), checkpoint=checkpoint, device="cpu"))


def read_results(run):
    """Every row of RUN/results.parquet in file order, read here without the library (alignment decoded)."""
    path = Path(run) / "results.parquet"
    rows = pq.read_table(path).to_pylist() if path.exists() else []
    for r in rows:
        r["alignment"] = json.loads(r["alignment"]) if r["alignment"] else {}
    return rows


def _by_id(rows):
    return {r["id"]: r for r in rows}


def _worst_first(rows):
    """The report's order, written out here: highest probability, then larger area, then id."""
    return sorted(rows, key=lambda r: (-r["score_max"], -r["area_pct"], r["id"]))


def test_a_run_writes_one_row_and_the_files_of_every_pair(local_run, pairs):
    rows = read_results(local_run.run)
    assert sorted(r["id"] for r in rows) == sorted(p.name for p in pairs.iterdir())
    assert local_run.done == 6 and local_run.skipped == 0 and not local_run.errors
    assert local_run.total == 6 and local_run.worst == _worst_first(rows)[0]
    for r in rows:
        for rel in (r["mask_png"], r["heat_png"]):
            assert (local_run.run / rel).is_file()
        mask = np.array(Image.open(local_run.run / r["mask_png"])) > 0
        assert mask.shape == (r["height"], r["width"]) == (96, 96)
        assert r["area_pct"] == pytest.approx(mask.mean() * 100, abs=1e-4)
        assert r["n_regions"] == len(r["regions"])
        for g in r["regions"]:  # the box lies in the image and holds its area
            assert 0 <= g["x"] < 96 and 0 <= g["y"] < 96 and g["area"] <= g["w"] * g["h"]
            assert 0 <= g["mean_prob"] <= g["max_prob"] <= r["score_max"] + 1e-6
        assert r["align_verdict"] and "aligned" in r["alignment"]


def test_model_lanes_on_a_cpu_give_the_same_rows_and_leave_torchs_threads_as_they_were(tmp_path, local_run, pairs, checkpoint):
    from anodfdnet.inference.predictor import cpu_lanes

    assert cpu_lanes(None, 2) == (2, 1) and cpu_lanes(None, 1) == (1, 1) and cpu_lanes(None, 16) == (2, 8)
    assert cpu_lanes(3, 16) == (3, 5) and cpu_lanes(4, 2) == (4, 1)
    before = torch.get_num_threads()
    lanes, threads = cpu_lanes(None, before)  # the default run (local_run) on this machine's threads
    assert f"{lanes} model lane{'s' if lanes > 1 else ''} x {threads} torch thread" in local_run.engine
    one = inspect_archive(InspectConfig(data=f"pairs:{pairs}", out=str(tmp_path / "one"), checkpoint=checkpoint, device="cpu",
                                        lanes=1))
    assert torch.get_num_threads() == before
    assert f"1 model lane x {before} torch thread" in one.engine
    ref = _by_id(read_results(local_run.run))
    for pid, row in _by_id(read_results(one.run)).items():
        assert row["n_regions"] == ref[pid]["n_regions"] and row["area_pct"] == pytest.approx(ref[pid]["area_pct"], abs=0.05)
        assert row["score_max"] == pytest.approx(ref[pid]["score_max"], abs=1e-3)
    with pytest.raises(UserError, match="--lanes is the local engine's"):
        inspect_archive(InspectConfig(data=f"pairs:{pairs}", out=str(tmp_path / "r"), engine="ray", lanes=2))
    for bad in (0, 65):
        with pytest.raises(UserError, match="--lanes must be 1 or more and at most 64"):
            inspect_archive(InspectConfig(data=f"pairs:{pairs}", out=str(tmp_path / "r"), lanes=bad))
    assert not (tmp_path / "r").exists()  # refused before the run folder is made


def test_results_parquet_has_the_schema_and_datasets_reads_it(local_run):
    path = local_run.run / "results.parquet"
    assert pq.read_schema(path).equals(SCHEMA, check_metadata=False)
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train")
    assert ds.num_rows == 6 and set(ds.column_names) == set(SCHEMA.names)
    region_fields = set(ds.features["regions"][0].keys()) if isinstance(ds.features["regions"], list) \
        else set(ds.features["regions"].feature.keys())
    assert region_fields == {"x", "y", "w", "h", "area", "max_prob", "mean_prob"}


def test_results_parquet_is_rewritten_less_often_after_a_slow_rewrite(tmp_path, local_run):
    """Every REFRESH_S seconds at most, and at most REFRESH_SHARE of the time: a rewrite that took 3 s holds the
    next one off for 60 s at a 5 % share, not for 30."""
    rows = read_results(local_run.run)
    journal = Journal(tmp_path / "journal.jsonl")
    ticks = iter([0.0,          # made
                  10.0,         # a row 10 s in: too soon
                  31.0, 34.0,   # 31 s in: rewritten, in 3 s
                  70.0,         # 36 s after that rewrite: past every_s, but 3 s / 5 % = 60 s not yet
                  95.0, 95.5])  # 61 s after it: rewritten
    path = tmp_path / "results.parquet"
    refresh = TableRefresh(journal, path, every_s=30.0, share=0.05, clock=lambda: next(ticks))
    journal.add(rows[0])
    assert refresh() is False and not path.exists()
    assert refresh() is True and [r["id"] for r in read_results(tmp_path)] == [rows[0]["id"]]
    journal.add(rows[1])
    assert refresh() is False and len(read_results(tmp_path)) == 1
    assert refresh() is True and sorted(r["id"] for r in read_results(tmp_path)) == sorted(r["id"] for r in rows[:2])
    journal.close()


def test_the_journal_keeps_ids_not_rows_and_the_table_takes_each_ids_latest_row(tmp_path, local_run, monkeypatch):
    """The driver holds one row number a pair; the rows come back from the file a block at a time, the latest row of
    an id winning; a torn tail is cut and a damaged line set aside (its pair is done again), the rest kept as it was."""
    rows = read_results(local_run.run)
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.add(rows[0])
    journal.add(rows[1])
    journal.close()
    good = path.read_bytes()
    damaged = b'{"id": "damaged", "index": \n'  # a whole line, not JSON
    with open(path, "ab") as f:
        f.write(damaged)
        f.write(b'{"id": "torn", "regions": "' + b"x" * 100_000)  # a kill mid-line, longer than the blocks read back
    journal = Journal(path)
    assert path.read_bytes() == good and (tmp_path / "journal.damaged.jsonl").read_bytes() == damaged
    assert len(journal) == 2 and rows[0]["id"] in journal and "damaged" not in journal
    assert journal.latest == {rows[0]["id"]: 0, rows[1]["id"]: 1}  # row numbers, not rows
    journal.add({**rows[0], "score_max": 0.5, "attempt": 2})  # the same pair again, later
    journal.add(rows[2])
    journal.add({**rows[3], "score_mean": float("nan"), "entropy": float("inf")})  # a broken model's row: nulls
    monkeypatch.setattr(results_mod, "BLOCK_BYTES", len(good) + 200)  # about two rows a block
    write_table(journal.tables(), tmp_path / "results.parquet", group_rows=2)
    assert pq.ParquetFile(tmp_path / "results.parquet").metadata.num_row_groups == 2  # blocks of 2 and 2 rows
    write_table(journal.tables(), tmp_path / "results.parquet")  # and put together up to ROW_GROUP_ROWS
    journal.close()
    assert pq.ParquetFile(tmp_path / "results.parquet").metadata.num_row_groups == 1
    assert [r["id"] for r in read_results(tmp_path)] == [rows[k]["id"] for k in (1, 0, 2, 3)]
    got = _by_id(read_results(tmp_path))
    assert count_results(tmp_path) == 4
    assert got[rows[0]["id"]]["score_max"] == 0.5 and got[rows[0]["id"]]["attempt"] == 2
    assert got[rows[1]["id"]] == rows[1] and got[rows[2]["id"]] == rows[2]
    assert got[rows[3]["id"]]["score_mean"] is None and got[rows[3]["id"]]["entropy"] is None
    again = Journal(path)  # and it opens again as it is
    again.close()
    assert len(again) == 4 and again.repeated and (tmp_path / "journal.damaged.jsonl").read_bytes() == damaged  # nothing set aside twice
    (tmp_path / "torn.jsonl").write_text('{"id": "only torn"')  # no whole line at all
    torn = Journal(tmp_path / "torn.jsonl")
    torn.close()
    assert len(torn) == 0 and (tmp_path / "torn.jsonl").read_bytes() == b""


def test_ranked_gives_the_top_rows_in_order_across_row_groups(tmp_path, local_run):
    base = read_results(local_run.run)[0]
    base["alignment"] = json.dumps(base["alignment"])  # as the journal holds it
    rng = np.random.default_rng(0)
    made = [{**base, "id": f"r{k:03d}", "score_max": float(rng.choice([0.25, 0.5, 0.75])),
             "area_pct": float(rng.choice([1.0, 2.0])), "uncertain_pct": float(rng.choice([0.0, 3.0])),
             "entropy": float(rng.random())} for k in range(200)]  # many ties: the id must break them
    tables = [pa.Table.from_pylist(made[k:k + 16], schema=SCHEMA) for k in range(0, 200, 16)]
    write_table(tables, tmp_path / "results.parquet", group_rows=16)
    assert pq.ParquetFile(tmp_path / "results.parquet").metadata.num_row_groups == 13
    by_score = _worst_first(read_results(tmp_path))
    assert ranked(tmp_path, 25) == by_score[:25] and ranked(tmp_path) == by_score
    by_uncertainty = sorted(read_results(tmp_path), key=lambda r: (-r["uncertain_pct"], -r["entropy"], r["id"]))
    assert [r["id"] for r in ranked(tmp_path, 40, "uncertainty")] == [r["id"] for r in by_uncertainty[:40]]
    assert ranked(tmp_path / "nothing", 5) == [] and count_results(tmp_path / "nothing") == 0
    with pytest.raises(UserError, match="rank must be one of score, uncertainty"):
        ranked(tmp_path, 5, "<b>size</b>")


@pytest.mark.parametrize("finish_in_actor", [True, False], ids=["cpu-actors-finish", "finish-tasks-as-behind-gpus"])
def test_ray_gives_the_same_probabilities_as_local(tmp_path, local_run, pairs, checkpoint, monkeypatch, finish_in_actor):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'ray[data]==2.60.0'; CI installs it)")
    from anodfdnet.inspect import ray_engine

    # CPU actors finish their own pairs; GPU actors hand them to finish tasks: both paths, here on CPUs
    assert ray_engine._finish_in_actor(SimpleNamespace(gpus_per_worker=0)) is True
    assert ray_engine._finish_in_actor(SimpleNamespace(gpus_per_worker=1)) is False
    monkeypatch.setattr(ray_engine, "_finish_in_actor", lambda job: finish_in_actor)
    s = inspect_archive(InspectConfig(data=f"pairs:{pairs}", out=str(tmp_path / "ray"), checkpoint=checkpoint, device="cpu",
                                      engine="ray", cpus=2, workers=1))
    assert "ray engine (local Ray, 2 CPUs)" in s.engine and s.done == 6
    import ray

    assert ray.data.DataContext.get_current().target_max_block_size == ray_engine.OUTPUT_BLOCK_BYTES  # tasks stream
    assert ("pairs finished in the model actors" if finish_in_actor else "pairs finished in CPU tasks") in s.engine
    local, ray = _by_id(read_results(local_run.run)), _by_id(read_results(s.run))
    assert local.keys() == ray.keys()
    for pid, a in local.items():
        b = ray[pid]
        for k in ("score_max", "score_mean", "area_pct", "uncertain_pct"):
            assert b[k] == pytest.approx(a[k], abs=PROB_ATOL * (100 if k.endswith("pct") else 1)), (pid, k)
        assert a["n_regions"] == b["n_regions"] and a["align_verdict"] == b["align_verdict"]
        for ga, gb in zip(a["regions"], b["regions"]):
            assert (ga["x"], ga["y"], ga["w"], ga["h"], ga["area"]) == (gb["x"], gb["y"], gb["w"], gb["h"], gb["area"])
            assert gb["max_prob"] == pytest.approx(ga["max_prob"], abs=PROB_ATOL)
        heat_a = np.array(Image.open(local_run.run / a["heat_png"]).convert("RGB")).astype(int)
        heat_b = np.array(Image.open(s.run / b["heat_png"]).convert("RGB")).astype(int)
        assert np.abs(heat_a - heat_b).max() <= 1


def test_rays_queues_hold_16_mb_a_cpu_behind_cpu_actors_and_32_behind_gpu_actors():
    """The object-store budget of Ray Data's queues (measured on CPU actors: half the RSS growth of 32 MB a CPU at the
    same speed, benchmarks/INSPECT.md); never under 64 MB."""
    from anodfdnet.inspect.ray_engine import queue_budget

    mb = 2**20
    cpu_job, gpu_job = SimpleNamespace(gpus_per_worker=0), SimpleNamespace(gpus_per_worker=1)
    assert queue_budget(cpu_job, 16) == 256 * mb and queue_budget(gpu_job, 16) == 512 * mb
    assert queue_budget(cpu_job, 4) == 64 * mb and queue_budget(cpu_job, 2) == 64 * mb  # the floor
    assert queue_budget(gpu_job, 160.0) == 5120 * mb  # a 10-node cluster of 16 cores


def test_rays_dataset_has_blocks_of_4_pairs_but_at_most_10000():
    from anodfdnet.inspect import ray_engine

    assert [ray_engine.block_count(n) for n in (0, 3, 4, 2000, 40_000, 40_003, 1_000_000)] == [1, 1, 1, 500, 10_000, 10_000, 10_000]


def test_ray_workers_get_few_malloc_arenas_unless_the_user_set_their_own(monkeypatch):
    """The job's Ray workers start with MALLOC_ARENA_MAX=2 (their RSS grew less: benchmarks/INSPECT.md); a value the
    user already exported is passed on instead; the package stays importable by the workers either way."""
    from anodfdnet.inspect import ray_engine

    class FakeRay:
        def __init__(self):
            self.calls = []

        def is_initialized(self):
            return False

        def init(self, **kw):
            self.calls.append(kw)

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    fake = FakeRay()
    assert ray_engine._start(fake, None, 2) is True
    env = fake.calls[0]["runtime_env"]["env_vars"]
    assert env["MALLOC_ARENA_MAX"] == "2" and fake.calls[0]["num_cpus"] == 2
    assert str(Path(ray_engine.__file__).resolve().parents[2]) in env["PYTHONPATH"].split(os.pathsep)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    fake = FakeRay()
    assert ray_engine._start(fake, "ray://head:10001", None) is False  # joining a cluster: not ours to shut down
    assert fake.calls[0]["runtime_env"]["env_vars"]["MALLOC_ARENA_MAX"] == "8"
    assert fake.calls[0]["address"] == "ray://head:10001"


def test_ray_cpu_tasks_run_opencv_on_one_thread(pairs):
    """The prepare and finish tasks hold one CPU each: OpenCV must not start a thread per core in each of them."""
    import pickle

    import cv2

    from anodfdnet.data import parse_spec
    from anodfdnet.inspect import ray_engine

    before = cv2.getNumThreads()
    cv2.setNumThreads(4)
    try:
        source = parse_spec(f"pairs:{pairs}")
        files = np.array([b"", ray_engine._detached(source, 0)], dtype=object)  # opened from the SPEC; its own files
        out = ray_engine._prepare({"index": np.array([0, 0]), "files": files}, f"pairs:{pairs}", os.getcwd(), None, "auto")
        assert cv2.getNumThreads() == 1
        a, b = (pickle.loads(x) for x in out["payload"])
        assert a["ok"] and a["hist"].dtype == np.uint8 and a["id"] == b["id"] == source.names[0]
        assert np.array_equal(a["hist"], b["hist"]) and np.array_equal(a["cur"], b["cur"])
    finally:
        cv2.setNumThreads(before)


def test_the_local_engine_and_default_paths_never_import_ray(tmp_path, pairs, checkpoint):
    code = textwrap.dedent(f"""
        import sys
        class NoRay:
            def find_spec(self, name, path=None, target=None):
                if name == "ray" or name.startswith("ray."):
                    raise AssertionError("ray was imported: " + name)
        sys.meta_path.insert(0, NoRay())
        from anodfdnet.cli import main
        import anodfdnet.inspect, anodfdnet.inspect.to_queue, annotate.queue, annotate.__main__
        assert main(["inspect", "--data", "pairs:{pairs}", "--out", "{tmp_path / 'run'}", "--checkpoint", "{checkpoint}",
                     "--device", "cpu", "--limit", "2", "--to-queue", "{tmp_path / 'q.csv'}", "--top", "1"]) == 0
        assert not any(m == "ray" or m.startswith("ray.") for m in sys.modules)
        print("no ray")
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "no ray" in r.stdout


def test_a_rerun_after_a_kill_skips_the_finished_pairs(tmp_path, checkpoint):
    data = write_tiny_pairs(tmp_path / "many", n=40, size=128, seed=2)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "anodfdnet", "inspect", "--data", f"pairs:{data}", "--out", str(out), "--checkpoint", checkpoint,
           "--device", "cpu", "--workers", "0", "--align", "ecc"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = out / "journal.jsonl"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists() and journal.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    finished = [json.loads(x)["id"] for x in journal.read_text().splitlines()]
    assert 3 <= len(finished) < 40
    with open(journal, "a") as f:  # a kill in the middle of a line leaves a torn one
        f.write('{"id": "pair39", "index": 3')
    s = inspect_archive(InspectConfig(data=f"pairs:{data}", out=str(out), checkpoint=checkpoint, device="cpu", workers=0,
                                      align="ecc"))
    assert s.skipped == len(finished) and s.done == 40 - len(finished)
    rows = _by_id(read_results(s.run))
    assert len(rows) == 40 and s.total == 40
    assert {pid for pid, r in rows.items() if r["attempt"] == 1} == set(finished)
    assert all(r["attempt"] == 2 for pid, r in rows.items() if pid not in finished)


def _manifest(tmp_path, pairs: Path) -> Path:
    """A manifest with 3 good lines (relative and absolute paths) and 4 bad ones."""
    (tmp_path / "notes.txt").write_text("not an image")
    names = sorted(p.name for p in pairs.iterdir())
    lines = ["id,history,current",
             f"a,{pairs / names[0] / 'hist.png'},{pairs / names[0] / 'cur.png'}",  # line 2
             f"b,{pairs / names[1] / 'hist.png'},",                                  # line 3: empty current
             f"c,{pairs / names[2] / 'hist.png'},{tmp_path / 'missing.png'}",          # line 4: no such file
             f"a,{pairs / names[3] / 'hist.png'},{pairs / names[3] / 'cur.png'}",    # line 5: id used on line 2
             f"d,notes.txt,{pairs / names[4] / 'cur.png'}",                          # line 6: not an image (relative)
             f"e,{os.path.relpath(pairs / names[4] / 'hist.png', tmp_path)},{pairs / names[4] / 'cur.png'}",  # line 7
             f"f,{pairs / names[5] / 'hist.png'},{pairs / names[5] / 'cur.png'}"]    # line 8
    path = tmp_path / "archive.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_manifest_lines_are_reported_by_line_and_skipped(tmp_path, pairs, checkpoint, capsys):
    manifest = _manifest(tmp_path, pairs)
    out = tmp_path / "run"
    assert cli_main(["inspect", "--data", f"manifest:{manifest}", "--out", str(out), "--checkpoint", checkpoint,
                     "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert sorted(r["id"] for r in read_results(out)) == ["a", "e", "f"]
    errors = [json.loads(x)["error"] for x in (out / "errors.jsonl").read_text().splitlines()]
    assert len(errors) == 4
    for line, words in ((3, "'current' field is empty"), (4, "does not exist"), (5, "already used on line 2"),
                        (6, "notes.txt")):
        hit = [e for e in errors if f"archive.csv line {line}" in e]
        assert len(hit) == 1 and words in hit[0], (line, errors)
        assert hit[0] in printed  # listed at the end of the run
    assert "4 pairs or lines could not be read" in printed and "Traceback" not in printed
    report = (out / "report.html").read_text()
    assert "archive.csv line 4" in report


def test_ray_task_workers_read_a_manifests_pairs_from_their_files_not_from_the_manifest(tmp_path, pairs, checkpoint, monkeypatch):
    """The CPU tasks get each pair's files with its index: they never parse the manifest (4 s and 470 MB for a million
    lines, in every worker process). Emptied once the driver has read it, the run is the local one still."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'ray[data]==2.60.0'; CI installs it)")
    from anodfdnet.inspect import ray_engine

    manifest = _manifest(tmp_path, pairs)
    local = inspect_archive(InspectConfig(data=f"manifest:{manifest}", out=str(tmp_path / "local"), checkpoint=checkpoint,
                                          device="cpu"))
    run_ray = ray_engine.run_ray

    def after_the_driver_read_it(job, todo, on_result, on_error):
        manifest.write_text("id,history,current\n")  # a worker that opened it now would find no pairs
        return run_ray(job, todo, on_result, on_error)

    monkeypatch.setattr(ray_engine, "run_ray", after_the_driver_read_it)
    s = inspect_archive(InspectConfig(data=f"manifest:{manifest}", out=str(tmp_path / "ray"), checkpoint=checkpoint,
                                      device="cpu", engine="ray", cpus=2, workers=1))
    assert manifest.read_text() == "id,history,current\n" and "ray engine" in s.engine
    assert s.done == local.done == 3 and sorted(s.errors) == sorted(local.errors) and len(s.errors) == 4
    ray_rows, local_rows = _by_id(read_results(s.run)), _by_id(read_results(local.run))
    assert sorted(ray_rows) == ["a", "e", "f"] == sorted(local_rows)
    for pid, row in ray_rows.items():
        assert row["score_max"] == pytest.approx(local_rows[pid]["score_max"], abs=PROB_ATOL)


def test_a_parquet_manifest_reads_like_the_csv(tmp_path, pairs):
    from anodfdnet.data import parse_spec

    names = sorted(p.name for p in pairs.iterdir())[:2]
    table = pa.table({"id": ["x", "y"], "history": [str(pairs / n / "hist.png") for n in names],
                      "current": [str(pairs / n / "cur.png") for n in names]})
    pq.write_table(table, tmp_path / "m.parquet")
    source = parse_spec(f"manifest:{tmp_path / 'm.parquet'}")
    assert source.names == ["x", "y"] and source[1].current.shape == (96, 96, 3)
    pq.write_table(table, tmp_path / "big.parquet", row_group_size=1)  # read a row group at a time, numbered on
    assert parse_spec(f"manifest:{tmp_path / 'big.parquet'}").lines == [1, 2]


def test_an_unreadable_manifest_is_one_clear_error(tmp_path):
    from anodfdnet.data import parse_spec

    cases = {"latin1.csv": b"id,history,current\nna\xefve,a.png,b.png\n",  # not UTF-8
             "nul.csv": b"id,history,current\n" + b"a,b.png,\0c.png\n" * 2,
             "columns.csv": b"name,before,after\na,b.png,c.png\n",
             "huge.csv": b"id,history,current\na," + b"x" * 200_000 + b",b.png\n",  # over csv's field limit
             "fake.parquet": b"PAR1 not really",
             "columns.parquet": None}
    for name, data in cases.items():
        if data is None:
            pq.write_table(pa.table({"name": ["a"]}), tmp_path / name)
        else:
            (tmp_path / name).write_bytes(data)
    for name, words in (("latin1.csv", "cannot read the manifest"), ("huge.csv", "field larger than field limit"),
                        ("columns.csv", "id, history, current"),
                        ("fake.parquet", "as Parquet"), ("columns.parquet", "id, history, current")):
        with pytest.raises(UserError, match=words):
            parse_spec(f"manifest:{tmp_path / name}")
    nul = parse_spec(f"manifest:{tmp_path / 'nul.csv'}")  # Python's csv reads a NUL as data: the pair fails alone
    assert nul.names == ["a"] and len(nul.bad) == 1 and "already used on line 2" in nul.bad[0][1]
    with pytest.raises(UserError, match=r"nul.csv line 2 \(id 'a'\): cannot read image .*embedded null byte"):
        nul[0]


def test_manifest_paths_may_be_fsspec_urls(tmp_path, pairs):
    import io

    import fsspec

    from anodfdnet.data import parse_spec

    fs = fsspec.filesystem("memory")
    name = sorted(p.name for p in pairs.iterdir())[0]
    for part in ("hist", "cur"):
        buf = io.BytesIO()
        Image.open(pairs / name / f"{part}.png").save(buf, format="PNG")
        fs.pipe(f"/inspect-test/{part}.png", buf.getvalue())
    manifest = tmp_path / "urls.csv"
    manifest.write_text("id,history,current\n"
                        "m,memory://inspect-test/hist.png,memory://inspect-test/cur.png\n"
                        "n,nosuchfs://x/hist.png,memory://inspect-test/cur.png\n")
    source = parse_spec(f"manifest:{manifest}")
    assert source.names == ["m"]
    assert np.array_equal(source[0].current, np.array(Image.open(pairs / name / "cur.png").convert("RGB")))
    assert len(source.bad) == 1 and source.bad[0][0] == 3 and "nosuchfs://" in source.bad[0][1]


def test_a_run_with_other_settings_is_refused(tmp_path, pairs, checkpoint, capsys):
    out = tmp_path / "run"
    base = ["inspect", "--data", f"pairs:{pairs}", "--out", str(out), "--checkpoint", checkpoint, "--device", "cpu", "--limit", "1"]
    assert cli_main(base) == 0
    assert cli_main(base + ["--threshold", "0.9"]) == 2
    assert "other settings (threshold" in capsys.readouterr().err


@needs_chromium
def test_the_report_opens_offline_in_chromium_worst_pair_first(local_run, chromium):
    worst = _worst_first(read_results(local_run.run))
    page = chromium.new_page()
    outside = []
    page.on("request", lambda req: outside.append(req.url) if not req.url.startswith(("file:", "data:")) else None)
    try:
        page.goto((local_run.run / "report.html").as_uri(), wait_until="load")
        page.wait_for_function("document.querySelectorAll('#pairs tbody tr').length === 6", timeout=60_000)
        ids = page.eval_on_selector_all("#pairs tbody tr td.id", "els => els.map(e => e.firstChild.textContent)")
        assert ids == [r["id"] for r in worst]
        # The overlay thumbnail of the worst pair is decoded and shows the red tint over its anomaly.
        red = page.evaluate("""() => {
            const img = document.querySelector('#pairs tbody tr td.thumbs img[alt=overlay]');
            const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
            const g = c.getContext('2d'); g.drawImage(img, 0, 0);
            const d = g.getImageData(0, 0, c.width, c.height).data; let n = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i] > d[i + 1] + 80 && d[i] > d[i + 2] + 80) n++;
            return [img.naturalWidth, n];
        }""")
        assert red[0] == 96 and red[1] > 20
        # The score filter hides pairs below the slider's value.
        cut = (worst[2]["score_max"] + worst[3]["score_max"]) / 2
        page.eval_on_selector("#min-score", f"(s) => {{ s.value = '{cut:.4f}'; s.dispatchEvent(new Event('input')); }}")
        visible = page.eval_on_selector_all("#pairs tbody tr:not(.hidden) td.id", "els => els.map(e => e.firstChild.textContent)")
        expected = [r["id"] for r in worst if r["score_max"] >= float(page.eval_on_selector("#min-score", "s => s.value"))]
        assert visible == expected and page.inner_text("#shown") == str(len(expected))
    finally:
        page.close()
    assert outside == []


def test_to_queue_puts_the_top_pairs_into_the_label_queue(tmp_path, pairs, checkpoint, capsys):
    from annotate.__main__ import main as annotate_main
    from annotate.queue import LabelQueue
    from annotate.store import LabelStore

    manifest = tmp_path / "labels" / "queue.csv"
    queue = LabelQueue(LabelStore(tmp_path / "labels"), f"manifest:{manifest}", k=1, gold="")
    assert queue.enabled and len(queue) == 0 and queue.next_for("ann", "h0") is None  # the file comes later
    out = tmp_path / "run"
    s = inspect_archive(InspectConfig(data=f"pairs:{pairs}", out=str(out), checkpoint=checkpoint, device="cpu",
                                      to_queue=str(manifest), top=2))
    worst = [r["id"] for r in _worst_first(read_results(s.run))]
    assert len(queue) == 2 and queue.source.names == [f"run/{i}" for i in worst[:2]]
    item = queue.next_for("ann", "h1")
    assert item.pair.name == f"run/{worst[0]}"
    assert np.array_equal(item.pair.current, np.array(Image.open(pairs / worst[0] / "cur.png").convert("RGB")))
    # The annotate command adds the next one and keeps the two already there.
    assert annotate_main(["queue", "add", str(out), "--top", "3", "--queue", str(manifest)]) == 0
    assert "added 1 pairs" in capsys.readouterr().out
    assert len(queue) == 3
    assert queue.source.names == [f"run/{i}" for i in worst[:3]]
