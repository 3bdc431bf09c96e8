"""``python -m benchmarks speed``: every speed figure of issue 6 in one process and one run.

What it measures, in this order, and writes to ``benchmarks/SPEED.md`` (and prints):

1. the machine's own matrix-multiply rate (fp32, and bf16 where torch runs it), best of N;
2. every model at batch 1 (median and p10-p90 of the timed runs after warm-up) and at a larger
   batch (pairs/s), fp32 eager under ``inference_mode``; the repetitions are interleaved
   round-robin across the models, so a noisy shared machine slows every model alike. The same
   round-robin times ``Predictor.run`` (the default inference path, with its pre/post-processing);
3. on CUDA (``--device auto`` with a GPU, or ``cuda``): the same in fp32 and under bf16 autocast;
4. the app's re-threshold render (``demo.render.render``) of a 1024x1024 image, a label-store save
   (``annotate.store.LabelStore.save``) of a 1024x1024 pair, and ``predict --data`` over a folder of
   generated pairs through the CLI's own code path (progress bar included);
5. peak memory per model (after the timings, so measuring it disturbs none of them);
6. the matmul rate again, so drift of a loaded machine shows;
7. the issue's targets, each marked met or missed from the figures above.

The app and the label store live outside the library (``demo/``, ``annotate/``); they are imported
lazily, and where they are not importable (an installed package without the repository) their rows
say so instead of failing the run.

``--quick`` runs the same code with few repetitions and 64x64 model inputs (under ~40 s); its
report says at the top that it is not for reporting.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .speed_report import FULL, QUICK, REFERENCE, DeviceRun, ModelRow, Report, Settings, best_of, format_report
from .timing import (
    MEMORY_NOTE,
    CpuPeak,
    device_sync,
    interleaved,
    load_average,
    machine_header,
    matmul_rate,
    median_spread,
    peak_memory_mb,
    timed_median,
)

if TYPE_CHECKING:
    from anodfdnet.models import ModelConfig

DEFAULT_OUT = "benchmarks/SPEED.md"


def add_arguments(p) -> None:
    """The options of ``python -m benchmarks speed``."""
    p.add_argument("--quick", action="store_true", help="few repeats and small inputs (a smoke run, not for reporting)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"report to write (default {DEFAULT_OUT})")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: the CPU, and the CUDA GPU too when there is one")


def model_list() -> list[tuple[str, ModelConfig]]:
    """(label, config) of every timed model: effnet and lite at every depth, paper at depth 2, the baselines."""
    from anodfdnet.models import DEPTHS, ModelConfig
    from anodfdnet.models.baselines import ARCHS

    models = [(f"effnet d{d}", ModelConfig.from_preset("effnet", d)) for d in DEPTHS]
    models += [(f"lite d{d}", ModelConfig.from_preset("lite", d)) for d in DEPTHS]
    models.append(("paper d2", ModelConfig.from_preset("paper", 2)))
    models += [(arch, ModelConfig.from_preset("lite", 0, arch=arch)) for arch in ARCHS]
    return models


_T0 = [time.perf_counter()]


def _log(msg: str) -> None:
    print(f"[benchmark {time.perf_counter() - _T0[0]:6.1f} s] {msg}", file=sys.stderr, flush=True)


# The models timed through Predictor.run on the default inference path: the app's default, today's lite
# d2 (what the app served before) and Unet-cat (the comparison the targets name), each the shipped
# checkpoint when there is one, else an untrained stand-in (speed does not depend on the weights).
PREDICTOR_MODELS = (("effnet d2", "effnet-d2", "effnet", "anodfdnet"), ("lite d2", "lite-d2", "lite", "anodfdnet"),
                    ("unet-cat", None, "lite", "unet-cat"))
PREDICTOR_SUFFIX = " via Predictor.run"


def _predictor_checkpoints(tmp: Path) -> dict[str, tuple[str, str]]:
    """label -> (checkpoint reference, description) of each model of PREDICTOR_MODELS."""
    from anodfdnet.checkpoint import resolve, save_checkpoint
    from anodfdnet.errors import UserError
    from anodfdnet.models import ModelConfig, build_model

    out = {}
    for label, name, preset, arch in PREDICTOR_MODELS:
        try:
            if name is None:
                raise UserError("no shipped checkpoint")
            path = resolve(name)
            out[label] = (str(path), f"shipped checkpoint {path.name}")
        except UserError:
            path = tmp / f"untrained-{label.replace(' ', '-')}.safetensors"
            torch.manual_seed(0)
            save_checkpoint(path, build_model(ModelConfig.from_preset(preset, 2, arch=arch)), {"note": "benchmark stand-in"})
            out[label] = (str(path), f"untrained {label} stand-in (speed does not depend on the weights)")
    return out


def bench_models(device: torch.device, s: Settings, ckpts: dict[str, tuple[str, str]], cpu_peak: CpuPeak) -> list[ModelRow]:
    """Batch-1 latency (interleaved), batch throughput (interleaved) and peak memory of every model,
    in fp32 and, on CUDA, under bf16 autocast."""
    from anodfdnet.device import autocast
    from anodfdnet.models import build_model, count_flops, count_parameters
    from anodfdnet.predict import Predictor

    sync = device_sync(device)
    precisions = ["fp32"] + (["bf16 autocast"] if device.type == "cuda" else [])
    batch = s.batch[device.type]
    g = torch.Generator().manual_seed(0)
    x1 = (torch.rand(2, 1, 3, s.size, s.size, generator=g) * 2 - 1).to(device)
    xb = (torch.rand(2, batch, 3, s.size, s.size, generator=g) * 2 - 1).to(device)

    _log(f"{device.type}: building the models, counting their FLOPs at {s.size}x{s.size}")
    models, info = {}, {}
    for label, cfg in model_list():
        torch.manual_seed(0)
        m = build_model(cfg).eval()
        info[label] = (count_parameters(m), count_flops(m, s.size))  # on the CPU, before moving
        models[label] = m.to(device)

    def forward(m, x, prec):
        def f():
            with torch.inference_mode(), autocast(device, enabled=prec != "fp32"):
                return m(x[0], x[1])
        return f

    rows = []
    # align="off": the model and its pre/post-processing, as the targets mean; alignment (auto, the default of
    # Predictor) costs its own time, measured by `python -m benchmarks align` (benchmarks/ALIGN.md).
    predictors = {f"{label}{PREDICTOR_SUFFIX}": Predictor(ref, device=str(device), size=s.size, align="off")
                  for label, (ref, _) in ckpts.items()}
    rng = np.random.default_rng(0)
    hist = rng.integers(0, 256, (s.size, s.size, 3), dtype=np.uint8)
    cur = hist.copy()
    cur[s.size // 4: s.size // 2, s.size // 4: s.size // 2] = 255
    for prec in precisions:
        _log(f"{device.type} {prec}: batch-1 latency, {s.repeats} interleaved rounds over {len(models)} models + "
             f"{len(predictors)} Predictors")
        fns = {label: forward(m, x1, prec) for label, m in models.items()}
        if prec == "fp32":  # each Predictor's own default path (auto: bf16 on CUDA and CPUs with native bf16, else channels-last)
            fns.update({label: (lambda pr=pr: pr.run(hist, cur)) for label, pr in predictors.items()})
        lat = interleaved(fns, s.repeats, s.warmup, sync)
        _log(f"{device.type} {prec}: throughput at batch {batch}, {s.batch_repeats} interleaved rounds")
        thr = interleaved({label: forward(m, xb, prec) for label, m in models.items()}, s.batch_repeats, 1, sync)
        for label in fns:
            med, p10, p90 = median_spread(lat[label])
            pr = predictors.get(label)
            params, flops = info[label.removesuffix(PREDICTOR_SUFFIX)]
            row_prec = prec
            if pr is not None:  # its own arithmetic: the path auto chose (bf16 where the hardware has it)
                row_prec = "bf16 autocast" if pr.path == "bf16" else "fp32"
            row = ModelRow(label if pr is None else f"{label} (default path: {pr.device_name}, {pr.runtime.detail}, incl. "
                           "pre/post-processing)", row_prec, params, flops, med, p10, p90)
            if label in thr:
                t = statistics.median(thr[label])
                row.batch, row.batch_s, row.pairs_per_s = batch, t, batch / t
            rows.append(row)
        ref = next((r for r in rows if r.label == REFERENCE and r.precision == prec), None)
        for r in rows:  # Predictor rows compare with fp32 Unet-cat whatever their own arithmetic
            if ref is not None and (r.precision == prec or (prec == "fp32" and PREDICTOR_SUFFIX in r.label)):
                r.ratio = r.median_ms / ref.median_ms
    # Peak memory last: it trims the allocator and resets the high-water mark between calls.
    _log(f"{device.type}: peak memory")
    for r in rows:
        if r.label in models:
            r.peak_mb = peak_memory_mb(device, forward(models[r.label], x1, r.precision), s.memory_repeats, cpu_peak)
    del predictors, fns  # the last fns holds the predictors too
    return rows


def fill_fractions(run: DeviceRun) -> None:
    """Achieved FLOP/s over the best matmul rate measured for the row's precision."""
    for r in run.rows:
        rate = best_of(run.matmul["fp32" if r.precision == "fp32" else "bf16"])
        if not rate:
            continue
        r.frac_b1 = r.flops / (r.median_ms / 1000) / rate
        if r.batch_s:
            r.frac_batch = r.flops * r.batch / r.batch_s / rate


