"""Inference on pairs of any size: ``Predictor`` loads a checkpoint once and maps a (history, current)
pair to a float32 probability map at the current image's original size.

It is safe to call from several threads at once: the model is in eval mode under ``inference_mode``
and nothing in a forward pass mutates shared state.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import load_checkpoint
from .device import autocast, describe_device, pick_device
from .images import load_rgb, resize_rgb, to_tensor

MAX_SIDE = 2048  # the longest side the model is run at; larger inputs are downscaled first


def model_input_shape(h: int, w: int, size: int | None) -> tuple[int, int]:
    """The network's input shape for an image of h x w: the long side scaled to ``size`` (None: kept,
    capped at MAX_SIDE), aspect kept, each side rounded to a multiple of 16 (at least 16)."""
    long_side = max(h, w)
    target = min(size or long_side, MAX_SIDE)
    scale = target / long_side
    return max(16, int(round(h * scale / 16)) * 16), max(16, int(round(w * scale / 16)) * 16)


def prepare_pair(history, current, size: int | None):
    """Load a pair (paths, PIL or arrays), resize the history to the current and both to the model's
    input shape. Returns (history 3xHxW, current 3xHxW, current's original shape, model input shape)."""
    hist, cur = load_rgb(history), load_rgb(current)
    out_shape = cur.shape[:2]
    if hist.shape[:2] != out_shape:
        hist = resize_rgb(hist, out_shape)
    shape = model_input_shape(*out_shape, size)
    if shape != out_shape:
        hist, cur = resize_rgb(hist, shape), resize_rgb(cur, shape)
    return to_tensor(hist), to_tensor(cur), out_shape, shape


@dataclass
class Prediction:
    prob: np.ndarray  # float32 HxW at the current image's size
    seconds: float  # model time including pre/post-processing
    device: str
    input_shape: tuple[int, int]


class Predictor:
    def __init__(self, checkpoint, device: str = "auto", size: int | None | str = "checkpoint"):
        """checkpoint: a reference for anodfdnet.checkpoint.resolve (path, shipped name, hf://...).
        size: the model's input long side; "checkpoint" takes the checkpoint's preferred size,
        None runs at the image's own size (rounded to a multiple of 16)."""
        self.device = pick_device(device)
        self.model, self.info = load_checkpoint(checkpoint, self.device)
        self.size = self.info.eval_size if size == "checkpoint" else size
        self.device_name = describe_device(self.device)

    @property
    def config(self):
        return self.info.config

    @torch.inference_mode()
    def predict_logits(self, history: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        """Batched model call on prepared tensors (B x 3 x H x W in [-1, 1]); returns float32 logits."""
        with autocast(self.device):
            return self.model(history.to(self.device), current.to(self.device)).float()

    def predict(self, history, current) -> np.ndarray:
        """history, current: paths, PIL images or uint8 arrays. Returns float32 HxW in [0, 1]."""
        return self.run(history, current).prob

    def run(self, history, current) -> Prediction:
        t0 = time.perf_counter()
        h, c, out_shape, shape = prepare_pair(history, current, self.size)
        logits = self.predict_logits(h[None], c[None])
        if tuple(logits.shape[-2:]) != tuple(out_shape):
            logits = F.interpolate(logits, size=out_shape, mode="bilinear", align_corners=False)
        prob = torch.sigmoid(logits)[0, 0].cpu().numpy().astype(np.float32, copy=False)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return Prediction(prob, time.perf_counter() - t0, self.device_name, shape)
