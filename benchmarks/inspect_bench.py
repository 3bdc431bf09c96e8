"""``python -m benchmarks inspect``: batch inspection's throughput, local engine against Ray; write benchmarks/INSPECT.md.

On N generated 512x512 pairs (JPEG files, feature-rich textures with a small viewpoint change and an anomaly in
most, so alignment has real work; cached under .cache/anodfdnet/bench-inspect):

1. the model alone: ``Predictor.predict_logits`` on prepared tensors at the same batch as the engines;
2. each engine end to end as the user runs it (``python -m anodfdnet inspect`` in a subprocess, alignment auto,
   masks, heat maps and thumbnails written), sampled every 0.5 s: finished pairs (the journal) and the RSS of the
   whole process tree (for Ray: driver, raylet, GCS, workers; shared object-store pages are counted in every
   process that maps them, so the PSS of the tree, which divides each shared page among its mappers, is sampled
   too, every 5 s: it costs ten times the rest of a sample; the sampler's own CPU is recorded). Rates: over the
   whole command (start-up included) and steady (from the 10th pair);
   RSS growth from pair 100 (or a third of the run, if shorter) to the end; the CPU time (user + system, from
   /proc) each process of the tree spent per pair in the steady part, by role (driver, model actor, CPU task
   workers, Ray's daemons): where Ray's overhead goes, in a unit the host's speed moves less than the rates;
3. the CPU cost of each per-pair step (decode, align, resize, finish: probabilities, regions, PNGs,
   overlay; on the model's own map of each pair; the process's CPU with OpenCV and torch on one thread, as the
   engines' CPU tasks run them), the bytes read and written per pair and the driver's cost per
   results row: what a node or a cluster needs;
4. from those, the on-paper rate of a 10-node x 1-GPU Ray cluster.

Equal workers: for each count N in ``--lanes`` (default 1 then 2), both engines run N model workers on the same
torch threads each (cores / N) and the same number of CPU workers: local ``--lanes N`` plus ``--workers`` (2)
reader/writer threads; Ray N model actors of cores / N CPUs and CPU tasks on the rest of ``--cpus`` (default twice
the cores: the local engine's N lanes' threads plus its 2 reader/writer threads on 2 cores). The model alone is
measured on all of torch's threads (the issue's reference rate) and on each lane's or actor's threads.

Interleaved (``--rounds K``, K >= 2): the engines run one after the other for minutes each in the sequential run,
and a 2-core host's own speed drifts by up to 15 % within a minute, more than the overhead being measured. This
mode splits the pairs into K chunks and runs each chunk with both engines in turn, the order swapped every round,
each engine resuming its own run folder: Ray's overhead with the drift cancelled (``inspect-interleaved.json``,
the report's interleaved section; the sequential run's figures, RSS growth over the whole run among them, stay).

The report itself is written by benchmarks/inspect_report.py; rewriting it keeps its hand-kept ``## Earlier runs``
section, so earlier figures stay.
"""
from __future__ import annotations

