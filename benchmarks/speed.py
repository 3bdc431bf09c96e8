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

import contextlib
import ctypes
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

if TYPE_CHECKING:
    from anodfdnet.models.anodfdnet import ModelConfig

QUICK_BANNER = "**quick run — not for reporting**"
DEFAULT_OUT = "benchmarks/SPEED.md"
REFERENCE = "unet-cat"  # the latency-ratio column divides by this row

# Issue 6's targets.
TARGET_LITE_D2_MS = 60.0  # fp32 eager, batch 1, 256x256, on the 2-core machine
TARGET_RATIO_TO_UNET = 0.5
TARGET_DEFAULT_PATH_MS = 25.0
TARGET_RENDER_MS = 50.0  # 1024x1024
TARGET_SAVE_MS = 200.0
TARGET_FOLDER_VS_MODEL = 2.0  # predict --data within 2x of the model-only rate (CUDA)


@dataclass(frozen=True)
class Settings:
    quick: bool
    size: int  # model input side
    warmup: int  # untimed rounds before the timed ones
    repeats: int  # timed batch-1 rounds (every model once per round)
    batch: dict  # device type -> batch for the throughput figure
    batch_repeats: int
    matmul_n: dict  # device type -> matrix side
    matmul_repeats: int
    image_side: int  # render and label-save image side
    render_repeats: int
    save_repeats: int
    folder_pairs: int
    memory_repeats: int


FULL = Settings(False, 256, 3, 25, {"cpu": 8, "cuda": 64}, 5, {"cpu": 2048, "cuda": 8192}, 5, 1024, 30, 12, 32, 3)
QUICK = Settings(True, 64, 1, 5, {"cpu": 2, "cuda": 8}, 2, {"cpu": 512, "cuda": 2048}, 3, 1024, 5, 3, 4, 1)


def add_arguments(p) -> None:
    """The options of ``python -m benchmarks speed``."""
    p.add_argument("--quick", action="store_true", help="few repeats and small inputs (a smoke run, not for reporting)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"report to write (default {DEFAULT_OUT})")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: the CPU, and the CUDA GPU too when there is one")


def model_list() -> list[tuple[str, ModelConfig]]:
    """(label, config) of every timed model: lite at every depth, paper at depth 2, the baselines."""
    from anodfdnet.models.baselines import ARCHS
    from anodfdnet.models.anodfdnet import DEPTHS, ModelConfig

    models = [(f"lite d{d}", ModelConfig.from_preset("lite", d)) for d in DEPTHS]
    models.append(("paper d2", ModelConfig.from_preset("paper", 2)))
    models += [(arch, ModelConfig.from_preset("lite", 0, arch=arch)) for arch in ARCHS]
    return models


# ---------------------------------------------------------------------------------------------------
# Timing helpers


_T0 = [time.perf_counter()]


def _log(msg: str) -> None:
    print(f"[benchmark {time.perf_counter() - _T0[0]:6.1f} s] {msg}", file=sys.stderr, flush=True)


def _sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


