"""The local engine (``--engine local``, the default): the project's prefetching pipeline in this process.

``iter_predictions`` reads, decodes and aligns pairs in ``workers`` threads ahead of the model and batches
pairs of one input shape; ``outputs.finish_pair`` (regions, PNGs, thumbnails) runs in the same number of
writer threads while the model goes on. Nothing to install or start; never imports Ray.

On a CPU the model runs in ``lanes`` threads at once, each call on its share of torch's threads (default 2 lanes):
one call on every core spends part of its time with its threads waiting for each other at each operation while
the reader and writer threads hold a core, and two single-threaded calls keep the cores busier
(benchmarks/INSPECT.md: 10.1 against 9.0 pairs/s on 2 cores, 2,000 pairs, alignment auto).

The threads share one interpreter lock: the parts of a pair's steps that hold it (2.6 to 8.4 ms of 27.7 on the host of
benchmarks/GIL.md) run one thread at a time, which caps this engine near 120 to 380 pairs/s on any number of cores.
Ray's engine runs the steps in processes.
"""
from __future__ import annotations

import contextlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from ..inference.predictor import Predictor, iter_predictions, model_lanes, torch_threads
from .outputs import finish_pair, thumbnails


def run_local(job, todo: list[int], on_result, on_error) -> str:
    """Inspect the pairs ``todo`` (indices of ``job.source``); ``on_result(row)`` and ``on_error(index, message)``
    are called in this thread. Returns a line saying what ran."""
    predictor = Predictor(job.checkpoint, device=job.device, size=job.size, path=job.path, align=job.align)
    on_cpu = predictor.device.type == "cpu"
    batch = job.batch or (1 if on_cpu else 16)
    workers = job.workers
    lanes, threads = model_lanes(predictor, job.lanes)

    def finish(pair, prob, alignment):
        return finish_pair(job.run, pair.name, job.index_of[pair.name], prob, alignment,
                           thumbnails(pair.history, pair.current), job.threshold)

    waiting: deque = deque()
    with torch_threads(threads), \
            ThreadPoolExecutor(workers, thread_name_prefix="inspect-write") if workers else contextlib.nullcontext() as writer:
        for pair, prob, alignment in iter_predictions(predictor, job.source, batch=batch, workers=workers, indices=todo,
                                                      lanes=lanes, with_alignment=True,
                                                      on_error=lambda i, e: on_error(i, str(e))):
            alignment = replace(alignment, history=None)  # the warped full-size history is not needed any more
            if writer is None:
                on_result(finish(pair, prob, alignment))
                continue
            waiting.append(writer.submit(finish, pair, prob, alignment))
            while len(waiting) > 2 * workers or (waiting and waiting[0].done()):
                on_result(waiting.popleft().result())
        for f in waiting:
            on_result(f.result())
    return (f"local engine: {predictor.runtime.detail}, batch {batch}, {lanes} model lane{'s' if lanes > 1 else ''} x "
            f"{threads} torch thread{'s' if threads > 1 else ''}, {workers} reader/writer threads")
