"""The Ray engine (``--engine ray``): the same steps as the local engine, spread over a Ray cluster with Ray Data.

Why Ray: an archive of a night's images outgrows one machine, and Ray Data streams a dataset through CPU tasks
and a pool of (GPU) actors across a cluster with back-pressure, so decoding, alignment and PNG writing scale
with the cluster's cores while each model stays loaded once per actor. Ray is an optional extra
(``pip install .[ray]``); only this module imports it, and only when the engine is chosen.

The pipeline (one Ray Data dataset of pair indices, each with its files where the source has plain files, streamed):

1. **prepare** (CPU tasks, one CPU each): read the pair (from its files, ``Source.detached``; other sources are
   opened from the SPEC once per worker process), align it, bring it to the model's input
   shape (``pipeline.prepare_arrays``: uint8 arrays, a quarter of the float bytes), make the thumbnails;
2. **model** (an actor pool of ``workers`` actors, ``gpus_per_worker`` GPUs each): a ``Predictor`` loaded
   once per actor runs consecutive pairs of one input shape as one batch and returns the logits, or finishes
   them itself on CPUs (step 3; each actor has up to ``BLOCKS_IN_FLIGHT_PER_ACTOR`` blocks queued);
3. **finish**: probabilities (``pipeline.probabilities``), regions, PNGs, thumbnails (``outputs.finish_pair``),
   one results row each; in CPU tasks behind GPU actors, in the model actor itself when it runs on CPUs
   (``_finish_in_actor``).

The driver (this process) iterates the rows as they stream in and appends each to the journal, so a killed
run loses only what was in flight. With no ``--address`` a local Ray is started on this machine with
``cpus`` CPUs (default: all); with one, the cluster is joined, and every node must read the SPEC's files,
the checkpoint and RUN at the same paths (shared storage, or fsspec URLs in a manifest).

Back-pressure: the queues between the stages may hold ``INFLIGHT_BYTES_PER_CPU`` per cluster CPU (twice that behind
GPU actors; ``queue_budget``), so a pair goes through all three stages within seconds of being read and memory stays
flat however long the archive.

Pitfall (checked): an actor pool reserving every CPU starves the prepare tasks and hangs; the pool is
therefore refused unless it leaves at least one CPU of the cluster to the tasks.
"""
from __future__ import annotations

import functools
import os
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import UserError

