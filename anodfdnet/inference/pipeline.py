"""The one path from a pair of images to a probability map: prepare the pair, run the model, upsample.

Prediction (``Predictor``), evaluation (``anodfdnet.evaluate``) and training's validation all go through
here, so a map is made the same way wherever it is measured:

1. ``prepare_pair``: load both images (paths, PIL or arrays), bring the history onto the current view
   (``anodfdnet.align``: warped when alignment is on and trusted, else resized), and both
   to the model's input shape (``model_input_shape``: the long side at ``size``, aspect kept, multiples
   of 16, at most ``MAX_SIDE``), as tensors in [-1, 1];
2. the model, through a ``forward(history, current) -> logits`` (an inference path of ``runtime``, or
   the model itself);
3. ``probabilities``: each map upsampled (bilinear) to its output size, the current image's own size or
   the ground-truth mask's, then the sigmoid, as float32 HxW arrays; pixels the aligned history does not
   cover are set to 0 (``align.mask_unknown``: unknown, not anomalous).

``predict_pair`` is the three steps for one pair; batched callers (``predictor.iter_predictions``) use
the steps themselves.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..align import Alignment, align_pair, mask_unknown
from ..data.images import load_rgb, resize_rgb, to_tensor

MAX_SIDE = 2048  # the longest side the model is run at; larger inputs are downscaled first

Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def model_input_shape(h: int, w: int, size: int | None) -> tuple[int, int]:
    """The network's input shape for an image of h x w: the long side scaled to ``size`` (None: kept,
    capped at MAX_SIDE), aspect kept, each side rounded to a multiple of 16 (at least 16)."""
    long_side = max(h, w)
    target = min(size or long_side, MAX_SIDE)
    scale = target / long_side
    return max(16, int(round(h * scale / 16)) * 16), max(16, int(round(w * scale / 16)) * 16)


def prepare_pair(history, current, size: int | None, align: str = "off"):
    """Load a pair (paths, PIL or arrays), bring the history onto the current (aligned with the mode
    ``align``, or resized) and both to the model's input shape. Returns (history 3xHxW, current 3xHxW,
    current's original shape, model input shape)."""
    return prepare_aligned(history, current, size, align)[:4]


def prepare_aligned(history, current, size: int | None, align: str = "off"):
    """``prepare_pair`` and the pair's :class:`anodfdnet.align.Alignment` as a fifth item."""
    hist, cur, out_shape, shape, alignment = prepare_arrays(history, current, size, align)
    return to_tensor(hist), to_tensor(cur), out_shape, shape, alignment


def prepare_arrays(history, current, size: int | None, align: str = "off"):
    """``prepare_aligned`` with the two model inputs still uint8 HxWx3 arrays (``to_tensor`` makes them the
    model's tensors): a quarter of the bytes, for passing prepared pairs between processes."""
    hist, cur = load_rgb(history), load_rgb(current)
    out_shape = cur.shape[:2]
    alignment = align_pair(hist, cur, align)
    hist = alignment.history
    shape = model_input_shape(*out_shape, size)
    if shape != out_shape:
        hist, cur = resize_rgb(hist, shape), resize_rgb(cur, shape)
    return hist, cur, out_shape, shape, alignment


def probabilities(logits: torch.Tensor, out_shapes: list[tuple[int, int]],
                  alignments: list[Alignment | None] | None = None) -> list[np.ndarray]:
    """B x 1 x h x w logits -> B float32 probability maps, each upsampled to its output shape, 0 where
    its alignment left the current view uncovered."""
    probs = []
    for i, out_shape in enumerate(out_shapes):
        li = logits[i: i + 1]
        if tuple(li.shape[-2:]) != tuple(out_shape):
            li = F.interpolate(li, size=tuple(out_shape), mode="bilinear", align_corners=False)
        prob = torch.sigmoid(li)[0, 0].cpu().numpy().astype(np.float32, copy=False)
        alignment = alignments[i] if alignments else None
        probs.append(mask_unknown(prob, alignment.valid) if alignment is not None else prob)
    return probs


@torch.inference_mode()
def predict_pair(forward: Forward, history, current, size: int | None, device: torch.device,
                 out_shape: tuple[int, int] | None = None, align: str = "off") -> tuple[np.ndarray, tuple[int, int]]:
    """One pair through the three steps: (float32 probability map at ``out_shape``, model input shape).

    ``out_shape`` defaults to the current image's own size; evaluation passes the ground-truth mask's."""
    return predict_aligned(forward, history, current, size, device, out_shape, align)[:2]


@torch.inference_mode()
def predict_aligned(forward: Forward, history, current, size: int | None, device: torch.device,
                    out_shape: tuple[int, int] | None = None, align: str = "off"):
    """``predict_pair`` and the pair's :class:`anodfdnet.align.Alignment` as a third item."""
    h, c, cur_shape, shape, alignment = prepare_aligned(history, current, size, align)
    logits = forward(h[None].to(device), c[None].to(device)).float()
    return probabilities(logits, [out_shape or cur_shape], [alignment])[0], shape, alignment
