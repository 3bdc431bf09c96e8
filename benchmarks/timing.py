"""How the benchmarks time things and describe the machine they ran on.

Round-robin timing of several functions (``interleaved``, so a noisy shared machine slows each alike),
median and spread, the machine's matrix-multiply rate, peak memory of one call (CPU: the RSS high-water
mark; CUDA: the allocator's peak), and the header lines every report starts with (date, CPU and ISA,
threads, versions, devices). Used by ``speed`` and ``paths``.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import platform
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import torch


def device_sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


@contextlib.contextmanager
def quiet_gc():
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
    with quiet_gc():
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
    sync = device_sync(device)
    try:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        out = torch.matmul(a, b)  # warm-up; raises where the dtype is not supported
        sync()
    except (RuntimeError, TypeError, NotImplementedError):
        return None
    best, start = float("inf"), time.perf_counter()
    with quiet_gc():
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


def load_average() -> str:
    try:
        return "/".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


# ---------------------------------------------------------------------------------------------------
# Peak memory


class CpuPeak:
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


def peak_memory_mb(device: torch.device, fn: Callable[[], object], repeats: int, cpu_peak: CpuPeak) -> float | None:
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
