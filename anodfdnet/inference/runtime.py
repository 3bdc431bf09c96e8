"""Inference paths: the same model run different ways, each returning float32 logits B x 1 x H x W.

========== =====================================================================================
path       what runs
========== =====================================================================================
eager      the PyTorch model in fp32, NCHW: the reference every other path is checked against
cl         the same in fp32 with the model and inputs in channels-last (NHWC) memory format
bf16       bf16 autocast (channels-last on the CPU); CPUs with AVX512-BF16/AMX, and CUDA GPUs
compile    ``torch.compile`` of the fp32 model (inductor); compiles on the first call of each shape
onnx       the checkpoint's ONNX export (``python -m anodfdnet export --onnx``) on ONNX Runtime, CPU
========== =====================================================================================

``auto`` picks the fastest path that ``python -m benchmarks paths`` accepted (F1 within 0.5
points of eager on every validation set; see ``benchmarks/PATHS.md``): on a CPU with native bf16
(AVX512-BF16 or AMX) ``bf16``, the fastest there through ``Predictor`` at 256 and 640 pixels; on other
CPUs ``cl`` (bf16 is emulated there, and ONNX Runtime measured no faster than ``cl`` end to end: its
thread pool and torch's contend for the cores around each call); on CUDA ``bf16``. ``onnx`` stays
available by name (``--path onnx``) and as an export for serving outside PyTorch.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import UserError
from .onnx_export import onnx_available, open_onnx

PATHS = ("eager", "cl", "bf16", "compile", "onnx")
CHOICES = ("auto",) + PATHS
DESCRIPTIONS = {
    "eager": "PyTorch fp32 (reference)",
    "cl": "PyTorch fp32, channels-last",
    "bf16": "PyTorch bf16 autocast",
    "compile": "torch.compile fp32",
    "onnx": "ONNX Runtime fp32",
}


@dataclass
class Runtime:
    path: str  # one of PATHS
    detail: str  # what runs, for logs and the app ("ONNX Runtime fp32 (anodfdnet-lite-d2.onnx)")
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def __call__(self, history: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        return self.fn(history, current)


@lru_cache(maxsize=1)
def cpu_flags() -> tuple[str, frozenset[str]]:
    """(CPU model name, feature flags) from /proc/cpuinfo; ('', set()) where there is none (not Linux)."""
    name, flags = "", frozenset()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and value.strip():
                name = value.strip()
            elif key == "flags":
                flags = frozenset(value.split())
            if name and flags:
                break
    except OSError:
        pass
    return name, flags


def native_cpu_bf16() -> bool:
    """Whether this CPU does bf16 arithmetic in hardware (AVX512-BF16 or AMX), where bf16 autocast pays."""
    return bool(cpu_flags()[1] & {"avx512_bf16", "amx_bf16"})


def auto_path(device: torch.device) -> str:
    """The path ``auto`` resolves to on this device (see the module docstring for why)."""
    if device.type != "cpu":
        return "bf16"
    return "bf16" if native_cpu_bf16() and torch.backends.mkldnn.is_available() else "cl"


def _eager(model):
    def run(h, c):
        return model(h, c).float()
    return run


def _channels_last(model, device: torch.device, bf16: bool):
    from .fuse import fold_batchnorm, fuse_activations

    model = fold_batchnorm(model)  # a copy: the caller's model stays trainable
    if device.type == "cpu":
        model = fuse_activations(model)
    model = model.to(memory_format=torch.channels_last)

    def run(h, c):
        h, c = h.contiguous(memory_format=torch.channels_last), c.contiguous(memory_format=torch.channels_last)
        if bf16:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return model(h, c).float()
        return model(h, c).float()
    return run


def _bf16_cuda(model):
    from .fuse import fold_batchnorm

    model = fold_batchnorm(model)

    def run(h, c):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return model(h, c).float()
    return run


def _compiled(model):
    compiled = torch.compile(model, dynamic=False)
    lock = threading.Lock()  # compilation is not thread-safe; one call at a time

    def run(h, c):
        with lock:
            return compiled(h, c).float()
    return run


def _onnx(session, device: torch.device):
    def run(h, c):
        feed = {"history": np.ascontiguousarray(h.detach().cpu().numpy(), dtype=np.float32),
                "current": np.ascontiguousarray(c.detach().cpu().numpy(), dtype=np.float32)}
        return torch.from_numpy(session.run(["logits"], feed)[0]).to(device)
    return run


def build_runtime(model: torch.nn.Module, checkpoint: str | Path | None, device: torch.device, path: str = "auto") -> Runtime:
    """Wrap a loaded model (eval mode, on ``device``) in the asked-for path. ``checkpoint`` is the file the
    model came from (needed for ``onnx``; None: no ONNX). ``auto`` never fails (``auto_path``); an
    explicit path that cannot run here is a UserError saying why. ``cl`` and ``bf16`` run a copy of the model with
    each BatchNorm folded into its convolution and, on the CPU, each activation into oneDNN's convolution call
    (``anodfdnet/inference/fuse.py``), channels-last; ``model`` is not changed."""
    if path not in CHOICES:
        raise UserError(f"unknown inference path '{path}': use one of {', '.join(CHOICES)}.")
    cpu = device.type == "cpu"
    if path == "auto":
        path = auto_path(device)
    if path == "eager":
        return Runtime(path, DESCRIPTIONS[path], _eager(model))
    if path == "cl":
        return Runtime(path, DESCRIPTIONS[path], _channels_last(model, device, bf16=False))
    if path == "bf16":
        if cpu and not torch.backends.mkldnn.is_available():
            raise UserError("the bf16 path needs oneDNN (mkldnn), which this torch build lacks.")
        fn = _channels_last(model, device, bf16=True) if cpu else _bf16_cuda(model)
        return Runtime(path, DESCRIPTIONS[path], fn)
    if path == "compile":
        return Runtime(path, DESCRIPTIONS[path], _compiled(model))
    # onnx
    if not cpu:
        raise UserError("the onnx path runs on the CPU (the onnxruntime package here has no GPU provider): use --device cpu.")
    if not onnx_available():
        raise UserError("the onnx path needs onnxruntime (not installed by requirements.txt): pip install onnxruntime")
    found = open_onnx(checkpoint) if checkpoint is not None else None
    if not found:
        raise UserError(f"checkpoint '{checkpoint}' has no ONNX export: run python -m anodfdnet export --onnx --checkpoint "
                        f"{checkpoint}")
    session, file = found
    return Runtime("onnx", f"{DESCRIPTIONS['onnx']} ({file.name})", _onnx(session, device))