def paper_width_baselines(size: int) -> list[tuple[str, int, int]]:
    """(arch, parameters, FLOPs) of the baselines at paper widths, counted on the meta device (no compute)."""
    from torch.utils.flop_counter import FlopCounterMode

    from anodfdnet.models import ModelConfig, build_model, count_parameters
    from anodfdnet.models.baselines import ARCHS

    out = []
    for arch in ARCHS:
        with torch.device("meta"):
            m = build_model(ModelConfig.from_preset("paper", 0, arch=arch)).eval()
            x = torch.zeros(1, 3, size, size)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            m(x, x)
        out.append((arch, count_parameters(m), counter.get_total_flops()))
    return out


# ---------------------------------------------------------------------------------------------------
# The app's render, the label store, predict over a folder


def _test_image(side: int):
    """A generated 1024-class pair (history, current, mask) and a smooth probability map over it."""
    import cv2

    from anodfdnet.data.synth import generate_pair

    pair = generate_pair(7, side, anomaly="foreign_body")
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.random((side, side)).astype(np.float32), (0, 0), side / 64)
    noise = (noise - noise.min()) / max(float(np.ptp(noise)), 1e-6)
    prob = np.clip(cv2.GaussianBlur(pair.mask.astype(np.float32), (0, 0), 3) + 0.55 * noise ** 3, 0, 1)
    return pair.history, pair.current, pair.mask, prob.astype(np.float32)


