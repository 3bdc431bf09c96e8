"""``python -m benchmarks archive-scale``: what a large archive costs an inspection run outside the model; write
benchmarks/ARCHIVE_SCALE.md (and archive_scale.json).

1. **The results bookkeeping.** The driver (the one process that collects results, either engine's) appends each
   finished pair to ``RUN/journal.jsonl``, rewrites ``RUN/results.parquet`` from it now and then and at the end,
   and reads the worst pairs back for report.html. For each size in ``--rows`` a journal of that many rows (one
   real row of the shipped model on a generated 512x512 pair, repeated under new ids) is opened as a resumed run
   does, rewritten into results.parquet, and ranked for the report's worst 500, in a fresh process each: seconds,
   RSS growth and peak (VmHWM, reset after the imports).
2. **The manifest.** A manifest of ``--manifest-rows`` lines (the generated pairs' files repeated under new ids)
   is parsed in a fresh process, as the driver does: seconds and RSS growth.
3. **Ray's dataset of it** (where Ray is installed): in a fresh process with a local Ray of 2 CPUs, the dataset
   the Ray engine streams (``ray_engine.pair_dataset``: one row per pair, its index and files, in ``block_count``
   blocks) built for every pair of the manifest, and its first 2,000 rows read through a trivial map: seconds and
   the driver's RSS growth;
4. **Ray over it** (where Ray is installed): ``python -m anodfdnet inspect --engine ray --limit N`` on that manifest
   (``--ray-pairs``; ``--cpus 4``, one model actor of 1 CPU, so up to 3 CPU task workers), sampled every 0.5 s:
   wall seconds, the peak summed RSS of the whole process tree, and the CPU seconds of its CPU task workers. The
   task workers get each pair's files with its index (``Source.detached``); before, every one parsed the manifest.

Nothing else may run meanwhile: the figures are times.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .inspect_report import kept_section
from .timing import machine_header

ROOT = Path(__file__).resolve().parents[1]
REPORT_ROWS = 500  # as inspect's --report-rows default


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows", default="100000,1000000",
                   help="journal sizes, comma-separated (default 100000,1000000: about 1.1 kB of disk a row, so 1.1 GB "
                        "for a million, in --tmp)")
    p.add_argument("--manifest-rows", type=int, default=1_000_000, help="lines of the manifest (default 1000000; 0 skips parts 2 to 4)")
    p.add_argument("--ray-pairs", type=int, default=60, help="pairs of it the Ray run inspects (default 60; 0 skips parts 3 and 4)")
    p.add_argument("--tmp", default=None, help="folder for the journals and the manifest (default the system's temporary folder)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "ARCHIVE_SCALE.md"),
                   help="report (Markdown; archive_scale.json beside it). The whole default run takes about 3 minutes on 2 cores")


def real_row(folder: Path) -> dict:
    """One journal row of the shipped default model on the generated pairs (its regions and alignment record real)."""
    from anodfdnet.inspect.run import InspectConfig, inspect_archive

    with tempfile.TemporaryDirectory() as tmp:
        row = inspect_archive(InspectConfig(data=f"pairs:{folder}", out=tmp, device="cpu")).worst  # the most regions
    if row is None:
        raise SystemExit(f"the model run on {folder} wrote no row: see its errors above")
    row["alignment"] = json.dumps(row["alignment"])
    return row


def write_journal(path: Path, row: dict, n: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for k in range(n):
            f.write(json.dumps({**row, "id": f"x{k:08d}", "index": k, "file_id": f"x{k:08d}-{row['file_id'][-8:]}"}) + "\n")


def write_manifest_lines(path: Path, folder: Path, n: int) -> None:
    pairs = sorted(d for d in folder.iterdir() if d.is_dir())
    with open(path, "w", encoding="utf-8") as f:
        f.write("id,history,current\n")
        for k in range(n):
            d = pairs[k % len(pairs)]
            f.write(f"site-a/cam-03/2026-12-01/x{k:08d},{d / 'hist.jpg'},{d / 'cur.jpg'}\n")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    """The process's peak RSS since the last ``_reset_peak`` (VmHWM)."""
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith("VmHWM:")) / 1024


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # "5" resets VmHWM to the current RSS (Linux 4.0 and later)
        f.write("5")


