"""``python -m benchmarks results-table``: what an inspection run's bookkeeping costs the driver as the archive grows;
write benchmarks/RESULTS_TABLE.md (and results_table.json).

The driver (the one process that collects results, either engine's) appends each finished pair to
``RUN/journal.jsonl``, rewrites ``RUN/results.parquet`` from it now and then and at the end, and reads the worst
pairs back for report.html. For each size in ``--rows`` this builds a journal of that many rows (one real row of
the shipped model on a generated 512x512 pair, repeated under new ids) and, in a fresh process, times and reads
the memory (RSS, and the peak from ``getrusage``) of:

1. opening the journal, as a resumed run does (``Journal``: the ids it keeps);
2. rewriting results.parquet from it (``write_table(journal.tables())``, as during and at the end of a run);
3. picking the worst 500 rows for the report (``ranked``) and counting the rows (``count_results``).

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

ROOT = Path(__file__).resolve().parents[1]
REPORT_ROWS = 500  # as inspect's --report-rows default


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows", default="100000,1000000",
                   help="journal sizes, comma-separated (default 100000,1000000: about 1.1 kB of disk a row, so 1.1 GB "
                        "for a million, in --tmp; about 2 min in all on a 2-core machine)")
    p.add_argument("--tmp", default=None, help="folder for the journals (default the system's temporary folder)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS_TABLE.md"), help="report (Markdown; JSON beside it)")


def real_row() -> dict:
    """One journal row of the shipped default model on a generated pair (its regions and alignment record real)."""
    from anodfdnet.inspect.run import InspectConfig, inspect_archive

    from .inspect_bench import make_pairs

    folder = make_pairs(4, 512)
    with tempfile.TemporaryDirectory() as tmp:
        s = inspect_archive(InspectConfig(data=f"pairs:{folder}", out=tmp, device="cpu"))
        row = s.worst  # the worst pair: the most regions to store among the four
    if row is None:
        raise SystemExit(f"the model run on {folder} wrote no row: see its errors above")
    row["alignment"] = json.dumps(row["alignment"])
    return row


def write_journal(path: Path, row: dict, n: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for k in range(n):
            f.write(json.dumps({**row, "id": f"x{k:08d}", "index": k, "file_id": f"x{k:08d}-{row['file_id'][-8:]}"}) + "\n")


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


def measure(journal: str) -> dict:
    """Run in a fresh process (see main): the three steps' seconds and memory on ``journal``."""
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


def main(a) -> int:
    sizes = [int(x) for x in str(a.rows).split(",") if x.strip()]
    row = real_row()
    results = []
    for n in sizes:
        with tempfile.TemporaryDirectory(dir=a.tmp) as tmp:
            journal = Path(tmp) / "journal.jsonl"
            write_journal(journal, row, n)
            code = f"import json; from benchmarks.results_table import measure; print(json.dumps(measure({str(journal)!r})))"
            done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"{n} rows: open {r['open_s']:.2f} s (+{r['open_rss_mb']:.0f} MB), rewrite {r['write_s']:.2f} s, "
              f"worst {REPORT_ROWS} {r['rank_s']:.2f} s; peak RSS +{r['peak_mb']:.0f} MB (over {r['start_rss_mb']:.0f})")
    out = Path(a.out)
    record = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": _cpu(), "results": results,
              "load_1min": os.getloadavg()[0]}
    out.with_name("results_table.json").write_text(json.dumps(record, indent=1) + "\n")
    write_report(out, record)
    print(f"wrote {out}")
    return 0


def _cpu() -> str:
    try:
        return next(x.split(":", 1)[1].strip() for x in open("/proc/cpuinfo") if x.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def report_text(record: dict, kept: str = "") -> str:
    lines = ["# An inspection run's bookkeeping as the archive grows", "",
             "Command: `python -m benchmarks results-table` (benchmarks/results_table.py says what it measures). "
             f"Run {record['date']} on {os.cpu_count()} cores of {record['cpu']}; 1-minute load at the end "
             f"{record['load_1min']:.2f}. Each size in a fresh process; RSS in MB, growth over the process's RSS "
             "after its imports (the peak too: VmHWM, reset after the imports).", "",
             "| rows | journal MB | open (resume) s | ids kept, RSS growth | rewrite results.parquet s | "
             f"worst {REPORT_ROWS} + count s | RSS growth at the end | peak RSS growth | parquet MB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in record["results"]:
        lines.append(f"| {r['rows']:,} | {r['journal_mb']:.0f} | {r['open_s']:.2f} | +{r['open_rss_mb']:.0f} | "
                     f"{r['write_s']:.2f} | {r['rank_s']:.2f} | +{r['end_rss_mb']:.0f} | +{r['peak_mb']:.0f} | "
                     f"{r['parquet_mb']:.0f} |")
    lines += ["", "During a run the rewrite happens at most every 30 s and at most 5 % of the time "
              "(`anodfdnet/inspect/run.py`: REFRESH_S, REFRESH_SHARE), and once at its end."]
    return "\n".join(lines) + "\n" + ("\n" + kept if kept else "")


def write_report(out: Path, record: dict) -> None:
    out.write_text(report_text(record, kept_section(out)))