def bench_render(s: Settings, current: np.ndarray, prob: np.ndarray) -> dict:
    try:
        from demo.render import render
    except ImportError as e:
        return {"error": f"demo.render not importable ({e})"}
    _log(f"re-threshold render at {s.image_side}x{s.image_side}, {s.render_repeats} runs")
    thresholds = iter(np.linspace(0.3, 0.7, s.render_repeats + 1).tolist() * 2)
    res = render(prob, current, 0.5)
    med, p10, p90 = timed_median(lambda: render(prob, current, next(thresholds)), s.render_repeats, warmup=1)
    return {"median_ms": med, "p10_ms": p10, "p90_ms": p90, "regions": res.n_regions, "area_pct": res.area_pct}


def bench_label_save(s: Settings, hist: np.ndarray, cur: np.ndarray, mask: np.ndarray) -> dict:
    try:
        from annotate.store import LabelStore
    except ImportError as e:
        return {"error": f"annotate.store not importable ({e})"}
    import datasets

    _log(f"label-store save of a {s.image_side}x{s.image_side} pair, {s.save_repeats} saves")
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # one 'Creating parquet' bar per save would bury the log
    with tempfile.TemporaryDirectory(prefix="anodfdnet-bench-labels-") as tmp:
        store = LabelStore(tmp)
        n = iter(range(10**6))

        def save():  # a different note each time: a new row, never a duplicate
            return store.save(hist, cur, mask, "benchmark", "foreign body", note=f"benchmark {next(n)}", source="benchmark")

        try:
            med, p10, p90 = timed_median(save, s.save_repeats, warmup=1)
        finally:
            if bars:
                datasets.enable_progress_bars()
        rows = store.size()
    return {"median_ms": med, "p10_ms": p10, "p90_ms": p90, "rows": rows}


