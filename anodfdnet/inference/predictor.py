"""Inference on pairs of any size: ``Predictor`` loads a checkpoint once and maps a (history, current)
pair to a float32 probability map at the current image's original size (through ``pipeline``, on the
inference path ``runtime`` builds); ``iter_predictions`` does every pair of a source, batched.

It is safe to call from several threads at once: the model is in eval mode under ``inference_mode``
and nothing in a forward pass mutates shared state.
"""
from __future__ import annotations

import contextlib
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ..align import Alignment, check_mode
from ..checkpoint import load_checkpoint
from ..device import describe_device, pick_device
from ..errors import UserError
from .pipeline import predict_aligned, prepare_aligned, probabilities
from .runtime import build_runtime


@dataclass
class Prediction:
    prob: np.ndarray  # float32 HxW at the current image's size
    seconds: float  # model time including pre/post-processing
    device: str
    input_shape: tuple[int, int]
    path: str = "eager"  # the inference path that ran (anodfdnet.inference.runtime.PATHS)
    alignment: Alignment | None = None  # how the history was brought onto the current view (anodfdnet.align)


class Predictor:
    def __init__(self, checkpoint, device: str = "auto", size: int | None | str = "checkpoint", path: str = "auto",
                 align: str = "auto"):
        """checkpoint: a reference for anodfdnet.checkpoint.resolve (path, shipped name, hf://...).
        size: the model's input long side; "checkpoint" takes the checkpoint's preferred size,
        None runs at the image's own size (rounded to a multiple of 16).
        path: the inference path (anodfdnet.inference.runtime): "auto" is the fastest accepted one here.
        align: how the history is brought onto the current view (anodfdnet.align.MODES); "auto" warps it
        when a trustworthy estimate says the views differ, and leaves registered pairs alone."""
        self.align = check_mode(align)
        self.device = pick_device(device)
        self.model, self.info = load_checkpoint(checkpoint, self.device)
        self.size = self.info.eval_size if size == "checkpoint" else size
        self.device_name = describe_device(self.device)
        self.runtime = build_runtime(self.model, self.info.path, self.device, path)

    @property
    def path(self) -> str:
        return self.runtime.path

    @property
    def config(self):
        return self.info.config

    @property
    def threshold(self) -> float:
        """The checkpoint's calibrated default threshold (see ``CheckpointInfo.threshold``)."""
        return self.info.threshold

    @torch.inference_mode()
    def predict_logits(self, history: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        """Batched model call on prepared tensors (B x 3 x H x W in [-1, 1]); returns float32 logits."""
        return self.runtime(history.to(self.device), current.to(self.device))

    def predict(self, history, current) -> np.ndarray:
        """history, current: paths, PIL images or uint8 arrays. Returns float32 HxW in [0, 1]."""
        return self.run(history, current).prob

    def run(self, history, current, align: str | None = None) -> Prediction:
        """One pair; ``align`` overrides the predictor's alignment mode for this call."""
        t0 = time.perf_counter()
        mode = self.align if align is None else check_mode(align)
        prob, shape, alignment = predict_aligned(self.runtime, history, current, self.size, self.device, align=mode)
        return Prediction(prob, time.perf_counter() - t0, self.device_name, shape, self.path, alignment)


@dataclass
class _Prepared:
    pair: object
    history: torch.Tensor
    current: torch.Tensor
    out_shape: tuple[int, int]
    shape: tuple[int, int]
    alignment: Alignment


@dataclass
class _Failed:
    index: int
    error: UserError


DEFAULT_CPU_LANES = 2  # measured on 2 cores only (benchmarks/INSPECT.md); a GPU runs one lane with bigger batches


def cpu_lanes(lanes: int | None, threads: int) -> tuple[int, int]:
    """(model lanes, torch threads for each) on a CPU with ``threads`` torch threads: ``lanes`` None takes the
    default, capped at the threads there are."""
    n = min(DEFAULT_CPU_LANES, threads) if lanes is None else lanes
    return max(1, n), max(1, threads // max(1, n))


MAX_LANES = 64  # each lane keeps 2 x batch prepared pairs in memory ahead of it


def check_lanes(lanes: int | None) -> None:
    """A clear error for a ``--lanes`` that is not 1 to MAX_LANES (None: the default)."""
    if lanes is not None and not 1 <= lanes <= MAX_LANES:
        raise UserError(f"--lanes must be 1 or more and at most {MAX_LANES} (each lane holds prepared pairs in memory), "
                        f"got {lanes}.")


def model_lanes(predictor: Predictor, lanes: int | None) -> tuple[int, int]:
    """(model calls in flight, torch threads for each) for ``iter_predictions`` on this predictor's device: on a
    CPU two single-threaded calls keep the cores busier than one call on all of them while reader and writer
    threads hold a core (benchmarks/INSPECT.md); on a GPU one lane, which batches."""
    check_lanes(lanes)
    if predictor.device.type != "cpu":
        return lanes or 1, torch.get_num_threads()
    return cpu_lanes(lanes, torch.get_num_threads())


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op threads set to ``n`` inside the block and restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def iter_predictions(predictor: Predictor, source, batch: int = 1, workers: int = 2, limit: int | None = None,
                     with_alignment: bool = False, indices=None, on_error=None, lanes: int = 1):
    """Yield (pair, probability map) for every pair of a ``data.Source`` (the first ``limit``), in order;
    (pair, map, alignment) with ``with_alignment``. Each pair is aligned with ``predictor.align``.

    ``indices``: only these pairs of the source, in this order (``limit`` then caps their number).
    ``on_error``: called as ``on_error(index, UserError)`` for a pair that cannot be read, which is then
    skipped; without it the error stops the iteration (raised).

    Decoding and preprocessing run in ``workers`` threads ahead of the model (image decoding and resizing
    release the GIL), so the model is not kept waiting; 0 prepares each pair in the calling thread.
    Consecutive pairs whose model input shape is the same go through the model together, up to ``batch``
    at a time. ``lanes``: model calls in flight at once, each in its own thread (results still come in order); on
    a CPU, calls on one torch thread each (``torch.set_num_threads``, the caller's choice) use the cores better
    than one call on all of them, whose threads wait for each other at every operation."""
    if batch < 1:
        raise UserError(f"batch must be 1 or more, got {batch}.")
    if lanes < 1:
        raise UserError(f"lanes must be 1 or more, got {lanes}.")
    order = list(range(len(source))) if indices is None else [int(i) for i in indices]
    n = len(order) if limit is None else min(limit, len(order))

    def load(k: int) -> _Prepared | None:
        i = order[k]
        try:
            pair = source[i]
            h, c, out_shape, shape, alignment = prepare_aligned(pair.history, pair.current, predictor.size, predictor.align)
        except UserError as e:
            if on_error is None:
                raise
            return _Failed(i, e)
        return _Prepared(pair, h, c, tuple(out_shape), tuple(shape), alignment)

    def run(group: list[_Prepared]) -> list[tuple]:
        logits = predictor.predict_logits(torch.stack([g.history for g in group]), torch.stack([g.current for g in group]))
        probs = probabilities(logits, [g.out_shape for g in group], [g.alignment for g in group])
        return [(g.pair, prob, g.alignment) if with_alignment else (g.pair, prob) for g, prob in zip(group, probs)]

    def groups():
        group: list[_Prepared] = []
        for item in _prefetched(load, n, workers, ahead=max(2 * batch * lanes, 2 * workers)):
            if isinstance(item, _Failed):
                on_error(item.index, item.error)
                continue
            if group and (item.shape != group[0].shape or len(group) >= batch):
                yield group
                group = []
            group.append(item)
        if group:
            yield group

    if lanes == 1:
        for group in groups():
            yield from run(group)
        return
    with ThreadPoolExecutor(lanes, thread_name_prefix="anodfdnet-model") as pool:
        calls: deque = deque()
        for group in groups():
            calls.append(pool.submit(run, group))
            while len(calls) > lanes or (calls and calls[0].done()):
                yield from calls.popleft().result()
        while calls:
            yield from calls.popleft().result()


def _prefetched(load, n: int, workers: int, ahead: int):
    """load(0), ..., load(n - 1) in order, computed up to ``ahead`` items early by ``workers`` threads."""
    if workers <= 0:
        yield from (load(i) for i in range(n))
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="anodfdnet-load") as pool:
        pending: deque = deque(pool.submit(load, i) for i in range(min(ahead, n)))
        next_index = len(pending)
        while pending:
            item = pending.popleft().result()
            if next_index < n:
                pending.append(pool.submit(load, next_index))
                next_index += 1
            yield item