# Object-store bytes the dataset's queues may hold per cluster CPU (at least 64 MB): Ray Data's back-pressure.
# Without a budget (checked with Ray 2.60, local Ray on 2 CPUs) the prepare tasks took every free CPU until all
# pairs were prepared and the finish tasks ran only after: 2,000 pairs wrote no row for 3 minutes (a kill then loses
# everything) and the object store grew to 9 GB of resident memory. With it, rows stream from the first seconds.
# With CPU model actors (which finish their own pairs) 16 MB: 2 actors on 2,000 pairs, ABBA, summed RSS of Ray's tree
# +105 and +112 MB from pair 100 to 1,500 against +215 and +221 with 32 MB (most of the difference object-store
# pages each worker maps: +65 and +54 MB against +132 and +138), at the same speed (15.49 and 14.99 pairs/s
# against 15.35 and 15.24; benchmarks/INSPECT.md). Behind GPU actors, whose 16-pair batches and logits travel
# through these queues, it stays 32 MB: a smaller queue there is unmeasured.
INFLIGHT_BYTES_PER_CPU = 16 * 2**20
INFLIGHT_BYTES_PER_CPU_BEHIND_GPUS = 32 * 2**20
MIN_INFLIGHT_BYTES = 64 * 2**20
# Pairs a Ray Data block holds: each block is one task per stage. Measured with 2 actors finishing their own pairs,
# 4 rounds in rotated order: 4 pairs 9.10 pairs/s, 8 pairs 9.14, 16 pairs 8.69 (benchmarks/INSPECT.md); smaller
# blocks hold fewer pairs in flight.
PAIRS_PER_BLOCK = 4
# ... but at most this many blocks: Ray Data's driver pays for every block. Over a 1,000,000-pair manifest (2 CPUs,
# the dataset built and its first 2,000 rows read) 250,000 blocks of 4 pairs took 262 s and +2,320 MB of driver RSS,
# 10,000 blocks of 100 took 19 s and +773 MB (benchmarks/ARCHIVE_SCALE.md).
MAX_BLOCKS = 10_000
# Larger blocks must still stream: each task's output is cut every OUTPUT_BLOCK_BYTES (Ray Data's
# target_max_block_size, 128 MB by default), not when its block is done. 1,000 pairs, 2 actors, --cpus 4, one run
# each: 100 pairs a block 12.93 pairs/s, first row at 13.6 s, RSS +92 MB from pair 100 with 8 MB; 8.75 pairs/s,
# 25.7 s, +283 MB with 128 MB; 4 pairs a block 13.06 pairs/s, +69 MB with 8 MB and 13.05, +87 MB with 128 MB.
OUTPUT_BLOCK_BYTES = 8 * 2**20
# Blocks queued at each model actor (Ray Data's default is 2 for an actor of max_concurrency 1). Measured with 2 actors
# on 2 cores, 150 pairs a round, 4 rounds in ABBA order: 4.76 pairs/s steady with 4 against 4.35 with the default,
# faster in every round (+3 to +5 % in three, +23 % in one) and with less CPU a pair (benchmarks/INSPECT.md); the
# share of time the cores sat idle under Ray did not change. The queues' byte budget (INFLIGHT_BYTES_PER_CPU) still
# bounds memory.
BLOCKS_IN_FLIGHT_PER_ACTOR = 4
# glibc malloc arenas of this job's Ray workers (MALLOC_ARENA_MAX; a value already in the environment wins). With
# glibc's default (8 per core), 2 model actors on 2,000 pairs: the summed RSS of Ray's tree grew +214, +216 and +234
# MB from pair 100; with 2 arenas +169, +182 and +190 MB (runs alternated) at the same speed (9.5 to 9.8 pairs/s
# against 9.0 and 9.6), the model actors' share +67 to +87 MB against +99 to +139; through this runtime environment
# +165 MB (benchmarks/INSPECT.md).
MALLOC_ARENAS = "2"
PREPARE_MEMORY = 512 * 2**20  # bytes a prepare task reserves: a worker with torch loaded and a 2048x2048 pair decoded and aligned


@functools.lru_cache(maxsize=4)
def _source(spec: str, cwd: str):
    """The SPEC's source in a worker process, parsed once per process (relative paths from the driver's cwd)."""
    from ..data import parse_spec

    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)  # this worker serves this job only; relative SPEC paths then mean what they meant to the driver
    return parse_spec(spec)


def _detached(source, i: int) -> bytes:
    """Pair i's files for a CPU task (``Source.detached``), pickled; empty where the source has no plain files. With
    them a task worker reads its pair without listing or parsing the whole archive, which every task worker process of
    every node did before: 4 s and 470 MB each for a 1,000,000-line manifest (benchmarks/ARCHIVE_SCALE.md)."""
    files = source.detached(i)
    return pickle.dumps(files, protocol=5) if files is not None else b""


def _one_opencv_thread() -> None:
    """The CPU tasks hold 1 CPU each: OpenCV on 1 thread in their processes, as Ray sets OMP_NUM_THREADS for
    OpenMP (OpenCV's own pool would start a thread per core in every task process of a node). On 2 cores no
    measurable change (two A/B runs of 250 pairs: 42.5 and 45.2 s against 45.0 and 44.7 s)."""
    import cv2

    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)


def _prepare(batch: dict, spec: str, cwd: str, size, align: str) -> dict:
    from ..inference.pipeline import prepare_arrays
    from .outputs import thumbnails

    _one_opencv_thread()
    payloads = []
    for i, files in zip(batch["index"], batch["files"]):
        i = int(i)
        try:
            # a file-backed source's pair comes with its files; only other sources are opened here (once a process)
            pair = pickle.loads(files).load() if len(files) else _source(spec, cwd)[i]
            hist, cur, out_shape, shape, alignment = prepare_arrays(pair.history, pair.current, size, align)
            item = {"ok": True, "index": i, "id": pair.name, "hist": hist, "cur": cur, "out_shape": tuple(out_shape),
                    "shape": tuple(shape), "alignment": replace(alignment, history=None),
                    "thumbs": thumbnails(pair.history, pair.current)}
        except UserError as e:
            item = {"ok": False, "index": i, "error": str(e)}
        payloads.append(pickle.dumps(item, protocol=5))
    return {"payload": np.array(payloads, dtype=object)}


