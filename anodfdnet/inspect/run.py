"""``inspect``: one run over an archive, resumable, on the local engine or on Ray.

RUN holds::

    run.json          what the run is (SPEC, checkpoint, threshold, size, alignment): a rerun must match it
    journal.jsonl     one line per finished pair (results.Journal): what makes a rerun skip finished pairs
    results.parquet   the table (results.SCHEMA), rewritten from the journal during and after the run
    errors.jsonl      the pairs (or manifest lines) of the last run that could not be read, one sentence each
    report.html       the page people read (report.py)
    masks/ heat/ thumbs/   each pair's files (outputs.py)
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..align import check_mode
from ..checkpoint import read_info, resolve
from ..data import parse_spec
from ..errors import UserError
from ..inference.predictor import check_lanes
from .outputs import make_dirs
from .results import Journal, TableRefresh, count_results, ranked, write_table

ENGINES = ("local", "ray")
REFRESH_S = 30.0  # results.parquet is rewritten at most this often while a run goes on,
REFRESH_SHARE = 0.05  # and at most this share of the time (results.TableRefresh; benchmarks/INSPECT.md times it)


@dataclass
class InspectConfig:
    data: str
    out: str
    checkpoint: str = "effnet-d2"
    engine: str = "local"
    address: str | None = None  # Ray: a cluster to join; None starts a local Ray
    threshold: float | None = None  # None: the checkpoint's calibrated threshold
    size: int | None | str = "checkpoint"
    device: str = "auto"
    path: str = "auto"
    align: str = "auto"
    batch: int | None = None  # pairs per model call (default 1 on CPU, 16 on a GPU)
    workers: int | None = None  # local: reader/writer threads (default 2); ray: model actors (default 1)
    lanes: int | None = None  # local: model calls in flight (default 2 on a CPU, 1 on a GPU)
    cpus: int | None = None  # ray without --address: CPUs of the local Ray (default all)
    cpus_per_worker: float = 1.0  # ray: CPUs each model actor reserves
    gpus_per_worker: float = 0.0  # ray: GPUs each model actor reserves
    limit: int | None = None  # the first N pairs of the source only
    report_rows: int = 500  # pairs shown with thumbnails in report.html (worst first)
    to_queue: str | None = None  # a manifest CSV the Label queue reads: the top pairs are added to it
    top: int = 20
    rank: str = "score"


@dataclass
class Job:
    """What an engine needs to know (built by ``inspect_archive``)."""

    spec: str
    source: object
    run: Path
    checkpoint: str
    threshold: float
    size: int | None | str
    device: str
    path: str
    align: str
    batch: int | None
    workers: int
    lanes: int | None = None
    address: str | None = None
    cpus: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    index_of: dict = field(default_factory=dict)


@dataclass
class Summary:
    run: Path
    done: int  # pairs finished in this run
    skipped: int  # pairs already finished by an earlier run
    errors: list[str]
    engine: str
    seconds: float
    total: int  # rows in results.parquet (this run's and earlier runs')
    worst: dict | None  # its worst pair (results.ranked)


def _check(cfg: InspectConfig) -> None:
    if cfg.engine not in ENGINES:
        raise UserError(f"--engine must be one of {', '.join(ENGINES)}, got '{str(cfg.engine)[:40]}'.")
    check_mode(cfg.align)
    if cfg.address and cfg.engine != "ray":
        raise UserError("--address names a Ray cluster: use it with --engine ray.")
    if cfg.workers is not None and cfg.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {cfg.workers}.")
    check_lanes(cfg.lanes)  # before the run folder or the model: the same rule model_lanes applies
    if cfg.lanes is not None and cfg.engine != "local":
        raise UserError("--lanes is the local engine's; Ray runs --workers model actors of --cpus-per-worker CPUs each.")
    if cfg.batch is not None and cfg.batch < 1:
        raise UserError(f"--batch must be 1 or more, got {cfg.batch}.")
    if cfg.gpus_per_worker < 0 or cfg.cpus_per_worker <= 0:
        raise UserError("--gpus-per-worker must be 0 or more and --cpus-per-worker more than 0.")
    if cfg.limit is not None and cfg.limit < 1:
        raise UserError(f"--limit must be 1 or more, got {cfg.limit}.")
    if cfg.top < 1:
        raise UserError(f"--top must be 1 or more, got {cfg.top}.")


def _run_record(cfg: InspectConfig, checkpoint: Path, threshold: float) -> dict:
    return {"data": cfg.data, "checkpoint": str(checkpoint), "threshold": threshold, "size": cfg.size, "align": cfg.align}


def _open_run(cfg: InspectConfig, record: dict) -> tuple[Path, int]:
    """Create or reopen RUN; a RUN made with other settings is refused. Returns (RUN, this run's attempt number)."""
    run = Path(cfg.out)
    if run.exists() and not run.is_dir():
        raise UserError(f"--out '{run}' is a file, not a folder.")
    run.mkdir(parents=True, exist_ok=True)
    info = run / "run.json"
    attempt = 1
    if info.exists():
        try:
            old = json.loads(info.read_text())
        except (OSError, json.JSONDecodeError):
            raise UserError(f"'{info}' is unreadable: use a new --out folder.") from None
        differs = [k for k, v in record.items() if old.get(k) != v]
        if differs:
            raise UserError(f"'{run}' holds a run with other settings ({', '.join(differs)}: "
                            f"{', '.join(repr(old.get(k)) for k in differs)}); resume it with the same ones or use a new --out.")
        attempt = int(old.get("attempts", 0)) + 1
    tmp = info.with_name(".run.json.tmp")
    tmp.write_text(json.dumps({**record, "cwd": os.getcwd(), "attempts": attempt}, indent=1))
    os.replace(tmp, info)
    make_dirs(run)
    return run, attempt


def inspect_archive(cfg: InspectConfig) -> Summary:
    """Inspect every pair of ``cfg.data`` into ``cfg.out``, skipping pairs an earlier run finished."""
    _check(cfg)
    t0 = time.perf_counter()
    source = parse_spec(cfg.data)
    checkpoint = resolve(cfg.checkpoint)
    info = read_info(checkpoint)
    threshold = info.threshold if cfg.threshold is None else float(cfg.threshold)
    size = info.eval_size if cfg.size == "checkpoint" else cfg.size  # as Predictor resolves it
    run, attempt = _open_run(cfg, _run_record(cfg, checkpoint, threshold))

    errors: list[str] = [msg for _, msg in getattr(source, "bad", [])]  # manifest lines left out when it was read
    journal = Journal(run / "journal.jsonl")
    n = len(source) if cfg.limit is None else min(cfg.limit, len(source))
    todo = [i for i in range(n) if source.names[i] not in journal]
    skipped = n - len(todo)
    if len(journal):
        write_table(journal.tables(), run / "results.parquet")  # a killed run's rows, made whole first
    job = Job(spec=cfg.data, source=source, run=run, checkpoint=str(checkpoint), threshold=threshold, size=size,
              device=cfg.device, path=cfg.path, align=cfg.align, batch=cfg.batch,
              workers=cfg.workers if cfg.workers is not None else (2 if cfg.engine == "local" else 1), lanes=cfg.lanes,
              address=cfg.address, cpus=cfg.cpus, cpus_per_worker=cfg.cpus_per_worker, gpus_per_worker=cfg.gpus_per_worker,
              index_of={source.names[i]: i for i in todo})
    if skipped:
        print(f"{run}: {skipped} of {n} pairs already finished by an earlier run; skipping them")
    bar = tqdm(total=len(todo), desc=f"inspect ({cfg.engine})", unit="pair")
    refresh = TableRefresh(journal, run / "results.parquet", REFRESH_S, REFRESH_SHARE)
    done = [0]

    def on_result(row: dict) -> None:
        row["attempt"] = attempt
        journal.add(row)
        done[0] += 1
        bar.update(1)
        refresh()

    def on_error(index: int, message: str) -> None:
        errors.append(message if source.names[index] in message else f"pair '{source.names[index]}': {message}")
        bar.update(1)

    detail = "nothing to do"
    try:
        if todo:
            if cfg.engine == "ray":
                from .ray_engine import run_ray  # the only place Ray is imported

                detail = run_ray(job, todo, on_result, on_error)
            else:
                from .local import run_local

                detail = run_local(job, todo, on_result, on_error)
    finally:
        bar.close()
        journal.close()
        write_table(journal.tables(), run / "results.parquet")
        _write_errors(run / "errors.jsonl", errors)
    shown, total = ranked(run, cfg.report_rows), count_results(run)
    from .report import write_report

    write_report(run, shown, total, errors, {**_run_record(cfg, checkpoint, threshold), "engine": detail})
    summary = Summary(run, done[0], skipped, errors, detail, time.perf_counter() - t0, total, shown[0] if shown else None)
    if cfg.to_queue:
        from .to_queue import add_to_queue

        added = add_to_queue(run, cfg.to_queue, top=cfg.top, rank=cfg.rank)
        print(f"added {added} of the top {cfg.top} pairs (by {cfg.rank}) to the Label queue manifest {cfg.to_queue}")
    return summary


def _write_errors(path: Path, errors: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps({"error": e}) + "\n" for e in errors))
    os.replace(tmp, path)


def print_summary(s: Summary) -> None:
    head = (f"inspected {s.done} pairs in {s.seconds:.1f} s ({s.engine})" + (f", {s.skipped} skipped as finished" if s.skipped else "")
            + f"; {s.total} in {s.run / 'results.parquet'}")
    print(head)
    if s.worst:
        w = s.worst
        print(f"worst: {w['id']} (max probability {w['score_max']:.3f}, {w['area_pct']:.2f} % anomalous, {w['n_regions']} region{'' if w['n_regions'] == 1 else 's'})")
    print(f"report: {s.run / 'report.html'}")
    if s.errors:
        print(f"{len(s.errors)} pairs or lines could not be read and were skipped (also in {s.run / 'errors.jsonl'}):")
        for e in s.errors:
            print(f"  {e}")