@contextlib.contextmanager
def _quiet_gc():
    """No garbage-collector pauses inside timed code."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int, sync: Callable[[], None]) -> dict[str, list[float]]:
    """Seconds of each call, ``repeats`` rounds of every function once (after ``warmup`` untimed rounds).

    Each round starts one function later than the previous one, so no function always follows the
    same neighbour; a slow spell of the machine spreads over every function alike.
    """
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    with _quiet_gc():
        for _ in range(warmup):
            for n in names:
                fns[n]()
        sync()
        for r in range(repeats):
            k = r % len(names)
            for n in names[k:] + names[:k]:
                sync()
                t0 = time.perf_counter()
                fns[n]()
                sync()
                times[n].append(time.perf_counter() - t0)
    return times


def median_spread(seconds: list[float]) -> tuple[float, float, float]:
    """(median, p10, p90) in milliseconds."""
    ms = np.asarray(seconds) * 1000.0
    return float(np.median(ms)), float(np.percentile(ms, 10)), float(np.percentile(ms, 90))


def timed_median(fn: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[float, float, float]:
    return median_spread(interleaved({"f": fn}, repeats, warmup, lambda: None)["f"])


# ---------------------------------------------------------------------------------------------------
# The machine


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int, repeats: int, budget_s: float = 20.0) -> float | None:
    """FLOP/s of an n x n matmul (2 n^3 FLOPs), best of ``repeats``; None if torch cannot run it."""
    sync = _sync(device)
    try:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        out = torch.matmul(a, b)  # warm-up; raises where the dtype is not supported
        sync()
    except (RuntimeError, TypeError, NotImplementedError):
        return None
    best, start = float("inf"), time.perf_counter()
    with _quiet_gc():
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            torch.matmul(a, b, out=out)
            sync()
            best = min(best, time.perf_counter() - t0)
            if time.perf_counter() - start > budget_s:
                break
    return 2.0 * n**3 / best


def _cpuinfo() -> tuple[str, set[str]]:
    from anodfdnet.inference.runtime import cpu_flags

    name, flags = cpu_flags()
    return name or platform.processor() or platform.machine(), flags


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def machine_header(devices: list[torch.device]) -> list[str]:
    import cv2

    from anodfdnet import __version__

    cpu, flags = _cpuinfo()
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    lines = [
        f"- date: {datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {cpu}; {os.cpu_count()} logical cores ({usable} usable by this process); "
        f"ISA: {', '.join(isa) or 'none of avx2/avx512/amx'}; torch CPU capability {torch.backends.cpu.get_cpu_capability()}",
        f"- torch threads: {torch.get_num_threads()} (torch's default, not changed)",
        f"- versions: python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"gradio {_version('gradio')}, opencv {cv2.__version__}, anodfdnet {__version__}",
    ]
    for d in devices:
        if d.type == "cuda":
            p = torch.cuda.get_device_properties(d)
            lines.append(f"- device: cuda — {p.name}, {p.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}; "
                         f"fp32 matmuls may use TF32: {torch.backends.cuda.matmul.allow_tf32}, fp32 convolutions may use "
                         f"TF32: {torch.backends.cudnn.allow_tf32} (torch's defaults, not changed)")
        else:
            lines.append("- device: cpu")
    return lines


def _loadavg() -> str:
    try:
        return "/".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


# ---------------------------------------------------------------------------------------------------
# Peak memory


class _CpuPeak:
    """Peak resident memory a call adds, on Linux: VmHWM (the RSS high-water mark) after resetting it
    through /proc/self/clear_refs, minus the RSS before; freed heap is returned to the OS first
    (malloc_trim), so memory an earlier call left cached in the allocator is counted again."""

    def __init__(self):
        self.ok = False
        try:
            self._libc = ctypes.CDLL(None)
            self._libc.malloc_trim  # noqa: B018  (glibc only)
            self._status("VmHWM")
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.ok = True
        except (OSError, AttributeError, KeyError):
            pass

    @staticmethod
    def _status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(key)

    def measure(self, fn: Callable[[], object]) -> float | None:
        if not self.ok:
            return None
        gc.collect()
        self._libc.malloc_trim(0)
        before = self._status("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        fn()
        return max(0, self._status("VmHWM") - before) / 1e6


def peak_memory_mb(device: torch.device, fn: Callable[[], object], repeats: int, cpu_peak: _CpuPeak) -> float | None:
    """Largest extra memory (MB) one call needs, over ``repeats`` calls (see MEMORY_NOTE)."""
    out = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            fn()
            torch.cuda.synchronize(device)
            out.append((torch.cuda.max_memory_allocated(device) - base) / 1e6)
        else:
            v = cpu_peak.measure(fn)
            if v is None:
                return None
            out.append(v)
    return max(out)


MEMORY_NOTE = {
    "cpu": "peak memory = the most resident memory (RSS) one batch-1 forward adds over what the process held "
           "before it: activations and workspace, the weights excluded (read from /proc/self/status VmHWM after "
           "resetting it through /proc/self/clear_refs, with the allocator's free memory trimmed first; "
           "tracemalloc does not see torch's allocations)",
    "cuda": "peak memory = torch.cuda.max_memory_allocated during one batch-1 forward minus the memory allocated "
            "before it (activations and workspace; weights excluded; the caching allocator's reserve not counted)",
}


# ---------------------------------------------------------------------------------------------------
# Models


@dataclass
class ModelRow:
    label: str
    precision: str  # "fp32" or "bf16 autocast"
    params: int
    flops: int  # per pair at the benchmark size
    median_ms: float
    p10_ms: float
    p90_ms: float
    batch: int | None = None
    batch_s: float | None = None  # median seconds of one batch
    pairs_per_s: float | None = None
    peak_mb: float | None = None
    frac_b1: float | None = None  # achieved FLOP/s at batch 1 / measured matmul rate
    frac_batch: float | None = None
    ratio: float | None = None  # median latency / the reference's


@dataclass
class DeviceRun:
    device: str  # "cpu" or "cuda"
    matmul: dict = field(default_factory=dict)  # "fp32"/"bf16" -> [before, after] FLOP/s (None: unsupported)
    rows: list[ModelRow] = field(default_factory=list)
    folder: dict | None = None  # predict --data figures
    memory_note: str = ""


def _predictor_checkpoint(tmp: Path) -> tuple[str, str]:
    """The lite d2 checkpoint ``Predictor`` loads: the shipped one, else an untrained stand-in (speed
    does not depend on the weights). Returns (reference, description)."""
    from anodfdnet.checkpoint import resolve, save_checkpoint
    from anodfdnet.errors import UserError
    from anodfdnet.models.anodfdnet import ModelConfig, build_model

    try:
        path = resolve("lite-d2")
        return str(path), f"shipped checkpoint {path.name}"
    except UserError:
        path = tmp / "untrained-lite-d2.safetensors"
        torch.manual_seed(0)
        save_checkpoint(path, build_model(ModelConfig.from_preset("lite", 2)), {"note": "benchmark stand-in"})
        return str(path), "untrained lite d2 stand-in (no shipped lite-d2 found; speed does not depend on the weights)"


def bench_models(device: torch.device, s: Settings, ckpt: str, cpu_peak: _CpuPeak) -> list[ModelRow]:
    """Batch-1 latency (interleaved), batch throughput (interleaved) and peak memory of every model,
    in fp32 and, on CUDA, under bf16 autocast."""
    from anodfdnet.device import autocast
    from anodfdnet.models.anodfdnet import build_model, count_flops, count_parameters
    from anodfdnet.predict import Predictor

    sync = _sync(device)
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
    predictor = Predictor(ckpt, device=str(device), size=s.size)
    rng = np.random.default_rng(0)
    hist = rng.integers(0, 256, (s.size, s.size, 3), dtype=np.uint8)
    cur = hist.copy()
    cur[s.size // 4: s.size // 2, s.size // 4: s.size // 2] = 255
    pred_label = "lite d2 via Predictor.run"
    for prec in precisions:
        _log(f"{device.type} {prec}: batch-1 latency, {s.repeats} interleaved rounds over {len(models)} models + Predictor")
        fns = {label: forward(m, x1, prec) for label, m in models.items()}
        if prec == "fp32":  # the Predictor's own default path (auto: bf16 on CUDA and CPUs with native bf16, else channels-last)
            fns[pred_label] = lambda pr=predictor: pr.run(hist, cur)
        lat = interleaved(fns, s.repeats, s.warmup, sync)
        _log(f"{device.type} {prec}: throughput at batch {batch}, {s.batch_repeats} interleaved rounds")
        thr = interleaved({label: forward(m, xb, prec) for label, m in models.items()}, s.batch_repeats, 1, sync)
        for label in fns:
            med, p10, p90 = median_spread(lat[label])
            base = pred_label if label == pred_label else label
            params, flops = info["lite d2" if base == pred_label else base]
            row_prec = prec
            if label == pred_label:  # its own arithmetic: the path auto chose (bf16 where the hardware has it)
                row_prec = "bf16 autocast" if predictor.path == "bf16" else "fp32"
            row = ModelRow(label if label != pred_label else f"{pred_label} (default path: {predictor.device_name}, "
                           f"{predictor.runtime.detail}, incl. pre/post-processing)", row_prec, params, flops, med, p10, p90)
            if label in thr:
                t = statistics.median(thr[label])
                row.batch, row.batch_s, row.pairs_per_s = batch, t, batch / t
            rows.append(row)
        ref = next((r for r in rows if r.label == REFERENCE and r.precision == prec), None)
        for r in rows:  # the Predictor row compares with fp32 Unet-cat whatever its own arithmetic
            if ref is not None and (r.precision == prec or (prec == "fp32" and r.label.startswith(pred_label))):
                r.ratio = r.median_ms / ref.median_ms
    # Peak memory last: it trims the allocator and resets the high-water mark between calls.
    _log(f"{device.type}: peak memory")
    for r in rows:
        if r.label in models:
            r.peak_mb = peak_memory_mb(device, forward(models[r.label], x1, r.precision), s.memory_repeats, cpu_peak)
    del predictor, fns  # the last fns holds the predictor too
    return rows


def fill_fractions(run: DeviceRun) -> None:
    """Achieved FLOP/s over the best matmul rate measured for the row's precision."""
    for r in run.rows:
        rate = _best(run.matmul["fp32" if r.precision == "fp32" else "bf16"])
        if not rate:
            continue
        r.frac_b1 = r.flops / (r.median_ms / 1000) / rate
        if r.batch_s:
            r.frac_batch = r.flops * r.batch / r.batch_s / rate


