"""``python -m benchmarks gil``: how much of a pair's CPU steps outside the model hold Python's interpreter lock (GIL).

The local engine (``--engine local``) runs decoding, alignment and the finish step (regions, PNGs, thumbnails) in
threads of one process. Threads run in parallel only while they are inside code that releases the GIL (OpenCV,
Pillow's codecs, zlib, torch kernels, numpy's loops over large arrays, system calls); the rest of a pair's steps
(the interpreter, numpy's dispatch and small arrays) runs one thread at a time. If ``g`` ms of a pair hold the GIL,
the local engine cannot pass ``1000 / g`` pairs/s whatever the number of cores; Ray's CPU tasks are processes, each
with its own GIL.

A child process runs the steps of ``stage_costs`` (benchmarks/inspect_bench.py), through the library's own
``prepare_aligned`` as the local engine calls it, over generated 512x512 pairs in a
loop, on one thread (OpenCV and torch), with the model's maps computed beforehand; Linux ``perf`` samples it and
reports where its CPU time went by library. The interpreter's share gives a lower bound of ``g``; the interpreter,
numpy, the C library and the kernel together an upper bound (parts of those run with the GIL released). Needs
``perf`` (linux-tools) and permission to sample the process (``perf_event_paranoid`` at most 2, or root); without
perf only the second part runs. Then the same loop runs in as many threads of one process and as many forked processes
as the machine has cores (up to 16), in alternating order: on a many-core machine that shows the ceiling directly.
Writes ``benchmarks/GIL.md`` and ``gil.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from anodfdnet.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
# Libraries by how they treat the GIL while a thread is inside them.
HELD = ("interpreter",)  # runs Python bytecode: always holds it
MIXED = ("numpy", "C library", "kernel")  # numpy releases it in loops over large arrays; libc and the kernel serve both
GROUPS = [  # (group, pattern of the shared object's name) in order: the first match wins
    ("interpreter", r"libpython|^python3?[.\d]*$"),
    ("numpy", r"_multiarray_umath|_umath_linalg|numpy"),
    ("C library", r"^libc[.-]|^libm[.-]|^ld-linux|^libstdc\+\+|^libgcc"),
    ("kernel", r"kernel"),
    ("OpenCV", r"cv2|opencv"),
    ("JPEG, PNG, zlib (Pillow's codecs)", r"libjpeg|libpng|libz[.-]|_imaging|libwebp|libtiff|libopenjp"),
    ("torch", r"libtorch|libc10|libgomp|openblas|mkl"),
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("How much of a pair's CPU steps outside the model hold Python's GIL (Linux perf), and so the most "
                     "pairs/s the local engine's threads can give on any number of cores; write benchmarks/GIL.md.")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds sampled (default 10)")
    p.add_argument("--pairs", type=int, default=24, help="generated 512x512 pairs the loop goes over (default 24)")
    p.add_argument("--checkpoint", default="effnet-d2")
    p.add_argument("--frequency", type=int, default=1999, help="perf's samples a second (default 1999)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "GIL.md"))


def group_of(dso: str) -> str:
    name = Path(dso.strip("[]")).name if not dso.startswith("[") else dso
    for group, pattern in GROUPS:
        if re.search(pattern, name):
            return group
    return "other"


def parse_report(text: str) -> tuple[dict[str, float], int]:
    """``perf report --sort dso --stdio -n`` -> ({group: % of samples}, samples)."""
    shares: dict[str, float] = {}
    samples = 0
    for line in text.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\d+)\s+(\S+)", line)
        if m:
            g = group_of(m.group(3))
            shares[g] = shares.get(g, 0.0) + float(m.group(1))
            samples += int(m.group(2))
    return shares, samples


class Steps:
    """The steps of ``stage_costs`` for generated pairs, on one thread (OpenCV and torch), the model's maps computed
    once beforehand (the model itself is not measured)."""

    def __init__(self, pairs: int, checkpoint: str):
        import cv2
        import torch

        from anodfdnet.checkpoint import read_info, resolve
        from anodfdnet.predict import Predictor

        from .inspect_bench import make_pairs

        cv2.setNumThreads(1)
        torch.set_num_threads(1)
        folder = make_pairs(max(pairs, 1), 512)
        self.info = read_info(resolve(checkpoint))
        self.model = Predictor(checkpoint, device="cpu", align="off")
        self.dirs = [folder / f"p{i:05d}" for i in range(max(pairs, 1))]
        with tempfile.TemporaryDirectory() as tmp:
            self.maps = [self.pair(d, Path(tmp), i) for i, d in enumerate(self.dirs)]

    def pair(self, d: Path, run: Path, i: int, logits=None):
        """One pair's steps as the local engine runs them (its source decodes the pair, ``prepare_aligned`` aligns
        it and makes the model's inputs, the finish step writes its files): its model map when ``logits`` is None,
        else its files under ``run``."""
        from anodfdnet.data.images import load_rgb
        from anodfdnet.inference.pipeline import prepare_aligned, probabilities
        from anodfdnet.inspect.outputs import finish_pair, thumbnails

        hist, cur = load_rgb(d / "hist.jpg"), load_rgb(d / "cur.jpg")
        hh, cc, out_shape, _, a = prepare_aligned(hist, cur, self.info.eval_size, "auto")
        thumbs = thumbnails(hist, cur)
        if logits is None:
            return self.model.predict_logits(hh[None], cc[None])
        finish_pair(run, d.name, i, probabilities(logits, [out_shape], [a])[0], a, thumbs, self.info.threshold)

    def loop(self, seconds: float, started=None) -> dict:
        """Pairs one after another (one pass to warm up first) until ``seconds`` have passed."""
        from anodfdnet.inspect.outputs import make_dirs

        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp)
            make_dirs(run)
            for i, d in enumerate(self.dirs):
                self.pair(d, run, i, self.maps[i])
            if started is not None:
                started()
            done, c0, t0 = 0, time.process_time(), time.perf_counter()
            while not done or time.perf_counter() - t0 < seconds:  # one pass at least, whatever --seconds says
                for i, d in enumerate(self.dirs):
                    self.pair(d, run, i, self.maps[i])
                done += len(self.dirs)
            cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        return {"pairs": done, "seconds": wall, "cpu_ms_per_pair": cpu / done * 1000, "wall_ms_per_pair": wall / done * 1000}


def child(seconds: float, pairs: int, checkpoint: str, ready: Path) -> None:
    """The loop perf samples."""
    print(json.dumps(Steps(pairs, checkpoint).loop(seconds, started=lambda: ready.write_text("go"))))


def _in_process(steps: Steps, seconds: float, queue) -> None:
    queue.put(steps.loop(seconds))


def threads_against_processes(steps: Steps, workers: int, seconds: float, rounds: int = 2) -> list[dict]:
    """The loop in ``workers`` threads of this process and in ``workers`` forked processes, in alternating order:
    total pairs/s of each."""
    import multiprocessing as mp
    import threading

    ctx = mp.get_context("fork")
    out = []
    for r in range(rounds):
        for mode in (("threads", "processes") if r % 2 == 0 else ("processes", "threads")):
            t0 = time.perf_counter()
            if mode == "threads":
                res: list = []
                ts = [threading.Thread(target=lambda: res.append(steps.loop(seconds))) for _ in range(workers)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
            else:
                q = ctx.Queue()
                ps = [ctx.Process(target=_in_process, args=(steps, seconds, q)) for _ in range(workers)]
                for p in ps:
                    p.start()
                res = [q.get() for _ in ps]
                for p in ps:
                    p.join()
            out.append({"round": r + 1, "mode": mode, "workers": workers, "pairs": sum(x["pairs"] for x in res),
                        "pairs_per_s": sum(x["pairs"] / x["seconds"] for x in res), "wall_s": time.perf_counter() - t0})
            print(f"round {r + 1}, {workers} {mode}: {out[-1]['pairs_per_s']:.1f} pairs/s", flush=True)
    return out


def sample_with_perf(perf: str, a) -> dict:
    """The loop in a child process, sampled by perf: {"loop", "shares_pct", "samples", bounds and ceilings}."""
    with tempfile.TemporaryDirectory() as tmp:
        ready, data = Path(tmp) / "ready", Path(tmp) / "perf.data"
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.gil_share", "--child", str(a.seconds), str(a.pairs),
                                 a.checkpoint, str(ready)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        while not ready.exists():
            if proc.poll() is not None:
                raise UserError(f"the sampled process ended before it started its loop (exit code {proc.returncode}).")
            time.sleep(0.2)
        rec = subprocess.run([perf, "record", "-F", str(a.frequency), "-p", str(proc.pid), "-o", str(data), "--",
                              "sleep", str(max(1.0, a.seconds - 1.0))], capture_output=True, text=True)
        said = proc.communicate()[0].strip().splitlines()
        if proc.returncode != 0 or not said:
            raise UserError(f"the sampled process failed (exit code {proc.returncode}); its error is above.")
        if rec.returncode != 0 or not data.exists():
            raise UserError(f"perf could not sample the process: {rec.stderr.strip()[-300:]}")
        rep = subprocess.run([perf, "report", "-i", str(data), "--sort", "dso", "--stdio", "-n"], capture_output=True, text=True)
    shares, samples = parse_report(rep.stdout)
    if not samples:
        raise UserError(f"perf recorded no samples of the process: {(rec.stderr + rep.stderr).strip()[-300:]}")
    loop = json.loads(said[-1])
    cpu = loop["cpu_ms_per_pair"]
    low = shares.get("interpreter", 0.0) / 100 * cpu
    high = sum(shares.get(g, 0.0) for g in HELD + MIXED) / 100 * cpu
    return {"loop": loop, "shares_pct": shares, "samples": samples, "gil_ms_low": low, "gil_ms_high": high,
            "cap_high": 1000 / low if low else None, "cap_low": 1000 / high if high else None}


def main(a) -> int:
    from .timing import load_average, machine_header

    if not (a.seconds > 0 and a.pairs >= 1 and a.frequency >= 1):
        raise UserError("--seconds must be above 0, --pairs and --frequency at least 1.")
    out = Path(a.out)
    load_start = load_average()
    perf = shutil.which("perf")
    sampled = sample_with_perf(perf, a) if perf else None
    if sampled:
        print(f"CPU a pair {sampled['loop']['cpu_ms_per_pair']:.1f} ms; the GIL held {sampled['gil_ms_low']:.1f} to "
              f"{sampled['gil_ms_high']:.1f} ms of it: the local engine's threads cannot pass {sampled['cap_low']:.0f} to "
              f"{sampled['cap_high']:.0f} pairs/s on any number of cores", flush=True)
    else:
        print("Linux perf is not on PATH: no split by library, only threads against processes", flush=True)
    workers = min(os.cpu_count() or 1, 16)
    scaling = threads_against_processes(Steps(a.pairs, a.checkpoint), workers, a.seconds) if workers > 1 else []
    res = {"header": machine_header([]), "load_start": load_start, "load_end": load_average(), "seconds": a.seconds,
           "frequency": a.frequency, "perf": sampled, "threads_against_processes": scaling}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_name("gil.json").write_text(json.dumps(res, indent=1) + "\n")
    out.write_text(report(res, a))
    print(f"wrote {out}")
    return 0


def report(r: dict, a) -> str:
    by = {m: [x["pairs_per_s"] for x in r["threads_against_processes"] if x["mode"] == m] for m in ("threads", "processes")}
    if by["threads"] and by["processes"]:
        th, pr = sum(by["threads"]) / len(by["threads"]), sum(by["processes"]) / len(by["processes"])
        w = r["threads_against_processes"][0]["workers"]
        scaling = (f"The same loop in {w} threads of one process against {w} forked processes on this machine's {w} cores, "
                   f"{len(by['threads'])} rounds each in alternating order, {r['seconds']:g} s a round: threads "
                   f"{', '.join(f'{v:.1f}' for v in by['threads'])} pairs/s, processes {', '.join(f'{v:.1f}' for v in by['processes'])}; "
                   f"on average **threads {th:.1f} against processes {pr:.1f} pairs/s ({100 * (th / pr - 1):+.0f} %)**: what "
                   f"the GIL costs threads at {w} of them; with more threads the parts that hold it bound the rate more.")
    else:
        scaling = "One core: no threads against processes."
    p = r.get("perf")
    if p:
        loop = p["loop"]
        rows = "\n".join(f"| {g} | {s:.1f} | {s / 100 * loop['cpu_ms_per_pair']:.1f} | "
                         f"{'held' if g in HELD else 'partly' if g in MIXED else 'released'} |"
                         for g, s in sorted(p["shares_pct"].items(), key=lambda kv: -kv[1]))
        sampled = f"""- perf sampled the loop at {r['frequency']} Hz for {max(1.0, r['seconds'] - 1.0):g} s ({p['samples']} samples); the loop did
  {loop['pairs']} pairs at {loop['cpu_ms_per_pair']:.1f} ms of CPU and {loop['wall_ms_per_pair']:.1f} ms of wall time a pair
  (OpenCV and torch on one thread; the steps of `stage_costs`: decode, align auto, resize and tensors, thumbnails,
  probabilities, regions, mask and heat-map PNGs, overlay; the model's maps computed beforehand)

| where the CPU went | % of samples | ms a pair | the GIL while there |
|---|---:|---:|---|
{rows}

The GIL is held for **{p['gil_ms_low']:.1f} to {p['gil_ms_high']:.1f} ms of a pair's {loop['cpu_ms_per_pair']:.1f} ms** (the interpreter
alone, to the interpreter with numpy, the C library and the kernel). Threads of one process run those parts one at a
time, so the local engine's reader and writer threads cannot pass **{p['cap_low']:.0f} to {p['cap_high']:.0f} pairs/s** on any
number of cores (its driver and model lane hold the GIL for part of each pair too, so the real ceiling is lower).
Ray's CPU tasks are separate processes: on a many-core machine, `--engine ray` spreads these steps over every core."""
    else:
        sampled = "- Linux perf is not on PATH here: no split of the CPU by library (install linux-tools for it)."
    return f"""# How much of a pair's CPU steps hold Python's GIL (`python -m benchmarks gil`)

Command: `python -m benchmarks gil --seconds {a.seconds:g} --pairs {a.pairs}`

{chr(10).join(r['header'])}
- load average at start: {r['load_start']}, at end: {r['load_end']}
{sampled}

{scaling}
"""


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], Path(sys.argv[5]))
