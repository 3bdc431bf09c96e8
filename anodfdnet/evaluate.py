"""Evaluation over a data source: every pair through the inference pipeline at the evaluation size, the
map upsampled to the ground-truth mask's own resolution, pixel metrics accumulated over the whole set.

Under torchrun each rank takes every world-th pair and the metric state is summed across ranks.
``evaluate_checkpoint`` is the ``evaluate`` command: a checkpoint on a SPEC, a table row at 0.5 (the paper's
convention) and one at the checkpoint's calibrated threshold, optional JSON and ROC plot.

Alignment (``align``, ``anodfdnet.align``): each history is brought onto its current view first. Pixels of
the current view the aligned history does not cover are *unknown*: they are left out of the metrics
(neither true nor false, positive nor negative), since nothing could be said there, and the share left
out is reported (``alignment.uncovered_pct``). With ``off`` every pixel counts, as before.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from .checkpoint import load_checkpoint
from .data import Source, parse_spec
from .data.spec import spec_display_name
from .device import autocast, pick_device
from .errors import UserError
from .align import check_mode, resize_valid
from .inference.pipeline import Forward, predict_aligned
from .inference.runtime import build_runtime
from .metrics import KEYS, PixelMetrics, format_header, format_row, plot_roc


def evaluate(model: torch.nn.Module, source: Source, size: int | None, device: torch.device,
             threshold: float = 0.5, limit: int | None = None, progress: bool = True, desc: str = "evaluate",
             with_roc: bool = False, forward: Forward | None = None, align: str = "off"):
    """Metrics dict (pairs, precision, recall, oa, f1, iou, auc, eer) of ``model`` on ``source``.

    size: the model's input long side (None = each image's own size). limit: the first N pairs only.
    with_roc: also return the pixel ROC as (fpr, tpr, thresholds).
    forward: how to run the model (an ``anodfdnet.inference.runtime.Runtime``); default: the model itself,
    under bf16 autocast on CUDA (as during training). align: the alignment mode (uncovered pixels do not count).
    """
    metrics = accumulate(model, source, size, device, threshold, limit, progress, desc, forward, align)
    return (metrics.compute(), metrics.roc()) if with_roc else metrics.compute()


def accumulate(model: torch.nn.Module, source: Source, size: int | None, device: torch.device,
               threshold: float = 0.5, limit: int | None = None, progress: bool = True, desc: str = "evaluate",
               forward: Forward | None = None, align: str = "off", alignments: list | None = None) -> PixelMetrics:
    """The :class:`PixelMetrics` of ``model`` on ``source`` (summed over DDP ranks), from which metrics at any
    other threshold follow (``PixelMetrics.at``); the arguments are :func:`evaluate`'s. ``alignments``: a list
    that receives each pair's ``Alignment`` (this rank's pairs)."""
    check_mode(align)
    was_training = model.training
    model.eval()
    forward = forward or _as_trained(model, device)
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    n = len(source) if limit is None else min(limit, len(source))
    metrics = PixelMetrics(threshold=threshold)
    indices = range(rank, n, world)
    for i in tqdm(indices, desc=desc, disable=not progress or rank != 0, leave=False, unit="pair"):
        pair = source[i]
        if pair.mask is None:
            raise UserError(f"pair '{pair.name}' of '{source.spec}' has no ground-truth mask, so it cannot be evaluated.")
        prob, _, alignment = predict_aligned(forward, pair.history, pair.current, size, device,
                                             out_shape=pair.mask.shape, align=align)
        valid = None if alignment.valid is None else resize_valid(alignment.valid, pair.mask.shape)
        metrics.update(prob, pair.mask, valid)
        if alignments is not None:
            alignment.history = None  # the record, not the image: evaluation of many pairs keeps no images
            alignments.append(alignment)
    if world > 1:
        state = metrics.state().to(device)  # NCCL reduces CUDA tensors only
        dist.all_reduce(state)
        metrics.load_state(state.cpu())
    model.train(was_training)
    return metrics


def _as_trained(model: torch.nn.Module, device: torch.device) -> Forward:
    """The model itself, under bf16 autocast on CUDA as in training (a no-op on the CPU)."""
    def run(history: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        with autocast(device):
            return model(history, current)
    return run


def evaluate_checkpoint(checkpoint: str, data: str, size: int | None | str = "checkpoint", threshold: float | None = None,
                        limit: int | None = None, device: str = "auto", path: str = "eager", json_out: str | None = None,
                        roc_out: str | None = None, align: str = "auto") -> dict:
    """The ``evaluate`` command: print the metrics table rows of ``checkpoint`` on the SPEC ``data`` and write
    them as JSON (``json_out``) and the pixel ROC curve as a PNG (``roc_out``) when asked. threshold: one
    threshold to report at; None reports at 0.5 (the paper's convention) and at the checkpoint's calibrated
    threshold (the JSON's ``calibrated``). size: "checkpoint" takes the checkpoint's preferred size. path: the
    inference path (eager, the fp32 reference, by default). align: the alignment mode (``anodfdnet.align``); the
    JSON records it and what it did (``alignment``)."""
    check_mode(align)
    dev = pick_device(device)
    model, info = load_checkpoint(checkpoint, dev)
    runtime = build_runtime(model, info.path, dev, path)
    source = parse_spec(data)
    acc = accumulate(model, source, info.eval_size if size == "checkpoint" else size, dev,
                     threshold=0.5 if threshold is None else threshold, limit=limit, forward=runtime, align=align,
                     alignments=(done := []))
    metrics = acc.compute()
    width = 30
    print(format_header(width))
    print(format_row(f"{info.name} @ {acc.threshold:.4g}", metrics, width))
    summary = alignment_summary(align, done)
    result = {**{k: metrics[k] for k in KEYS}, "threshold": acc.threshold}
    if threshold is None:
        at = {**metrics, **acc.at(info.threshold)}
        print(format_row(f"{info.name} @ {at['threshold']:.4g} (calibrated)", at, width))
        result["calibrated"] = {k: at[k] for k in ("threshold", "precision", "recall", "oa", "f1", "iou")}
    print(summary["line"])
    result["alignment"] = summary
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(result, indent=2) + "\n")
    if roc_out:
        plot_roc(*acc.roc()[:2], roc_out, title=f"{info.name} on {spec_display_name(data)}")
    return result


def alignment_summary(align: str, alignments: list) -> dict:
    """What alignment did over a set: the mode, pairs aligned (by model), reasons for leaving pairs alone
    (counted), mean uncovered share of the current views, mean alignment time, and one line saying so."""
    from collections import Counter

    n = len(alignments)
    aligned = [a for a in alignments if a.aligned]
    reasons = Counter(a.reason.split(" (")[0] for a in alignments if not a.aligned)
    uncovered = sum(a.uncovered_pct for a in alignments) / n if n else 0.0
    seconds = sum(a.seconds for a in alignments) / n if n else 0.0
    out = {"align": align, "pairs": n, "aligned": len(aligned), "models": dict(Counter(a.model for a in aligned)),
           "not_aligned_reasons": dict(reasons.most_common()), "uncovered_pct": round(uncovered, 3),
           "excluded_from_metrics": "pixels of the current view the aligned history does not cover",
           "mean_align_ms": round(1000 * seconds, 2)}
    out["line"] = (f"alignment {align}: {len(aligned)} of {n} pairs aligned, {uncovered:.2f} % of pixels uncovered "
                   f"(left out of the metrics), {1000 * seconds:.1f} ms per pair")
    return out