def measure_journal(journal: str) -> dict:
    """Part 1, in a fresh process (see ``_fresh``): the three steps' seconds and memory on ``journal``."""
    from anodfdnet.inspect.results import Journal, count_results, ranked, write_table

    path = Path(journal)
    _reset_peak()  # the imports' own peak is not the bookkeeping's
    out = {"start_rss_mb": _rss_mb()}
    t0 = time.perf_counter()
    j = Journal(path)
    out.update(open_s=time.perf_counter() - t0, rows=len(j), open_rss_mb=_rss_mb() - out["start_rss_mb"])
    t0 = time.perf_counter()
    write_table(j.tables(), path.parent / "results.parquet")
    out.update(write_s=time.perf_counter() - t0)
    j.close()
    t0 = time.perf_counter()
    top = ranked(path.parent, REPORT_ROWS)
    n = count_results(path.parent)
    out.update(rank_s=time.perf_counter() - t0, ranked=len(top), counted=n, end_rss_mb=_rss_mb() - out["start_rss_mb"],
               peak_mb=_peak_mb() - out["start_rss_mb"], parquet_mb=(path.parent / "results.parquet").stat().st_size / 2**20,
               journal_mb=path.stat().st_size / 2**20)
    return out


def measure_manifest(manifest: str) -> dict:
    """Part 2, in a fresh process: parsing the manifest as the driver does."""
    from anodfdnet.data import parse_spec

    _reset_peak()
    start = _rss_mb()
    t0 = time.perf_counter()
    source = parse_spec(f"manifest:{manifest}")
    return {"lines": len(source) + len(source.bad), "parse_s": time.perf_counter() - t0, "rss_mb": _rss_mb() - start,
            "peak_mb": _peak_mb() - start, "mb": Path(manifest).stat().st_size / 2**20}


def measure_dataset(manifest: str) -> dict:
    """Part 3, in a fresh process: the Ray engine's dataset of every pair of the manifest, to its first 2,000 rows."""
    import ray

    from anodfdnet.data import parse_spec
    from anodfdnet.inspect.ray_engine import block_count, pair_dataset

    source = parse_spec(f"manifest:{manifest}")
    todo = list(range(len(source)))
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        start = _rss_mb()
        t0 = time.perf_counter()
        ds = pair_dataset(ray, source, todo)
        built = time.perf_counter() - t0
        rows = 0
        for _ in ds.map_batches(lambda b: {"index": b["index"]}, batch_size=1).iter_rows():
            rows += 1
            if rows == 2000:
                break
        return {"pairs": len(todo), "blocks": block_count(len(todo)), "build_s": built,
                "first_rows_s": time.perf_counter() - t0 - built, "rows": rows, "rss_mb": _rss_mb() - start}
    finally:
        ray.shutdown()  # the dataset left half-read makes the process exit non-zero after this: _fresh reads its line


def _fresh(function: str, arg: str) -> dict:
    """``function(arg)`` in a fresh Python process: its JSON line, the process's own exit status aside."""
    code = f"import json; from benchmarks.archive_scale import {function}; print('RESULT ' + json.dumps({function}({arg!r})), flush=True)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{function} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def ray_run(manifest: Path, pairs: int, tmp: str) -> dict:
    """Part 4: the Ray engine on the first ``pairs`` of the manifest, its process tree sampled every 0.5 s."""
    from .process_tree import tree_sample

    out = Path(tmp) / "ray-run"
    cmd = [sys.executable, "-m", "anodfdnet", "inspect", "--data", f"manifest:{manifest}", "--out", str(out), "--engine", "ray",
           "--cpus", "4", "--workers", "1", "--device", "cpu", "--limit", str(pairs)]
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak, cpu = 0, {}
    while proc.poll() is None:
        peak = max(peak, tree_sample(proc.pid, cpu))
        time.sleep(0.5)
    wall = time.time() - t0
    if proc.returncode:
        raise SystemExit(f"the Ray run failed ({proc.returncode}):\n{proc.stderr.read()[-3000:]}")
    roles: dict[str, float] = {}
    for role, seconds in cpu.values():
        roles[role] = roles.get(role, 0.0) + seconds
    done = sum(1 for _ in open(out / "journal.jsonl"))
    return {"pairs": pairs, "done": done, "wall_s": wall, "peak_tree_rss_mb": peak / 2**20,
            "task_workers_cpu_s": roles.get("Ray: CPU task workers", 0.0), "driver_cpu_s": roles.get("the command (driver)", 0.0)}


