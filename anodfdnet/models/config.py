"""What every architecture is built from and what it takes: ``ModelConfig`` (with the width ``PRESETS`` and
the paper's Transformer ``DEPTHS``) and ``check_input``, the (history, current) input contract.

A model of this package is built from a ``ModelConfig`` by ``anodfdnet.models.registry.build_model``, takes
``forward(history, current)`` with B x 3 x H x W tensors in [-1, 1] (H and W multiples of 16) and returns
B x 1 x H x W logits. The config is what a checkpoint records (``to_dict`` / ``from_dict``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

DEPTHS = (0, 1, 2, 4, 8)

# Widths per preset. ``paper`` is the paper's; ``lite`` keeps the architecture with narrower
# widths so that a 256x256 pair runs in tens of milliseconds on a 2-core CPU. ``effnet`` swaps the
# from-scratch encoder for EfficientNet-Lite0 with ImageNet weights (``models/efficientnet_lite.py``);
# everything after the encoder is the same architecture at lite widths.
PRESETS: dict[str, dict] = {
    "paper": dict(encoder="dcgan", ndf=64, hidden=1024, heads=16, mlp=2048),
    "lite": dict(encoder="dcgan", ndf=16, hidden=256, heads=8, mlp=512),
    "effnet": dict(encoder="efficientnet-lite0", ndf=16, hidden=256, heads=8, mlp=512),
    "effnet1": dict(encoder="efficientnet-lite1", ndf=16, hidden=256, heads=8, mlp=512),  # Lite1: deeper, same taps
}
ENCODERS = ("dcgan", "efficientnet-lite0", "efficientnet-lite1")
# The bottleneck on the deepest features: the paper's Transformer over |e5(current) - e5(history)|, or FOD's
# I2Correlation (models/i2c.py: intra-correlation over the current image's tokens, inter-correlation from them
# to the history's tokens, the history being the reference).
BOTTLENECKS = ("transformer", "i2c")
# What the model's logits are: "supervised" (the decoder's map, trained on masks) or "normal" (the I2Correlation
# discrepancy score, trained on pairs without anomalies only; anodfdnet/objective.py).
OBJECTIVES = ("supervised", "normal")


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "anodfdnet"  # a name of anodfdnet.models.registry.ARCHS: "anodfdnet" or a baseline
    preset: str = "lite"
    encoder: str = "dcgan"  # "dcgan" (the paper's, from scratch), "efficientnet-lite0" or "-lite1" (ImageNet-pretrained)
    depth: int = 2  # bottleneck layers on the deepest features; 0 = no Transformer (i2c: one correlation, no MLP)
    ndf: int = 16  # encoder base width; taps have ndf, ndf, 2ndf, 4ndf, 8ndf, 16ndf channels
    hidden: int = 256  # Transformer width
    heads: int = 8
    mlp: int = 512
    img_size: int = 256  # size at which the position embedding is learned
    embed_dropout: float = 0.2
    block_dropout: float = 0.1
    bottleneck: str = "transformer"  # one of BOTTLENECKS; older checkpoints have no field: the Transformer
    objective: str = "supervised"  # one of OBJECTIVES; "normal" needs the i2c bottleneck

    @classmethod
    def from_preset(cls, preset: str = "lite", depth: int = 2, arch: str = "anodfdnet", **overrides):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        if depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        cfg = cls(arch=arch, preset=preset, depth=depth, **{**PRESETS[preset], **overrides})
        if cfg.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {cfg.encoder!r}; choose one of {ENCODERS}")
        if cfg.bottleneck not in BOTTLENECKS:
            raise ValueError(f"unknown bottleneck {cfg.bottleneck!r}; choose one of {BOTTLENECKS}")
        if cfg.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {cfg.objective!r}; choose one of {OBJECTIVES}")
        if cfg.bottleneck == "i2c" and cfg.arch != "anodfdnet":
            raise ValueError(f"the i2c bottleneck is AnoDFDNet's; {cfg.arch!r} has none")
        if cfg.objective == "normal" and cfg.bottleneck != "i2c":
            raise ValueError("the normal objective scores by the I2Correlation discrepancy: it needs the i2c bottleneck")
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def check_input(history: torch.Tensor, current: torch.Tensor) -> None:
    """Raise ValueError unless history and current are B x 3 x H x W tensors of one shape, H and W multiples of 16."""
    if history.shape != current.shape:
        raise ValueError(f"history {tuple(history.shape)} and current {tuple(current.shape)} differ in shape")
    if history.ndim != 4 or history.shape[1] != 3:
        raise ValueError(f"expected B x 3 x H x W tensors, got {tuple(history.shape)}")
    h, w = history.shape[-2:]
    if h % 16 or w % 16:
        raise ValueError(f"height and width must be multiples of 16, got {h}x{w}")
