"""The local engine (``--engine local``, the default): the project's prefetching pipeline in this process.

``iter_predictions`` reads, decodes and aligns pairs in ``workers`` threads ahead of the model and batches
pairs of one input shape; ``outputs.finish_pair`` (regions, PNGs, thumbnails) runs in the same number of
writer threads while the model goes on. Nothing to install or start; never imports Ray.
"""
from __future__ import annotations

import contextlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from ..inference.predictor import Predictor, iter_predictions
from .outputs import finish_pair, thumbnails


def run_local(job, todo: list[int], on_result, on_error) -> str:
    """Inspect the pairs ``todo`` (indices of ``job.source``); ``on_result(row)`` and ``on_error(index, message)``
    are called in this thread. Returns a line saying what ran."""
    predictor = Predictor(job.checkpoint, device=job.device, size=job.size, path=job.path, align=job.align)
    batch = job.batch or (16 if predictor.device.type == "cuda" else 1)
    workers = job.workers

    def finish(pair, prob, alignment):
        return finish_pair(job.run, pair.name, job.index_of[pair.name], prob, alignment,
                           thumbnails(pair.history, pair.current), job.threshold)

    waiting: deque = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="inspect-write") if workers else contextlib.nullcontext() as writer:
        for pair, prob, alignment in iter_predictions(predictor, job.source, batch=batch, workers=workers, indices=todo,
                                                      with_alignment=True, on_error=lambda i, e: on_error(i, str(e))):
            alignment = replace(alignment, history=None)  # the warped full-size history is not needed any more
            if writer is None:
                on_result(finish(pair, prob, alignment))
                continue
            waiting.append(writer.submit(finish, pair, prob, alignment))
            while len(waiting) > 2 * workers or (waiting and waiting[0].done()):
                on_result(waiting.popleft().result())
        for f in waiting:
            on_result(f.result())
    return f"local engine: {predictor.runtime.detail}, batch {batch}, {workers} reader/writer threads"