class _Model:
    """One model per actor; consecutive pairs of one input shape go through it as one batch. With ``finish`` (the
    run folder and threshold) the actor also finishes each pair and returns its results row."""

    def __init__(self, checkpoint: str, device: str, size, path: str, align: str, finish: dict | None = None):
        from ..inference.predictor import Predictor

        self.predictor = Predictor(checkpoint, device=device, size=size, path=path, align=align)
        self.finish = finish

    def __call__(self, batch: dict) -> dict:
        import torch

        from ..data.images import to_tensor

        items = [pickle.loads(p) for p in batch["payload"]]
        ok = [it for it in items if it["ok"]]
        k = 0
        while k < len(ok):
            group = [ok[k]]
            while k + len(group) < len(ok) and ok[k + len(group)]["shape"] == group[0]["shape"]:
                group.append(ok[k + len(group)])
            logits = self.predictor.predict_logits(torch.stack([to_tensor(g["hist"]) for g in group]),
                                                   torch.stack([to_tensor(g["cur"]) for g in group])).float().cpu()
            for j, g in enumerate(group):
                g["logits"] = logits[j: j + 1].numpy()
                del g["hist"], g["cur"]
            k += len(group)
        if self.finish is not None:
            return {"row": np.array([_row(it, **self.finish) for it in items], dtype=object)}
        return {"payload": np.array([pickle.dumps(it, protocol=5) for it in items], dtype=object)}


def _row(it: dict, run: str, threshold: float) -> str:
    """One pair's results row (JSON) from its model output, or its error."""
    import json

    import torch

    from ..inference.pipeline import probabilities
    from .outputs import finish_pair

    _one_opencv_thread()
    if not it["ok"]:
        return json.dumps({"error": it["error"], "index": it["index"]})
    prob = probabilities(torch.from_numpy(it["logits"]), [it["out_shape"]], [it["alignment"]])[0]
    return json.dumps(finish_pair(Path(run), it["id"], it["index"], prob, it["alignment"], it["thumbs"], threshold))


def _finish(batch: dict, run: str, threshold: float) -> dict:
    return {"row": np.array([_row(pickle.loads(p), run, threshold) for p in batch["payload"]], dtype=object)}


def _finish_in_actor(job) -> bool:
    """Whether the model actors finish their own pairs (CPU actors) or hand the logits to finish tasks (GPU actors).

    A GPU actor must not wait for PNG encoding, so there the finish step stays in CPU tasks over all cores. A CPU
    actor spends the same CPU on it either way, and finishing in place saves a task per block, the logits' trip
    through the object store and their pickling: measured with 2 actors on 2 cores, 200 pairs a round, 4 rounds in
    ABBA order, 4.89 against 4.71 pairs/s steady and less CPU a pair in three rounds of four (347 to 433 ms against
    361 to 467; benchmarks/INSPECT.md)."""
    return job.gpus_per_worker == 0


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UserError("--engine ray needs Ray: pip install 'ray[data]==2.60.0' (or pip install .[ray]); "
                        "--engine local needs nothing extra.") from None
    return ray


def queue_budget(job, cpus: float) -> int:
    """Object-store bytes the dataset's queues may hold on a cluster of ``cpus`` CPUs (Ray Data's back-pressure)."""
    per_cpu = INFLIGHT_BYTES_PER_CPU if _finish_in_actor(job) else INFLIGHT_BYTES_PER_CPU_BEHIND_GPUS
    return int(max(MIN_INFLIGHT_BYTES, per_cpu * cpus))


def _start(ray, address: str | None, cpus: int | None) -> bool:
    """Connect to Ray; returns True when this call started a local Ray (to be shut down after)."""
    if ray.is_initialized():
        return False
    package_root = str(Path(__file__).resolve().parents[2])
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p),
                        "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", MALLOC_ARENAS)}}
    where = f"the Ray cluster at '{address}'" if address else "a local Ray"
    for attempt in (1, 2):  # a local Ray on a loaded machine can miss its 30 s start-up wait once
        try:
            if address:
                ray.init(address=address, runtime_env=env, log_to_driver=False)
            else:
                ray.init(num_cpus=cpus or os.cpu_count(), include_dashboard=False, runtime_env=env, log_to_driver=False,
                         configure_logging=False)
            return not address
        except Exception as e:  # Ray raises plain Exception, ConnectionError, RuntimeError, ValueError here
            if ray.is_initialized():
                ray.shutdown()
            if address or attempt == 2:
                why = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
                raise UserError(f"cannot start {where}: {why}") from None
    return False


