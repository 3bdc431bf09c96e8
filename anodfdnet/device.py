"""Choosing where to run: ``auto`` means the CUDA GPU when there is one, else the CPU."""
from __future__ import annotations

import contextlib

import torch

from .errors import UserError


def pick_device(name: str | torch.device = "auto") -> torch.device:
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{name}' was asked for but this machine has no CUDA GPU visible to torch.")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"'{name}' is not a device: use auto, cpu, cuda or cuda:N.") from None


def describe_device(device: torch.device) -> str:
    """A human name for the device: the CUDA GPU's name, or 'CPU (N threads)'."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA (the model is trained in fp32; bf16 keeps its range); a no-op on CPU."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