import argparse
import json
import re
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .inspect_report import cluster_estimate, write_report
from .process_tree import cpu_by_role, tree_pss, tree_sample

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "anodfdnet" / "bench-inspect"
INTERLEAVED_JSON = "inspect-interleaved.json"  # beside inspect.json: the interleaved run (--rounds) of its own
# The tree's PSS is sampled every PSS_EVERY_S only, its RSS and CPU every 0.5 s. Reading PSS walks every mapping of
# every process (smaps_rollup): measured during a Ray run with 2 model actors (15 processes), 68 ms of CPU a sample
# against 6 ms for RSS and CPU. At every 0.5 s that took 86 ms of CPU a second under Ray against 32 under the local
# engine (one process): 4 % of 2 cores during Ray runs, 1.6 % during local ones, outside the busy share of either.
PSS_EVERY_S = 5.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = "Batch inspection: local engine against Ray at equal workers, RSS growth, model-only rate; write benchmarks/INSPECT.md."
    p.add_argument("--pairs", type=int, default=300, help="generated pairs (default 300; the issue's 2,000 take 11 to 30 min on 2 cores for the 4 engine runs of --lanes 1,2, and 14 to 40 min with --rounds 8)")
    p.add_argument("--side", type=int, default=512, help="pair size in pixels (default 512)")
    p.add_argument("--checkpoint", default="effnet-d2")
    p.add_argument("--engines", default="local,ray", help="comma-separated (default local,ray)")
    p.add_argument("--workers", type=int, default=2, help="local engine's reader/writer threads (default 2)")
    p.add_argument("--lanes", default="1,2", help="model workers, a comma-separated list run in turn (default 1,2): the "
                   "local engine's --lanes (model calls in flight, torch's threads shared among them) and as many Ray model "
                   "actors, so each engine runs at each setting and Ray's overhead is read at equal workers")
    p.add_argument("--cpus", type=int, default=None, help="logical CPUs for the local Ray (default: twice this machine's cores, "
                   "as many as the local engine's threads at 2 model workers on 2 cores: 2 lanes and 2 reader/writer threads)")
    p.add_argument("--cpus-per-worker", type=float, default=None, help="CPUs of each Ray model actor, also its torch threads "
                   "(default: this machine's cores over the model workers, the torch threads of each local lane)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--align", default="auto", help="the engines' --align (default auto)")
    p.add_argument("--budget-s", type=float, default=None, help="stop each engine after this many seconds (Ctrl-C, as a user "
                   "would) and rate the pairs it finished; a stopped run is marked as such (default: no limit)")
    p.add_argument("--rounds", type=int, default=1, help="with 2 or more: measure Ray's overhead with the host's drift "
                   "cancelled instead: the pairs in this many chunks, each run by both engines in turn (the order swapped every "
                   "round: local, Ray; Ray, local; ...), each engine resuming its own run folder; writes inspect-interleaved.json "
                   "and the report's interleaved section, keeping the sequential run's figures (default 1: the sequential run)")
    p.add_argument("--from-json", default=None, metavar="inspect.json", help="write the report again from a run's figures")
    p.add_argument("--note", action="append", default=[], help="a note on the run for the report (repeatable; with --from-json)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "INSPECT.md"))


# --- data -----------------------------------------------------------------------------------------


def _texture(rng: np.random.Generator, side: int) -> np.ndarray:
    import cv2

    img = np.zeros((side, side, 3), np.float32)
    for octave in (4, 16, 64):
        noise = rng.random((octave, octave, 3)).astype(np.float32)
        img += cv2.resize(noise, (side, side), interpolation=cv2.INTER_CUBIC) * (64 / octave ** 0.5)
    img = img / img.max() * 150 + 40
    for _ in range(int(rng.integers(25, 45))):  # parts: plates, bolts, edges (what ORB finds)
        colour = tuple(float(c) for c in rng.integers(0, 255, 3))
        x, y = (int(v) for v in rng.integers(0, side, 2))
        r = int(rng.integers(side // 60, side // 12))
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), r, colour, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(img, (x, y), (x + 2 * r, y + r), colour, -1, cv2.LINE_AA)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_pairs(n: int, side: int, seed: int = 0) -> Path:
    """n pairs as JPEGs in the pairs: layout (history, current = history seen from slightly elsewhere, lighter or
    darker, with an anomaly in 85 % of pairs); made once and cached."""
    import cv2
    from PIL import Image

    folder = CACHE / f"{n}-{side}-{seed}"
    if (folder / ".done").exists():
        return folder
    rng = np.random.default_rng(seed)
    for i in range(n):
        hist = _texture(rng, side)
        angle, scale = rng.uniform(-2, 2), rng.uniform(0.98, 1.02)
        m = cv2.getRotationMatrix2D((side / 2, side / 2), angle, scale)
        m[:, 2] += rng.uniform(-side * 0.02, side * 0.02, 2)
        cur = cv2.warpAffine(hist, m, (side, side), borderMode=cv2.BORDER_REFLECT)
        cur = np.clip(cur.astype(np.float32) * rng.uniform(0.9, 1.1), 0, 255).astype(np.uint8)
        if rng.random() < 0.85:
            x, y = (int(v) for v in rng.integers(side // 8, side - side // 8, 2))
            axes = tuple(int(v) for v in rng.integers(side // 40, side // 12, 2))
            cv2.ellipse(cur, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, (30, 30, 30), -1, cv2.LINE_AA)
        d = folder / f"p{i:05d}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(hist).save(d / "hist.jpg", quality=90)
        Image.fromarray(cur).save(d / "cur.jpg", quality=90)
    (folder / ".done").write_text("")
    return folder


# --- measurements ---------------------------------------------------------------------------------


def model_only(checkpoint: str, folder: Path, batch: int, calls: int = 30, device: str = "cpu", threads: int | None = None) -> dict:
    """The model's rate on prepared tensors, and the CPU (this process, every thread) it spends per pair; ``threads``:
    torch's threads for the measurement (default: as they are)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        return _model_only(checkpoint, folder, batch, calls, device)
    finally:
        torch.set_num_threads(before)


def _model_only(checkpoint: str, folder: Path, batch: int, calls: int, device: str) -> dict:
    import torch

    from anodfdnet.inference.pipeline import prepare_aligned
    from anodfdnet.predict import Predictor

    p = Predictor(checkpoint, device=device, align="off")
    sync = torch.cuda.synchronize if p.device.type == "cuda" else (lambda: None)
    h, c, *_ = prepare_aligned(folder / "p00000" / "hist.jpg", folder / "p00000" / "cur.jpg", p.size)
    hb, cb = h[None].repeat(batch, 1, 1, 1), c[None].repeat(batch, 1, 1, 1)
    for _ in range(3):
        p.predict_logits(hb, cb)
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(calls):
        p.predict_logits(hb, cb)
    sync()
    s, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"pairs_per_s": calls * batch / s, "ms_per_call": s / calls * 1000, "batch": batch, "path": p.runtime.detail,
            "torch_threads": torch.get_num_threads(), "cpu_ms_per_pair": cpu / (calls * batch) * 1000}


TABLE_ROWS = 20_000  # rows of the timed results.parquet rewrite from the journal (a row of the generated pairs, repeated)


def stage_costs(checkpoint: str, folder: Path, n: int = 12) -> dict:
    """Seconds of CPU per pair of each step, and bytes in and out per pair. The CPU is the whole process's (helper
    threads included), with OpenCV and torch on 1 thread each as the Ray engine's CPU tasks run them (an idle pool
    spinning after a call would otherwise be charged to the next step)."""
    import tempfile

    import cv2

    from anodfdnet.inference.predictor import torch_threads

    from anodfdnet.align import align_pair
    from anodfdnet.checkpoint import read_info, resolve
    from anodfdnet.data.images import load_rgb, resize_rgb, to_tensor
    from anodfdnet.inference.pipeline import model_input_shape, probabilities
    from anodfdnet.inspect.outputs import finish_pair, make_dirs, thumbnails
    from anodfdnet.inspect.results import Journal, write_table
    from anodfdnet.predict import Predictor

    info = read_info(resolve(checkpoint))
    model = Predictor(checkpoint, device="cpu", align="off")
    t = {"decode": 0.0, "align": 0.0, "resize": 0.0, "finish": 0.0}
    bytes_in = bytes_out = 0
    clock = time.process_time
    cv2_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp, torch_threads(1):
            run = Path(tmp)
            make_dirs(run)
            for i in range(-1, n):  # pair -1: the last pair, once, to warm up (first calls, caches); not counted
                d = folder / f"p{i % n:05d}"
                bytes_in += (d / "hist.jpg").stat().st_size + (d / "cur.jpg").stat().st_size if i >= 0 else 0
                t0 = clock()
                hist, cur = load_rgb(d / "hist.jpg"), load_rgb(d / "cur.jpg")
                t1 = clock()
                a = align_pair(hist, cur, "auto")
                t2 = clock()
                shape = model_input_shape(*cur.shape[:2], info.eval_size)
                hh, cc = to_tensor(resize_rgb(a.history, shape)), to_tensor(resize_rgb(cur, shape))
                thumbs = thumbnails(hist, cur)
                t3_prep = clock()
                # The model's own map (its regions and texture set the costs of the regions and PNGs); not timed.
                logits = model.predict_logits(hh[None], cc[None])
                t3 = clock()
                prob = probabilities(logits, [cur.shape[:2]], [a])[0]
                row = finish_pair(run, d.name, i, prob, a, thumbs, info.threshold)
                t4 = clock()
                for k, v in zip(t, (t1 - t0, t2 - t1, t3_prep - t2, t4 - t3)):
                    t[k] += v if i >= 0 else 0.0
            bytes_out = sum(f.stat().st_size for f in run.rglob("*") if f.is_file())
            journal = Journal(run / "journal.jsonl")
            rows = 2000
            t0 = time.perf_counter()
            for k in range(rows):
                journal.add({**row, "id": f"x{k}", "attempt": 1})
            journal_s = (time.perf_counter() - t0) / rows
            for k in range(rows, TABLE_ROWS):
                journal.add({**row, "id": f"x{k}", "attempt": 1})
            t0 = time.perf_counter()
            write_table(journal.tables(), run / "results.parquet")  # read back from the journal, as a run does
            table_s = (time.perf_counter() - t0) / TABLE_ROWS
            journal.close()
    finally:
        cv2.setNumThreads(cv2_threads)
    out = {k: v / n for k, v in t.items()}
    out.update({"cpu_s_per_pair": sum(out.values()), "bytes_in": bytes_in / n, "bytes_out": bytes_out / n,
                "journal_s_per_row": journal_s, "table_s_per_row": table_s, "table_rows": TABLE_ROWS, "pairs": n})
    return out


def finish_times(run: Path, since: float = 0.0) -> dict:
    """Rates from the times the pairs' last files were written (RUN/thumbs/*_o.jpg, written last for each pair): the
    steady rate from the 10th to the last pair, whatever the sampling saw; ``since`` (a ``time.time()``): only the pairs
    finished after it (a resumed run's own)."""
    times = sorted(t for t in (f.stat().st_mtime for f in (Path(run) / "thumbs").glob("*_o.jpg")) if t >= since)
    if len(times) < 12:
        return {"files_steady_pairs_per_s": None}
    late = (len(times) - 100) / (times[-1] - times[99]) if len(times) >= 150 else None
    return {"files_steady_pairs_per_s": (len(times) - 10) / (times[-1] - times[9]), "files_span_s": times[-1] - times[0],
            "files_first_10_s": times[9] - times[0], "files_from_100_pairs_per_s": late}


def ray_cpus(a) -> int:
    return a.cpus or 2 * len(os.sched_getaffinity(0))


def run_engine(engine: str, folder: Path, n: int, a, out: Path, lanes: int = 1, resume: bool = False) -> dict:
    """One engine end to end on the first ``n`` pairs into ``out`` (emptied first unless ``resume``: then the command
    skips the pairs an earlier run finished there and every figure counts this run's own pairs only)."""
    import shutil

    if not resume:
        shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "anodfdnet", "inspect", "--data", f"pairs:{folder}", "--out", str(out), "--checkpoint",
           a.checkpoint, "--device", a.device, "--batch", str(a.batch), "--limit", str(n), "--align", a.align]
    # model workers: local lanes (threads) or Ray actors; each Ray actor gets a local lane's torch threads
    each = max(1, len(os.sched_getaffinity(0)) // lanes)
    actor_cpus = getattr(a, "cpus_per_worker", None) or each
    if engine == "local":
        cmd += ["--workers", str(a.workers), "--lanes", str(lanes)]
    else:
        cmd += ["--engine", "ray", "--workers", str(lanes), "--cpus-per-worker", f"{actor_cpus:g}"]
        cmd += ["--cpus", str(ray_cpus(a))] + (["--gpus-per-worker", "1"] if a.device.startswith("cuda") else [])
    journal = out / "journal.jsonl"
    start = journal.read_bytes().count(b"\n") if journal.exists() else 0  # pairs an earlier run finished
    wall0 = time.time()
    samples, pss = [], []  # (seconds, pairs done, bytes): summed RSS and PSS of the tree
    cpu: dict = {}
    cpu_mark = cpu_last = None  # (pairs done, snapshot) at the first sample with 10 pairs done and at the last one after
    t0 = time.perf_counter()
    own0, pss_at = os.times(), -PSS_EVERY_S
    import signal
    import tempfile

    budget = getattr(a, "budget_s", None)
    stopped = False
    with tempfile.TemporaryFile("w+") as log_file:
        # SIGINT back to its default in the child: a shell's background job ignores it, and a Python started with
        # it ignored never turns it into KeyboardInterrupt (found when the budget's Ctrl-C did nothing).
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        while proc.poll() is None:
            done = (journal.read_bytes().count(b"\n") if journal.exists() else 0) - start
            samples.append((time.perf_counter() - t0, done, tree_sample(proc.pid, cpu)))
            if samples[-1][0] - pss_at >= PSS_EVERY_S:
                pss_at = samples[-1][0]
                pss.append((pss_at, done, tree_pss(proc.pid)))
            if cpu_mark is None and done >= 10:
                cpu_mark = (done, dict(cpu))
            if cpu_mark is not None and done > cpu_mark[0]:
                cpu_last = (done, dict(cpu))
            if budget and not stopped and time.perf_counter() - t0 > budget:
                stopped = True
                os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the run keeps what it finished
                try:
                    proc.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                break
            time.sleep(0.5)
        total = time.perf_counter() - t0
        own1 = os.times()
        log_file.seek(0)
        log = log_file.read()
    if proc.returncode != 0 and not stopped:
        raise RuntimeError(f"{engine} run failed ({proc.returncode}): {log[-2000:]}")
    done = journal.read_bytes().count(b"\n") - start
    first = next(((t, k) for t, k, _ in samples if k >= 10), None)
    last = next(((t, k) for t, k, _ in reversed(samples) if k >= done), (total, done))
    steady = (last[1] - first[1]) / (last[0] - first[0]) if first and last[0] > first[0] else None
    timeline = finish_times(out, since=wall0)
    steady_cpu = cpu_by_role(cpu_mark[1], cpu_last[1], cpu_last[0] - cpu_mark[0]) if cpu_last else {}
    out = {"cpu_ms_per_pair": steady_cpu, "engine": engine, "lanes": lanes,
            "threads_each": each if engine == "local" else int(actor_cpus), "ray_cpus_per_worker": actor_cpus, "stopped_at_budget": stopped, "pairs": done,
            "sampler_cpu_ms_per_s": (own1.user + own1.system - own0.user - own0.system) * 1000 / total, "samples": samples, **timeline, "seconds": total, "pairs_per_s": done / total, "steady_pairs_per_s": steady,
            **rss_figures(samples, done), "pss": rss_figures(pss, done), "summary": [x for x in log.splitlines() if x.startswith("inspected")][-1:]}
    out["command_s"] = command_seconds(out)  # the report's "seconds" column, the same for a run and a --from-json rewrite
    return out


def command_seconds(run: dict) -> float | None:
    """The command's own clock (after its imports), from its summary line (``inspected N pairs in S s``)."""
    said = re.search(r"inspected (\d+) pairs in ([0-9.]+) s", " ".join(run.get("summary", [])))
    return float(said.group(2)) if said else None


def round_size(pairs: int, rounds: int) -> int:
    """Pairs a round of the interleaved run holds; refused (before anything runs) when too few for a steady rate."""
    if pairs // rounds < 30:
        raise SystemExit(f"--rounds {rounds} leaves {pairs // rounds} pairs a round: at least 30 are needed for a steady rate")
    return pairs // rounds


ROUND_FIELDS = ("engine", "lanes", "pairs", "seconds", "command_s", "files_steady_pairs_per_s", "steady_pairs_per_s",
                "cpu_ms_per_pair", "sampler_cpu_ms_per_s", "stopped_at_budget")


def interleaved(a, folder: Path, engines: list[str], lanes: list[int]) -> list[dict]:
    """Ray's overhead with the host's drift cancelled: the pairs in ``a.rounds`` chunks, each chunk run by every engine
    in turn, the order swapped from round to round (local, Ray; Ray, local; ...), so both engines see the same minutes
    of the host and a drift that is linear over two rounds cancels. Each engine resumes its own run folder, so each
    command does that chunk's pairs only and pays its start-up each round (counted apart: the rates are steady)."""
    from .timing import load_average

    chunk = round_size(a.pairs, a.rounds)
    rounds = []
    for n in lanes:
        for k in range(a.rounds):
            for e in (engines if k % 2 == 0 else engines[::-1]):
                print(f"round {k + 1}/{a.rounds}: engine {e}, {n} model worker(s), pairs {k * chunk} to {(k + 1) * chunk} ...", flush=True)
                load = load_average()
                res = run_engine(e, folder, (k + 1) * chunk, a, ROOT / "runs" / f"bench-interleave-{e}-{n}", lanes=n, resume=k > 0)
                rounds.append({"round": k + 1, "load_start": load, **{f: res.get(f) for f in ROUND_FIELDS}})
                print(json.dumps(rounds[-1]), flush=True)
    return rounds


def rss_figures(samples: list, done: int) -> dict:
    """RSS at pair 100 (or a third of the run), at the end (the last sample before the final row: Ray frees its
    processes' memory while shutting down after it), its growth, and the peak; MB."""
    mark = 100 if done > 150 else max(1, done // 3)
    rss_mark = next((r for _, k, r in samples if k >= mark), None)
    rss_end = next((r for _, k, r in reversed(samples) if mark <= k < done), None)
    rss_peak = max(r for _, _, r in samples)
    return {"rss_mark_pair": mark, "rss_at_mark_mb": rss_mark / 2**20 if rss_mark else None,
            "rss_end_mb": rss_end / 2**20 if rss_end else None, "rss_peak_mb": rss_peak / 2**20,
            "rss_growth_mb": (rss_end - rss_mark) / 2**20 if rss_mark and rss_end else None}


def main(a) -> int:
    import torch

    from .timing import load_average, machine_header

    if a.from_json:  # the report again from measured figures (no measuring)
        r = json.loads(Path(a.from_json).read_text())
        r["estimate"] = cluster_estimate(r["stages"]) if r.get("stages") else None
        for e in r["engines"]:
            if e.get("samples"):
                e.update(rss_figures(e["samples"], e["pairs"]))
            run = ROOT / "runs" / f"bench-inspect-{e['engine']}-{e['lanes']}"
            if "files_steady_pairs_per_s" not in e and run.is_dir():
                e.update(finish_times(run))
            if "command_s" not in e and command_seconds(e) is not None:
                e["command_s"] = command_seconds(e)
        r["notes"] = r.get("notes", []) + list(a.note)
        Path(a.from_json).write_text(json.dumps(r, indent=1))
        iv = Path(a.from_json).with_name(INTERLEAVED_JSON)
        write_report(Path(a.out), {**r, "interleaved": json.loads(iv.read_text())} if iv.is_file() else r)
        print(f"wrote {a.out} from {a.from_json}")
        return 0
    engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    lanes = [int(v) for v in str(a.lanes).split(",") if v.strip()]
    if not lanes or min(lanes) < 1:
        raise SystemExit(f"--lanes must list model workers of 1 or more, got {a.lanes!r}")
    if a.rounds > 1:
        round_size(a.pairs, a.rounds)
    load_start = load_average()
    folder = make_pairs(a.pairs, a.side)
    print(f"pairs in {folder}", flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if a.rounds > 1:
        iv = {"command": "python -m benchmarks inspect " + " ".join(sys.argv[2:]), "cores": len(os.sched_getaffinity(0)),
              "header": machine_header([torch.device("cpu")]),
              "load_start": load_start, "pairs": a.pairs, "rounds": a.rounds, "lanes": lanes, "checkpoint": a.checkpoint,
              "align": a.align, "workers": a.workers, "ray_cpus": ray_cpus(a),
              "runs": interleaved(a, folder, engines, lanes)}
        iv["load_end"] = load_average()
        out.with_name(INTERLEAVED_JSON).write_text(json.dumps(iv, indent=1))
        r = json.loads(out.with_name("inspect.json").read_text()) if out.with_name("inspect.json").is_file() else None
        if r is None:
            print(f"wrote {out.with_name(INTERLEAVED_JSON)} (no inspect.json beside it: run the sequential benchmark for the report)")
            return 0
        write_report(out, {**r, "interleaved": iv})
        print(f"wrote {out.with_name(INTERLEAVED_JSON)} and {out}")
        return 0
    results = []
    for n in lanes:
        for e in engines:
            print(f"engine {e}, {n} model worker(s) ...", flush=True)
            # The model alone right before and after each engine, on the same minutes of the host: these 2-core hosts
            # drift by 15 % and more between minutes, which moves a ratio against one measurement at the end.
            before = model_only(a.checkpoint, folder, a.batch, device=a.device)["pairs_per_s"]
            results.append(run_engine(e, folder, a.pairs, a, ROOT / "runs" / f"bench-inspect-{e}-{n}", lanes=n))
            results[-1]["model_around"] = [before, model_only(a.checkpoint, folder, a.batch, device=a.device)["pairs_per_s"]]
            print(json.dumps(results[-1]), flush=True)
    print("model only ...", flush=True)
    m = model_only(a.checkpoint, folder, a.batch, device=a.device)
    if a.device == "cpu":  # what each local lane or Ray actor runs: its share of the threads
        m["by_threads"] = {str(t): model_only(a.checkpoint, folder, a.batch, device=a.device, threads=t)
                           for t in sorted({e["threads_each"] for e in results}) if t != m["torch_threads"]}
    print("stage costs ...", flush=True)
    st = stage_costs(a.checkpoint, folder, n=min(12, a.pairs))
    iv = out.with_name(INTERLEAVED_JSON)
    r = {"command": "python -m benchmarks inspect " + " ".join(sys.argv[2:]), "cores": len(os.sched_getaffinity(0)), "header": machine_header([torch.device("cpu")]),
         "load_start": load_start, "load_end": load_average(), "pairs": a.pairs, "side": a.side, "checkpoint": a.checkpoint,
         "batch": a.batch, "align": a.align, "workers": a.workers, "lanes": lanes, "torch_threads": torch.get_num_threads(), "ray_cpus": ray_cpus(a), "budget_s": a.budget_s, "engines": results, "model_only": m,
         "stages": st, "estimate": cluster_estimate(st)}
    out.with_name("inspect.json").write_text(json.dumps(r, indent=1))  # first: a report that fails loses no figure
    write_report(out, {**r, "interleaved": json.loads(iv.read_text())} if iv.is_file() else r)
    print(f"wrote {out} and {out.with_name('inspect.json')}")
    return 0