def main(a) -> int:
    from .inspect_bench import make_pairs

    folder = make_pairs(4, 512)
    row = real_row(folder)
    import torch

    record: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "machine": machine_header([torch.device("cpu")]), "journals": []}
    for n in [int(x) for x in str(a.rows).split(",") if x.strip()]:
        with tempfile.TemporaryDirectory(dir=a.tmp) as tmp:
            write_journal(Path(tmp) / "journal.jsonl", row, n)
            r = _fresh("measure_journal", str(Path(tmp) / "journal.jsonl"))
        record["journals"].append(r)
        print(f"journal of {n} rows: open {r['open_s']:.2f} s (+{r['open_rss_mb']:.0f} MB), rewrite {r['write_s']:.2f} s, "
              f"worst {REPORT_ROWS} {r['rank_s']:.2f} s; peak RSS +{r['peak_mb']:.0f} MB", flush=True)
    if a.manifest_rows > 0:
        with tempfile.TemporaryDirectory(dir=a.tmp) as tmp:
            manifest = Path(tmp) / "archive.csv"
            write_manifest_lines(manifest, folder, a.manifest_rows)
            record["manifest"] = m = _fresh("measure_manifest", str(manifest))
            print(f"manifest of {m['lines']} lines: parsed in {m['parse_s']:.1f} s, +{m['rss_mb']:.0f} MB", flush=True)
            if a.ray_pairs > 0:
                try:
                    import ray  # noqa: F401  (installed?)
                except ImportError:
                    print("Ray is not installed: parts 3 and 4 skipped (pip install 'ray[data]==2.60.0')")
                else:
                    record["dataset"] = d = _fresh("measure_dataset", str(manifest))
                    print(f"Ray's dataset of its {d['pairs']} pairs in {d['blocks']} blocks: built in {d['build_s']:.1f} s, "
                          f"first 2,000 rows {d['first_rows_s']:.1f} s later, +{d['rss_mb']:.0f} MB", flush=True)
                    record["ray"] = r = ray_run(manifest, a.ray_pairs, tmp)
                    print(f"ray over its first {r['pairs']} pairs: {r['wall_s']:.1f} s, peak tree RSS {r['peak_tree_rss_mb']:.0f} MB, "
                          f"CPU task workers {r['task_workers_cpu_s']:.1f} CPU-s", flush=True)
    record["load_1min"] = os.getloadavg()[0]
    out = Path(a.out)
    out.with_name("archive_scale.json").write_text(json.dumps(record, indent=1) + "\n")
    out.write_text(report_text(record, kept_section(out)))
    print(f"wrote {out}")
    return 0


def report_text(record: dict, kept: str = "") -> str:
    lines = ["# A large archive, outside the model", "",
             "Command: `python -m benchmarks archive-scale` (benchmarks/archive_scale.py says what it measures). "
             f"Run {record['date']}; 1-minute load at the end {record['load_1min']:.2f}.", "", *record["machine"], "",
             "## The results bookkeeping (the driver's journal, results.parquet and the report's ranking)", "",
             "Each size in a fresh process; RSS growth in MB over the process's RSS after its imports (the peak too: VmHWM, "
             "reset after the imports).", "",
             "| rows | journal MB | open (resume) s | ids kept, RSS growth | rewrite results.parquet s | "
             f"worst {REPORT_ROWS} + count s | RSS growth at the end | peak RSS growth | parquet MB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in record["journals"]:
        lines.append(f"| {r['rows']:,} | {r['journal_mb']:.0f} | {r['open_s']:.2f} | +{r['open_rss_mb']:.0f} | "
                     f"{r['write_s']:.2f} | {r['rank_s']:.2f} | +{r['end_rss_mb']:.0f} | +{r['peak_mb']:.0f} | "
                     f"{r['parquet_mb']:.0f} |")
    lines += ["", "During a run the rewrite happens at most every 30 s and at most 5 % of the time "
              "(`anodfdnet/inspect/run.py`: REFRESH_S, REFRESH_SHARE), and once at its end."]
    m = record.get("manifest")
    if m:
        lines += ["", "## The manifest", "",
                  f"Parsing a manifest of {m['lines']:,} lines ({m['mb']:.0f} MB) as the driver does: {m['parse_s']:.1f} s, "
                  f"RSS growth +{m['rss_mb']:.0f} MB (peak +{m['peak_mb']:.0f} MB)."]
        d = record.get("dataset")
        if d:
            lines += ["", f"The Ray engine's dataset of all {d['pairs']:,} pairs (`ray_engine.pair_dataset`, {d['blocks']:,} blocks; "
                      f"a local Ray of 2 CPUs): built in {d['build_s']:.1f} s, its first {d['rows']:,} rows read "
                      f"{d['first_rows_s']:.1f} s later, driver RSS growth +{d['rss_mb']:.0f} MB."]
        r = record.get("ray")
        if r:
            lines += ["", f"The Ray engine over its first {r['pairs']} pairs (`--cpus 4 --workers 1 --limit {r['pairs']}`, "
                      f"{r['done']} finished): {r['wall_s']:.1f} s, peak summed RSS of the process tree {r['peak_tree_rss_mb']:,.0f} MB, "
                      f"CPU task workers {r['task_workers_cpu_s']:.1f} CPU-s, driver {r['driver_cpu_s']:.1f} CPU-s (its parse of "
                      "the manifest included). The task workers read each pair from the files that come with it and never "
                      "open the manifest."]
    return "\n".join(lines) + "\n" + ("\n" + kept if kept else "")
