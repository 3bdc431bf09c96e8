"""The one factory for every architecture of the package, and what it costs to run.

``ARCHS`` names them (AnoDFDNet and the paper's comparison models); ``build_model`` builds one from a
``ModelConfig``; ``count_parameters``, ``count_flops`` and ``describe`` measure them (``python -m anodfdnet
models`` prints ``describe()``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import UserError
from . import baselines
from .anodfdnet import AnoDFDNet
from .config import DEPTHS, PRESETS, ModelConfig

ARCHS: dict[str, type[nn.Module]] = {"anodfdnet": AnoDFDNet, **baselines.ARCHS}


def build_model(cfg: ModelConfig) -> nn.Module:
    """The model ``cfg.arch`` names, built from ``cfg``; a UserError naming the valid architectures otherwise."""
    try:
        cls = ARCHS[cfg.arch]
    except KeyError:
        raise UserError(f"Unknown architecture {cfg.arch!r}; choose one of: {', '.join(ARCHS)}.") from None
    return cls(cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, size: int = 256) -> int:
    """Forward FLOPs for one pair at size x size (torch.utils.flop_counter; a multiply-add is 2 FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    x = torch.zeros(1, 3, size, size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, x)
    model.train(was_training)
    return counter.get_total_flops()


def describe(size: int = 256) -> str:
    """Parameter counts and FLOPs per preset and depth, as printed in --help and the README."""
    rows = [f"{'preset':<6} {'depth':>5} {'params':>10} {'GFLOPs@' + str(size):>12}"]
    for preset in PRESETS:
        for depth in DEPTHS:
            m = build_model(ModelConfig.from_preset(preset, depth))
            rows.append(f"{preset:<6} {depth:>5} {count_parameters(m) / 1e6:>9.2f}M {count_flops(m, size) / 1e9:>12.2f}")
    return "\n".join(rows)
