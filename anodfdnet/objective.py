"""Training objectives: what a model learns from and what its logits mean (``train --objective``).

``supervised``  the masks teach the decoder: BCE (+ Dice) on its logits; an ``i2c`` model adds FOD's
                correlation-target loss and entropy constraint (``models/i2c.py``, weights 0.5 and 0.5).
``normal``      FOD's unsupervised set-up for a user with many normal pairs and no masks: training sees only
                pairs without anomalies (every ``--data`` SPEC is read as ``normal:SPEC``, data/normal.py) and learns the
                I2Correlation bottleneck with the patch discrepancy (each current patch reconstructed from the
                history's features through the inter attention) plus the correlation-target loss and the
                entropy constraint. The encoder stays frozen (as FOD's backbone), so the features the patch
                discrepancy compares cannot collapse. The anomaly map is the discrepancy score; after every
                epoch its logit scale is set from the training pairs (:func:`calibrate_score`), and labelled
                pairs, when given (``--val SPEC --val-limit 5``), only choose the threshold.
"""
from __future__ import annotations

import numpy as np
import torch

from .errors import UserError
from .models.config import OBJECTIVES
from .models.i2c import correlation_loss

CENTER_QUANTILE = 0.999  # probability 0.5 where the score passes this quantile of the normal pairs' pixels
SPREAD = 4.0  # ... and the median normal pixel sits this many logits below it


def check_objective(objective: str, bottleneck: str, arch: str) -> None:
    if objective not in OBJECTIVES:
        raise UserError(f"unknown objective '{objective}': use one of {', '.join(OBJECTIVES)}.")
    if objective == "normal" and (arch != "anodfdnet" or bottleneck != "i2c"):
        raise UserError("--objective normal scores by the I2Correlation discrepancy: train anodfdnet with --bottleneck i2c.")


def _take_i2c_out(model: torch.nn.Module):
    """The last training forward's I2COutput, taken off the model (a model holding graph tensors cannot be
    copied, which the inference paths of validation do)."""
    module = model.module if hasattr(model, "module") else model
    out = getattr(module, "i2c_out", None)
    if out is not None:
        module.i2c_out = None
    return out


def auxiliary_loss(model: torch.nn.Module) -> torch.Tensor | None:
    """The I2Correlation losses of the last training forward (None for a model without that bottleneck)."""
    out = _take_i2c_out(model)
    return None if out is None else correlation_loss(out)


def normal_loss(model: torch.nn.Module) -> torch.Tensor:
    """The normal objective's loss for the last training forward: patch discrepancy + correlation losses."""
    out = _take_i2c_out(model)
    return out.patch.mean() + correlation_loss(out)


@torch.no_grad()
def calibrate_score(model: torch.nn.Module, loader, device: torch.device, batches: int = 8) -> tuple[float, float]:
    """Set the normal model's logit centre and scale from the score of normal pairs (``loader``'s first batches):
    probability 0.5 at their ``CENTER_QUANTILE`` quantile, the median ``SPREAD`` logits below. Returns both."""
    module = model.module if hasattr(model, "module") else model
    i2c = module.i2c
    was = module.training
    module.eval()
    i2c.score_center.fill_(0.0)
    i2c.score_scale.fill_(1.0)
    scores = []
    for n, b in enumerate(loader):
        if n >= batches:
            break
        s = module(b["history"].to(device), b["current"].to(device)).float()
        scores.append(s.flatten()[:: max(1, s.numel() // 200_000)].cpu().numpy())
    module.train(was)
    if not scores:
        return 0.0, 1.0
    v = np.concatenate(scores)
    hi, mid = float(np.quantile(v, CENTER_QUANTILE)), float(np.quantile(v, 0.5))
    scale = max((hi - mid) / SPREAD, 1e-4)
    i2c.score_center.fill_(hi)
    i2c.score_scale.fill_(scale)
    return hi, scale
