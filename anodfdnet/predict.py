"""The ``predict`` command, and the public home of ``Predictor``.

``from anodfdnet.predict import Predictor`` is the documented way in (``Predictor``, ``Prediction`` and
``iter_predictions`` live in ``anodfdnet.inference.predictor``). ``predict_files`` is the command: the mask
and heat-map PNGs of one pair, or of every pair of a SPEC, written while the model runs.

Alignment (``--align``) is recorded in every output: the PNGs carry it as text chunks (``anodfdnet.align``:
the JSON of ``Alignment.meta``), pixels the aligned history does not cover are 0 in the mask, grey in the
heat map and white in ``*_uncovered.png`` (written only when there are any), and ``--data`` writes one JSON
line per pair to ``OUT_DIR/alignment.jsonl``.
"""
from __future__ import annotations

import contextlib
import json
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from .data import parse_spec
from .data.images import save_mask_png
from .errors import UserError
from .inference.predictor import Prediction, Predictor, iter_predictions, model_lanes, torch_threads
from .metrics import binarize
from .visualize import save_heatmap_png

# zlib level of the PNGs written for many pairs (predict --data, inspect): 1 takes half the CPU of PIL's default 6
# (a 512x512 mask 0.5 against 1.0 ms, a heat map 0.6 against 1.2 ms) for files a kB or two larger.
BATCH_PNG_LEVEL = 1

__all__ = ["Prediction", "Predictor", "iter_predictions", "predict_files"]


def predict_files(checkpoint: str, *, history: str | None = None, current: str | None = None, out: str | None = None,
                  heatmap: str | None = None, data: str | None = None, out_dir: str | None = None, threshold: float | None = None,
                  size: int | None | str = "checkpoint", device: str = "auto", path: str = "auto", batch: int | None = None,
                  workers: int = 2, align: str = "auto", lanes: int | None = None) -> None:
    """Either one pair (``history``, ``current`` -> the mask ``out`` and/or the heat map ``heatmap``) or every
    pair of the SPEC ``data`` (-> ``out_dir/NAME_mask.png`` and ``NAME_heat.png``); says what it wrote.
    ``threshold`` None takes the checkpoint's calibrated threshold; ``lanes``: model calls in flight with ``data``
    (``model_lanes``: 2 on a CPU, 1 on a GPU)."""
    one = history or current or out or heatmap
    if bool(one) == bool(data):
        raise UserError("give either --history, --current and --out for one pair, or --data and --out-dir for many.")
    predictor = Predictor(checkpoint, device=device, size=size, path=path, align=align)
    if threshold is None:
        threshold = predictor.threshold
    if one:
        if not (history and current and (out or heatmap)):
            raise UserError("one-pair prediction needs --history, --current and --out (and/or --heatmap).")
        for target in (out, heatmap):  # missing parent folders are made, before the model runs
            if target:
                _make_parent(target)
        res = predictor.run(history, current)
        a = res.alignment
        text = png_text(a, threshold)
        if out:
            save_mask_png(out, binarize(res.prob, threshold), text)
        if heatmap:
            save_heatmap_png(heatmap, res.prob, a.valid, text)
        if a.valid is not None:
            first = Path(out or heatmap)
            save_mask_png(first.with_name(f"{first.stem}_uncovered.png"), ~a.valid, text)
        area = float(binarize(res.prob, threshold).mean()) * 100
        print(f"{current}: {area:.3f}% anomalous at threshold {threshold} ({res.seconds * 1000:.0f} ms on {res.device}, "
              f"{predictor.runtime.detail}); {a.verdict()}")
        return
    if not out_dir:
        raise UserError("--data needs --out-dir for the masks and heat maps.")
    if workers < 0:
        raise UserError(f"--workers must be 0 or more, got {workers}.")
    lanes, threads = model_lanes(predictor, lanes)
    source = parse_spec(data)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    batch = batch if batch is not None else (16 if predictor.device.type == "cuda" else 1)
    if batch < 1:
        raise UserError(f"--batch must be 1 or more, got {batch}.")

    def write(name: str, prob, a) -> None:
        text = png_text(a, threshold)
        save_mask_png(folder / f"{name}_mask.png", binarize(prob, threshold), text, BATCH_PNG_LEVEL)
        save_heatmap_png(folder / f"{name}_heat.png", prob, a.valid, text, BATCH_PNG_LEVEL)
        if a.valid is not None:
            save_mask_png(folder / f"{name}_uncovered.png", ~a.valid, text, BATCH_PNG_LEVEL)

    # Outputs are encoded in threads while the model runs on the next batch; at most 2 x workers wait.
    bar = tqdm(total=len(source), desc=f"predict ({predictor.runtime.path})", unit="pair")
    with torch_threads(threads), \
            ThreadPoolExecutor(workers, thread_name_prefix="anodfdnet-write") if workers else contextlib.nullcontext() as writer, \
            open(folder / "alignment.jsonl", "w") as log:
        waiting: deque = deque()
        for pair, prob, a in iter_predictions(predictor, source, batch=batch, workers=workers, lanes=lanes, with_alignment=True):
            log.write(json.dumps({"name": pair.name, **a.meta()}) + "\n")
            if writer is None:
                write(pair.name, prob, a)
                bar.update(1)
                continue
            waiting.append(writer.submit(write, pair.name, prob, a))
            while len(waiting) > 2 * workers or (waiting and waiting[0].done()):
                waiting.popleft().result()
                bar.update(1)
        for f in waiting:
            f.result()
            bar.update(1)
    bar.close()
    print(f"wrote {len(source)} masks and heat maps to {folder} ({predictor.runtime.detail}, batch {batch}, {lanes} model "
          f"lane{'s' if lanes > 1 else ''} x {threads} torch thread{'s' if threads > 1 else ''})")


def _make_parent(target: str) -> None:
    parent = Path(target).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the folder '{parent}' for '{target}': {e.strerror or e}.") from None


def png_text(alignment, threshold: float, meta: dict | None = None) -> dict:
    """The PNG text chunks of an output: the threshold and how the pair was aligned (``meta``: the alignment's
    ``meta()`` when the caller has it already)."""
    return {"anodfdnet.threshold": f"{threshold:.6g}", "anodfdnet.align": json.dumps(alignment.meta() if meta is None else meta)}
