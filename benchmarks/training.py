"""Training throughput, before and after the CPU-hour work of issue #11: the CPU time one training step costs
in the real training loop (``anodfdnet.train.train``) on the real sources, and the data pipeline's own rates.

    python -m benchmarks training [--steps 80] [--threads 1] [--out benchmarks/TRAINING.md]

Each configuration runs ``train()`` for one epoch of ``--steps`` steps (crops of 128 at native size, batch 4,
DeepPCB + tunnel + synth mixed as in the shipped models' training; validation on two generated pairs only)
and measures the CPU time it used, its own and that of its DataLoader worker processes (``os.times``):
**CPU-seconds per step** and **steps and pairs per CPU-hour** are the figures that say how much training a
CPU-hour buys, and they barely move when other work shares the machine (wall-clock steps/s, also shown, do).
"before" is the pipeline as it was: fp32 NCHW, every JPEG decoded and every synthetic pair rendered per
step in 2 DataLoader worker processes, the paper's recipe. "after" is the default now: decoded-pair cache
(filled beforehand, as it is after a run's first pass), channels-last, bf16 autocast where
``--precision auto`` picks it, no worker processes.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

DATA = ("deeppcb:{shared}/deeppcb/trainval.txt", "ba:{shared}/tunnel_synthetic", "synth:2000")


def _shared() -> Path:
    return Path(os.environ.get("ANODFDNET_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def loop_rate(preset: str, steps: int, threads: int, after: bool, work: Path) -> dict:
    """CPU-seconds per step (this process and its workers) and wall steps/s of ``steps`` steps of the real loop."""
    import torch

    from anodfdnet.data import parse_spec
    from anodfdnet.data.pair_cache import cached
    from anodfdnet.train import TrainConfig, resolve_precision, train

    shared = _shared()
    data = [d.format(shared=shared) for d in DATA]
    out = work / f"{preset}-{'after' if after else 'before'}"
    cfg = TrainConfig(data=data, val=["synth:2:5"], out=str(out), preset=preset, depth=2, size=128, mode="crop",
                      epochs=1, steps_per_epoch=steps, batch=4, recipe="fast" if after else "paper",
                      precision="auto" if after else "fp32", channels_last=None if after else False, cache=after,
                      prior="auto" if after else "none", augment=TrainConfig.augment if after else "geometric",
                      workers=0 if after else 2, threads=threads, save_every=0, progress=False)
    if after:  # the cache as it is after a run's first pass
        for spec in data:
            src = cached(parse_spec(spec))
            for i in range(len(src)):
                src[i]
    torch.manual_seed(0)
    cpu0 = _cpu_seconds()
    train(cfg)
    cpu = _cpu_seconds() - cpu0
    rec = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    return {"preset": preset, "pipeline": "after" if after else "before", "precision": resolve_precision(cfg, torch.device("cpu")),
            "cpu_s_per_step": cpu / steps, "steps_per_s": rec["steps_per_s"], "pairs_per_s": rec["pairs_per_s"]}


def source_rates(n: int = 40) -> list[dict]:
    """Pairs/s of reading each source directly and through the decoded-pair cache (second read)."""
    from anodfdnet.data import parse_spec
    from anodfdnet.data.pair_cache import cached

    shared = _shared()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in [d.format(shared=shared) for d in DATA[:2]] + ["synth:40"]:
            src = parse_spec(spec)
            k = min(n, len(src))
            t = time.perf_counter()
            for i in range(k):
                src[i]
            direct = k / (time.perf_counter() - t)
            c = cached(src, tmp)
            for i in range(k):
                c[i]
            t = time.perf_counter()
            for i in range(k):
                c[i]
            rows.append({"source": spec.split(":")[0], "pairs": k, "direct_pairs_per_s": direct, "cached_pairs_per_s": k / (time.perf_counter() - t)})
    return rows


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.description = __doc__.split("\n\n")[0]
    ap.add_argument("--steps", type=int, default=80, help="training steps per configuration (default 80)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: CPU time per step is then the cost of a step)")
    ap.add_argument("--presets", nargs="+", default=["lite", "effnet"], help="model presets, depth 2 (default lite effnet)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("TRAINING.md")), help="report (default benchmarks/TRAINING.md)")


def main(a: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(a.threads)
    load0 = os.getloadavg()
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [loop_rate(p, a.steps, a.threads, after, Path(tmp)) for p in a.presets for after in (False, True)]
    sources = source_rates()
    load1 = os.getloadavg()
    lines = ["# Training throughput", "",
             f"Written by `python -m benchmarks training --steps {a.steps} --threads {a.threads}` "
             f"({time.strftime('%Y-%m-%d %H:%M', time.gmtime(started))} UTC, {time.time() - started:.0f} s); nothing here is typed by hand.", "",
             f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, torch {torch.__version__}, {a.threads} threads",
             f"- load average at start {load0[0]:.2f}, at end {load1[0]:.2f} (other processes compete for the cores when these exceed ~0)",
             "- the real training loop, one epoch of crops 128 at native size, batch 4, DeepPCB + tunnel + synth", "",
             "| model | pipeline | precision | CPU-s per step | steps per CPU-hour | pairs per CPU-hour | gain per CPU-hour | wall steps/s |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        base = next(b for b in rows if b["preset"] == r["preset"] and b["pipeline"] == "before")
        lines.append(f"| {r['preset']} d2 | {r['pipeline']} | {r['precision']} | {r['cpu_s_per_step']:.3f} | {3600 / r['cpu_s_per_step']:,.0f} | "
                     f"{4 * 3600 / r['cpu_s_per_step']:,.0f} | {base['cpu_s_per_step'] / r['cpu_s_per_step']:.2f}x | {r['steps_per_s']:.2f} |")
    lines += ["", "before: fp32 NCHW, no cache, 2 DataLoader worker processes decoding JPEGs and rendering synthetic pairs, paper recipe, "
              "flips only; after: decoded-pair cache, channels-last, `--precision auto`, data read in the training process, fast recipe, "
              "the default augmentation (the defaults of `train`). CPU time includes the worker processes'.", "",
              "## Reading pairs", "", "| source | pairs | decoded / rendered per read, pairs/s | from the cache, pairs/s |", "|---|---:|---:|---:|"]
    lines += [f"| {s['source']} | {s['pairs']} | {s['direct_pairs_per_s']:.0f} | {s['cached_pairs_per_s']:.0f} |" for s in sources]
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0
