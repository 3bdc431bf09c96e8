"""Training recipes: the optimiser, its learning-rate schedule and the default loss, by name.

``paper``  the paper's: Adam at 2e-4 with the GAN-style betas (0.5, 0.999), a constant rate, BCE.
``fast``   what converges faster per CPU-hour here (``benchmarks/TRAINING.md`` has the comparison): AdamW
           at 1e-3 with betas (0.9, 0.999) and weight decay 1e-4 on the weights only (not on norms, biases
           or the position embedding), a linear warm-up over the first 3 % of training, then cosine decay
           to 2 % of the peak; BCE + Dice. A pretrained encoder learns at ``encoder_lr`` x the rate, so the
           ImageNet features are adapted rather than overwritten in the first hundred steps.

The schedule is a function of *progress* in [0, 1] (steps done / steps planned, or the share of a time
budget used), so a run stopped by a time budget still ends its decay.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Recipe:
    name: str
    lr: float
    betas: tuple[float, float]
    weight_decay: float
    warmup: float  # share of training spent warming up linearly from 0
    final_lr: float  # the rate at the end, as a share of the peak (1.0 = constant)
    loss: str
    encoder_lr: float = 1.0  # rate multiplier for a pretrained encoder


RECIPES: dict[str, Recipe] = {
    "paper": Recipe("paper", lr=2e-4, betas=(0.5, 0.999), weight_decay=0.0, warmup=0.0, final_lr=1.0, loss="bce"),
    "fast": Recipe("fast", lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-4, warmup=0.03, final_lr=0.02,
                   loss="bce+dice", encoder_lr=0.3),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        from .errors import UserError

        raise UserError(f"unknown recipe '{name}': use one of {', '.join(RECIPES)}.")
    return RECIPES[name]


def make_optimizer(model: torch.nn.Module, recipe: Recipe, lr: float | None = None,
                   encoder_lr: float = 1.0) -> torch.optim.Optimizer:
    """Adam (``paper``) or AdamW (``fast``) over ``model``'s trainable parameters, in groups that differ in
    decay and rate (the encoder's at ``encoder_lr`` x the peak: ``recipe.encoder_lr`` for a pretrained
    encoder); each group remembers its peak rate as ``base_lr`` for :func:`set_lr`."""
    peak = recipe.lr if lr is None else lr
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = recipe.weight_decay > 0 and p.ndim > 1 and not name.endswith(".pos")
        encoder = encoder_lr != 1.0 and name.startswith("encoder.")
        groups.setdefault((decay, encoder), []).append(p)
    param_groups = [{"params": ps, "weight_decay": recipe.weight_decay if decay else 0.0,
                     "base_lr": peak * (encoder_lr if encoder else 1.0)}
                    for (decay, encoder), ps in groups.items()]
    for g in param_groups:
        g["lr"] = g["base_lr"]
    if recipe.weight_decay > 0:
        return torch.optim.AdamW(param_groups, lr=peak, betas=recipe.betas)
    return torch.optim.Adam(param_groups, lr=peak, betas=recipe.betas)


def lr_factor(recipe: Recipe, progress: float) -> float:
    """The share of the peak rate at ``progress`` (0 = start, 1 = end of training)."""
    p = min(max(progress, 0.0), 1.0)
    if recipe.warmup > 0 and p < recipe.warmup:
        return max(p / recipe.warmup, 1e-3)
    if recipe.final_lr >= 1.0:
        return 1.0
    q = (p - recipe.warmup) / max(1.0 - recipe.warmup, 1e-9)
    return recipe.final_lr + (1.0 - recipe.final_lr) * 0.5 * (1.0 + math.cos(math.pi * q))


def set_lr(optimizer: torch.optim.Optimizer, recipe: Recipe, progress: float) -> float:
    """Apply the schedule at ``progress``; returns the factor applied."""
    f = lr_factor(recipe, progress)
    for g in optimizer.param_groups:
        g["lr"] = g["base_lr"] * f
    return f