def block_count(pairs: int) -> int:
    """Blocks of the dataset of ``pairs`` pairs: PAIRS_PER_BLOCK pairs each, at most MAX_BLOCKS."""
    return max(1, min(pairs // PAIRS_PER_BLOCK, MAX_BLOCKS))


def pair_dataset(ray, source, todo: list[int]):
    """The dataset the pipeline streams: one row per pair to do, its index and (``_detached``) its files."""
    return ray.data.from_items([{"index": int(i), "files": _detached(source, i)} for i in todo],
                               override_num_blocks=block_count(len(todo)))


def run_ray(job, todo: list[int], on_result, on_error) -> str:
    """Inspect the pairs ``todo`` on Ray; ``on_result(row)`` / ``on_error(index, message)`` run in this thread."""
    import json

    ray = _import_ray()
    started = _start(ray, job.address, job.cpus)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the driver's tqdm bar counts pairs
        ctx.print_on_execution_start = False
        ctx.target_max_block_size = OUTPUT_BLOCK_BYTES  # see MAX_BLOCKS
        total_cpus = ray.cluster_resources().get("CPU", 0)
        ctx.execution_options.resource_limits = ctx.execution_options.resource_limits.copy(
            object_store_memory=queue_budget(job, total_cpus))
        actor_cpus = job.cpus_per_worker
        if job.workers < 1:
            raise UserError(f"--workers (model actors with --engine ray) must be 1 or more, got {job.workers}.")
        if job.workers * actor_cpus >= total_cpus:
            raise UserError(f"{job.workers} model actors x {actor_cpus} CPU leave none of the cluster's {total_cpus:g} CPUs to "
                            "reading and writing (Ray would wait forever): lower --workers or --cpus-per-worker.")
        batch = job.batch or (16 if job.gpus_per_worker > 0 else 1)
        finish = {"run": str(job.run), "threshold": job.threshold}
        in_actor = _finish_in_actor(job)
        ds = pair_dataset(ray, job.source, todo)
        # The prepare tasks declare the memory a decoded, aligned pair takes (PREPARE_MEMORY). Remote arguments
        # that differ from the actors' also keep Ray Data from fusing this CPU stage into the model actors, which it
        # does otherwise (checked with Ray 2.60): decoding and alignment would then run inside the actors.
        ds = ds.map_batches(_prepare, batch_size=1, num_cpus=1, memory=PREPARE_MEMORY,
                            fn_kwargs={"spec": job.spec, "cwd": os.getcwd(), "size": job.size, "align": job.align})
        pool = ray.data.ActorPoolStrategy(size=job.workers, max_tasks_in_flight_per_actor=BLOCKS_IN_FLIGHT_PER_ACTOR)
        ds = ds.map_batches(_Model, batch_size=batch, compute=pool,
                            num_cpus=actor_cpus, num_gpus=job.gpus_per_worker,
                            fn_constructor_kwargs={"checkpoint": str(job.checkpoint), "device": job.device, "size": job.size,
                                                   "path": job.path, "align": job.align,
                                                   "finish": finish if in_actor else None})
        if not in_actor:
            ds = ds.map_batches(_finish, batch_size=1, num_cpus=1, fn_kwargs=finish)
        for row in ds.iter_rows():
            r = json.loads(row["row"])
            if "error" in r:
                on_error(r["index"], r["error"])
            else:
                on_result(r)
    finally:
        if started:
            ray.shutdown()
    where = f"cluster {job.address}" if job.address else f"local Ray, {total_cpus:g} CPUs"
    return (f"ray engine ({where}): {job.workers} model actors x {actor_cpus:g} CPU x {job.gpus_per_worker:g} GPU, "
            f"batch {batch}, pairs finished in {'the model actors' if in_actor else 'CPU tasks'}")
