"""Feature maps as tokens: the learned position embedding both bottlenecks (Transformer, I2Correlation) add.

One owner for the resize rule: the embedding is learned on a ``grid`` x ``grid`` token grid (the training
size / 16) and resized bicubically to any other grid, so one model serves every input size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_position_embedding(pos: torch.Tensor, grid: int, h: int, w: int) -> torch.Tensor:
    """``pos`` (1 x grid² x D) for an h x w token grid. While exporting (ONNX), h and w are symbolic: always
    resize, so the graph serves every input size (a bicubic resize to the same size is the identity)."""
    if (h, w) == (grid, grid) and not torch.compiler.is_exporting():
        return pos
    p = pos.transpose(1, 2).reshape(1, -1, grid, grid)
    p = F.interpolate(p, size=(h, w), mode="bicubic", align_corners=False)
    return p.flatten(2).transpose(1, 2)