def paper_width_baselines(size: int) -> list[tuple[str, int, int]]:
    """(arch, parameters, FLOPs) of the baselines at paper widths, counted on the meta device (no compute)."""
    from torch.utils.flop_counter import FlopCounterMode

    from anodfdnet.models.baselines import ARCHS
    from anodfdnet.models.anodfdnet import ModelConfig, build_model, count_parameters

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


@dataclass
class Report:
    settings: Settings
    header: list[str]
    runs: list[DeviceRun]
    render: dict
    save: dict
    paper_baselines: list
    checkpoint: str
    load: tuple[str, str]
    seconds: float = 0.0


def run(device: str = "auto", quick: bool = False) -> Report:
    from anodfdnet.device import pick_device

    s = QUICK if quick else FULL
    t_start = _T0[0] = time.perf_counter()
    load_start = _loadavg()
    if device == "auto":
        devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    else:
        devices = [pick_device(device)]  # a UserError for cuda on a machine without one
    header = machine_header(devices)
    cpu_peak = _CpuPeak()
    runs = []
    with tempfile.TemporaryDirectory(prefix="anodfdnet-bench-") as tmpdir:
        tmp = Path(tmpdir)
        ckpt, ckpt_note = _predictor_checkpoint(tmp)
        for d in devices:
            r = DeviceRun(d.type, memory_note=MEMORY_NOTE[d.type])
            n = s.matmul_n[d.type]
            _log(f"{d.type}: {n}x{n} matmul rate, fp32 and bf16")
            r.matmul = {"fp32": [matmul_rate(d, torch.float32, n, s.matmul_repeats)],
                        "bf16": [matmul_rate(d, torch.bfloat16, n, s.matmul_repeats)]}
            r.rows = bench_models(d, s, ckpt, cpu_peak)
            r.folder = bench_predict_folder(d, s, ckpt, tmp / d.type)
            for k in ("fp32", "bf16"):  # again at the end: how much the machine drifted meanwhile
                r.matmul[k].append(matmul_rate(d, torch.float32 if k == "fp32" else torch.bfloat16, n, s.matmul_repeats))
            fill_fractions(r)
            runs.append(r)
        hist, cur, mask, prob = _test_image(s.image_side)
        render = bench_render(s, cur, prob)
        save = bench_label_save(s, hist, cur, mask)
    return Report(s, header, runs, render, save, paper_width_baselines(s.size), ckpt_note, (load_start, _loadavg()),
                  time.perf_counter() - t_start)


