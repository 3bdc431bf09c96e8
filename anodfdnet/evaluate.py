"""Evaluation over a data source: run the model pair by pair at its evaluation size, upsample the map
to the ground-truth mask's own resolution and accumulate pixel metrics over the whole set.

Under torchrun each rank takes every world-th pair and the metric state is summed across ranks.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from .data import Source
from .device import autocast
from .errors import UserError
from .metrics import PixelMetrics
from .predict import prepare_pair


def evaluate(model: torch.nn.Module, source: Source, size: int | None, device: torch.device,
             threshold: float = 0.5, limit: int | None = None, progress: bool = True, desc: str = "evaluate",
             with_roc: bool = False, forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None):
    """Metrics dict (pairs, precision, recall, oa, f1, iou, auc, eer) of ``model`` on ``source``.

    size: the model's input long side (None = each image's own size). limit: the first N pairs only.
    with_roc: also return the pixel ROC as (fpr, tpr, thresholds).
    forward: how to run the model (an ``anodfdnet.runtime.Runtime``); default: the model itself, under
    bf16 autocast on CUDA (as during training).
    """
    metrics = accumulate(model, source, size, device, threshold, limit, progress, desc, forward)
    return (metrics.compute(), metrics.roc()) if with_roc else metrics.compute()


@torch.no_grad()
def accumulate(model: torch.nn.Module, source: Source, size: int | None, device: torch.device,
               threshold: float = 0.5, limit: int | None = None, progress: bool = True, desc: str = "evaluate",
               forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> PixelMetrics:
    """The :class:`PixelMetrics` of ``model`` on ``source`` (summed over DDP ranks); see :func:`evaluate`."""
    was_training = model.training
    model.eval()
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    n = len(source) if limit is None else min(limit, len(source))
    metrics = PixelMetrics(threshold=threshold)
    indices = range(rank, n, world)
    for i in tqdm(indices, desc=desc, disable=not progress or rank != 0, leave=False, unit="pair"):
        pair = source[i]
        if pair.mask is None:
            raise UserError(f"pair '{pair.name}' of '{source.spec}' has no ground-truth mask, so it cannot be evaluated.")
        h, c, _, _ = prepare_pair(pair.history, pair.current, size)
        if forward is not None:
            logits = forward(h[None].to(device), c[None].to(device)).float()
        else:
            with autocast(device):
                logits = model(h[None].to(device), c[None].to(device)).float()
        if tuple(logits.shape[-2:]) != pair.mask.shape:
            logits = F.interpolate(logits, size=pair.mask.shape, mode="bilinear", align_corners=False)
        metrics.update(torch.sigmoid(logits)[0, 0].cpu().numpy(), pair.mask)
    if world > 1:
        state = metrics.state().to(device)  # NCCL reduces CUDA tensors only
        dist.all_reduce(state)
        metrics.load_state(state.cpu())
    model.train(was_training)
    return metrics