def bench_predict_folder(device: torch.device, s: Settings, ckpt: str, tmp: Path) -> dict:
    """``python -m anodfdnet predict --data pairs:FOLDER --out-dir ...`` in this process (the CLI's own
    code path, its progress bar on stderr), timed from the call to its return."""
    from anodfdnet.cli import main as cli_main
    from anodfdnet.data.synth import gallery, write_pairs

    folder = write_pairs(gallery(s.folder_pairs, size=s.size), tmp / "pairs")
    out = tmp / "predicted"
    argv = ["predict", "--checkpoint", ckpt, "--data", f"pairs:{folder}", "--out-dir", str(out),
            "--size", str(s.size), "--device", str(device)]
    _log(f"predict --data over {s.folder_pairs} generated {s.size}x{s.size} pairs on {device}")
    t0 = time.perf_counter()
    rc = cli_main(argv)
    seconds = time.perf_counter() - t0
    if rc != 0:
        return {"error": f"predict exited with {rc}"}
    return {"pairs": s.folder_pairs, "seconds": seconds, "pairs_per_s": s.folder_pairs / seconds, "size": s.size,
            "written": len(list(out.glob("*_mask.png")))}


# ---------------------------------------------------------------------------------------------------
# The run


def run(device: str = "auto", quick: bool = False) -> Report:
    from anodfdnet.device import pick_device

    s = QUICK if quick else FULL
    t_start = _T0[0] = time.perf_counter()
    load_start = load_average()
    if device == "auto":
        devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    else:
        devices = [pick_device(device)]  # a UserError for cuda on a machine without one
    header = machine_header(devices)
    cpu_peak = CpuPeak()
    runs = []
    with tempfile.TemporaryDirectory(prefix="anodfdnet-bench-") as tmpdir:
        tmp = Path(tmpdir)
        ckpts = _predictor_checkpoints(tmp)
        ckpt, ckpt_note = ckpts["lite d2"][0], "; ".join(f"{label}: {note}" for label, (_, note) in ckpts.items())
        for d in devices:
            r = DeviceRun(d.type, memory_note=MEMORY_NOTE[d.type])
            n = s.matmul_n[d.type]
            _log(f"{d.type}: {n}x{n} matmul rate, fp32 and bf16")
            r.matmul = {"fp32": [matmul_rate(d, torch.float32, n, s.matmul_repeats)],
                        "bf16": [matmul_rate(d, torch.bfloat16, n, s.matmul_repeats)]}
            r.rows = bench_models(d, s, ckpts, cpu_peak)
            r.folder = bench_predict_folder(d, s, ckpt, tmp / d.type)
            for k in ("fp32", "bf16"):  # again at the end: how much the machine drifted meanwhile
                r.matmul[k].append(matmul_rate(d, torch.float32 if k == "fp32" else torch.bfloat16, n, s.matmul_repeats))
            fill_fractions(r)
            runs.append(r)
        hist, cur, mask, prob = _test_image(s.image_side)
        render = bench_render(s, cur, prob)
        save = bench_label_save(s, hist, cur, mask)
    return Report(s, header, runs, render, save, paper_width_baselines(s.size), ckpt_note, (load_start, load_average()),
                  time.perf_counter() - t_start)


def main(args) -> int:
    """Entry point of ``python -m benchmarks speed`` (args: .quick, .out, .device)."""
    quick, out, device = bool(getattr(args, "quick", False)), getattr(args, "out", None) or DEFAULT_OUT, getattr(args, "device", "auto")
    command = "python -m benchmarks speed" + (" --quick" if quick else "") + (f" --device {device}" if device != "auto" else "")
    rep = run(device, quick)
    text = format_report(rep, command)
    print(text)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    _log(f"wrote {path}")
    return 0