# ---------------------------------------------------------------------------------------------------
# The report


def _g(flops_per_s: float | None) -> str:
    return "not supported" if flops_per_s is None else f"{flops_per_s / 1e9:.1f} GFLOP/s"


def _num(v: float | None, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def _best(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return max(vals) if vals else None


def _row(rows: list[ModelRow], label: str, precision: str = "fp32") -> ModelRow | None:
    return next((r for r in rows if r.label == label and r.precision == precision), None)


def _status(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def targets(rep: Report) -> list[tuple[str, str, bool | None]]:
    """(target, what was measured, met?) for each of issue 6's targets this command measures."""
    out = []
    cpu = next((r for r in rep.runs if r.device == "cpu"), None)
    cuda = next((r for r in rep.runs if r.device == "cuda"), None)
    size = rep.settings.size
    cores = os.cpu_count()
    if cpu is not None:
        lite, unet = _row(cpu.rows, "lite d2"), _row(cpu.rows, REFERENCE)
        pred = next((r for r in cpu.rows if r.label.startswith("lite d2 via Predictor")), None)
        note = "" if cores == 2 else f" (the target is for a 2-core machine; this one has {cores})"
        out.append((f"lite d2, fp32 eager, batch 1, {size}x{size}, CPU: ≤ {TARGET_LITE_D2_MS:.0f} ms{note}",
                    f"{lite.median_ms:.1f} ms", lite.median_ms <= TARGET_LITE_D2_MS))
        out.append((f"lite d2 ≤ {TARGET_RATIO_TO_UNET:g} × Unet-cat's latency, same run, CPU "
                    "(the F1 half of this target is the accuracy benchmark's)",
                    f"{lite.median_ms:.1f} / {unet.median_ms:.1f} ms = {lite.median_ms / unet.median_ms:.2f}×",
                    lite.median_ms <= TARGET_RATIO_TO_UNET * unet.median_ms))
        out.append((f"default inference path (Predictor.run, lite d2, {size}x{size}), CPU: ≤ {TARGET_DEFAULT_PATH_MS:.0f} ms",
                    f"{pred.median_ms:.1f} ms", pred.median_ms <= TARGET_DEFAULT_PATH_MS))
    side = rep.settings.image_side
    if "median_ms" in rep.render:
        out.append((f"re-threshold render at {side}x{side}: < {TARGET_RENDER_MS:.0f} ms", f"{rep.render['median_ms']:.1f} ms",
                    rep.render["median_ms"] < TARGET_RENDER_MS))
    else:
        out.append((f"re-threshold render at {side}x{side}: < {TARGET_RENDER_MS:.0f} ms", rep.render["error"], None))
    if "median_ms" in rep.save:
        out.append((f"label save ({side}x{side} pair): < {TARGET_SAVE_MS:.0f} ms", f"{rep.save['median_ms']:.1f} ms",
                    rep.save["median_ms"] < TARGET_SAVE_MS))
    else:
        out.append((f"label save: < {TARGET_SAVE_MS:.0f} ms", rep.save["error"], None))
    if cuda is not None:
        lite = _row(cuda.rows, "lite d2", "bf16 autocast")
        bf16 = _best(cuda.matmul["bf16"])
        frac = f", {100 * lite.frac_batch:.1f} % of the measured bf16 matmul rate ({_g(bf16)})" if lite.frac_batch else ""
        out.append((f"lite d2 throughput on CUDA, bf16 autocast, batch {lite.batch} (report)",
                    f"{lite.pairs_per_s:.0f} pairs/s{frac}", None))
        if "pairs_per_s" in (cuda.folder or {}):
            model_rate = lite.pairs_per_s
            ratio = model_rate / cuda.folder["pairs_per_s"]
            out.append((f"predict --data over a folder within {TARGET_FOLDER_VS_MODEL:g}× of the model-only rate "
                        f"(lite d2 bf16, batch {lite.batch}), CUDA",
                        f"{cuda.folder['pairs_per_s']:.1f} vs {model_rate:.0f} pairs/s: {ratio:.1f}× slower",
                        ratio <= TARGET_FOLDER_VS_MODEL))
    return out


def format_report(rep: Report, command: str) -> str:
    s = rep.settings
    L: list[str] = []
    if s.quick:
        L += [QUICK_BANNER + f" (`--quick`: {s.size}x{s.size} model inputs, {s.repeats} timed rounds; "
              "every figure below is from this run, at sizes and repeat counts too small to compare with the targets)", ""]
    L += ["# Speed benchmark", "", f"Written by `{command}` in one process and one run; nothing here is typed by hand.", ""]
    L += rep.header
    L += [f"- load average (1/5/15 min) at start: {rep.load[0]}, at end: {rep.load[1]} "
          "(other processes compete for the cores when these exceed ~0)",
          f"- Predictor checkpoint: {rep.checkpoint}",
          f"- duration of the run: {rep.seconds:.0f} s", ""]
    for run in rep.runs:
        dev = run.device.upper() if run.device == "cuda" else "CPU"
        fp32, bf16 = _best(run.matmul["fp32"]), _best(run.matmul["bf16"])
        n = s.matmul_n[run.device]
        L += [f"## {dev}", "", f"### Matrix multiply ({n}x{n}, best of {s.matmul_repeats}, at the start and at the end of the run)", ""]
        L += ["| dtype | start | end |", "|---|---:|---:|"]
        for k in ("fp32", "bf16"):
            L.append(f"| {k} | {_g(run.matmul[k][0])} | {_g(run.matmul[k][1])} |")
        if bf16 is None:
            L.append("\nbf16 matmul does not run here.")
        else:
            L.append(f"\nbf16 {'beats' if bf16 > fp32 else 'does not beat'} fp32 here ({bf16 / fp32:.2f}× the fp32 rate, best figures).")
        L += ["", "The fractions below divide each model's achieved FLOP/s (FLOPs / time) by the best measured matmul rate "
              "of its precision (fp32 rate for fp32; bf16 rate for bf16 autocast).", ""]
        batch = s.batch[run.device]
        L += [f"### Models at {s.size}x{s.size} (eval, inference_mode)", "",
              f"Batch-1 latency: median and p10–p90 of {s.repeats} timed runs per model after {s.warmup} warm-up round(s), "
              f"interleaved round-robin across the models; throughput: batch {batch}, median of {s.batch_repeats} "
              "interleaved runs; GFLOPs per pair from `count_flops` (a multiply-add = 2).", ""]
        L += ["| model | precision | params | GFLOPs | latency ms (median) | p10–p90 ms | × Unet-cat | "
              f"pairs/s @ batch {batch} | peak MB (b1) | % matmul rate (b1) | % matmul rate (b{batch}) |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in run.rows:
            L.append(f"| {r.label} | {r.precision} | {r.params / 1e6:.2f}M | {r.flops / 1e9:.2f} | {r.median_ms:.2f} | "
                     f"{r.p10_ms:.2f}–{r.p90_ms:.2f} | {_num(r.ratio, '.2f')} | {_num(r.pairs_per_s, '.1f')} | "
                     f"{_num(r.peak_mb, '.1f')} | {_num(r.frac_b1 and 100 * r.frac_b1, '.1f')} | "
                     f"{_num(r.frac_batch and 100 * r.frac_batch, '.1f')} |")
        L += ["", f"Baselines at lite widths (ndf 16); {run.memory_note}.", ""]
        f = run.folder or {}
        L += ["### `predict --data` over a folder", ""]
        if "pairs_per_s" in f:
            lite = _row(run.rows, "lite d2", "bf16 autocast" if run.device == "cuda" else "fp32")
            L.append(f"{f['pairs']} generated {f['size']}x{f['size']} pairs (`pairs:` layout, PNG) through the CLI's code path "
                     f"(`predict --data pairs:DIR --out-dir OUT --size {f['size']} --device {run.device}`, progress bar on stderr): "
                     f"{f['seconds']:.2f} s, **{f['pairs_per_s']:.1f} pairs/s** end to end (loading the checkpoint, decoding, "
                     f"preprocessing, the model, writing mask and heat-map PNGs); {f['written']} masks written.")
            if lite is not None:
                L.append(f"Model-only rate of lite d2 ({lite.precision}): {1000 / lite.median_ms:.1f} pairs/s at batch 1, "
                         f"{lite.pairs_per_s:.1f} pairs/s at batch {lite.batch}; the folder run is "
                         f"{1000 / lite.median_ms / f['pairs_per_s']:.1f}× / {lite.pairs_per_s / f['pairs_per_s']:.1f}× slower.")
        else:
            L.append(f"not measured: {f.get('error', 'no result')}")
        L.append("")
    L += ["## The app and the label store", ""]
    side = s.image_side
    if "median_ms" in rep.render:
        L.append(f"- re-threshold render (`demo.render.render`) of a {side}x{side} image: median **{rep.render['median_ms']:.1f} ms** "
                 f"(p10–p90 {rep.render['p10_ms']:.1f}–{rep.render['p90_ms']:.1f}) over {s.render_repeats} runs at varying "
                 f"thresholds; {rep.render['regions']} regions at 0.5")
    else:
        L.append(f"- re-threshold render: not measured: {rep.render['error']}")
    if "median_ms" in rep.save:
        L.append(f"- label-store save (`annotate.store.LabelStore.save`, a {side}x{side} pair and mask into a temporary folder, "
                 f"fsync included): median **{rep.save['median_ms']:.1f} ms** (p10–p90 {rep.save['p10_ms']:.1f}–"
                 f"{rep.save['p90_ms']:.1f}) over {s.save_repeats} saves after one warm-up save")
    else:
        L.append(f"- label-store save: not measured: {rep.save['error']}")
    L += ["", f"## Baselines at paper widths (ndf 64; counted, not timed; {s.size}x{s.size})", "",
          "| model | params | GFLOPs |", "|---|---:|---:|"]
    for arch, params, flops in rep.paper_baselines:
        L.append(f"| {arch} | {params / 1e6:.2f}M | {flops / 1e9:.2f} |")
    L += ["", "## Targets (issue 6)", ""]
    if s.quick:
        L += ["Quick run: the model figures are at the quick size, so these statuses say nothing about the targets.", ""]
    L += ["| target | measured | status |", "|---|---|---|"]
    for name, measured, ok in targets(rep):
        L.append(f"| {name} | {measured} | {_status(ok)} |")
    return "\n".join(L) + "\n"


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
