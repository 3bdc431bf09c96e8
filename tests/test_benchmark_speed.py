"""`python -m benchmarks speed --quick` run in-process through the CLI: a complete report with figures from the run.

Checks the report's shape and that its figures are real numbers, never their values (speed targets are
the benchmark's to judge, not a timed test's).
"""
import re

import pytest

from benchmarks import speed, speed_report, timing
from benchmarks.cli import main


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "SPEED.md"
    assert main(["speed", "--quick", "--device", "cpu", "--out", str(out)]) == 0
    return out.read_text()


def test_quick_report_says_so_at_the_top(report):
    assert report.splitlines()[0].startswith(speed_report.QUICK_BANNER)
    assert "# Speed benchmark" in report
    for key in ("- date:", "- machine:", "- torch threads:", "torch ", "numpy ", "gradio ", "- device: cpu"):
        assert key in report, key


def test_every_model_has_a_numeric_latency_row(report):
    lines = report.splitlines()
    for label, _cfg in speed.model_list():
        rows = [_cells(line) for line in lines if line.startswith(f"| {label} | fp32 |")]
        assert len(rows) == 1, label
        cells = rows[0]
        latency, spread, ratio, throughput = float(cells[4]), cells[5], cells[6], cells[7]
        assert latency > 0, label
        lo, hi = (float(v) for v in spread.split("–"))
        assert 0 < lo <= latency <= hi, (label, spread)
        assert float(ratio) > 0 and float(throughput) > 0, label
    unet = next(_cells(line) for line in lines if line.startswith(f"| {speed_report.REFERENCE} | fp32 |"))
    assert unet[6] == "1.00"
    predictor = [line for line in lines if line.startswith("| lite d2 via Predictor.run")]
    assert len(predictor) == 1 and float(_cells(predictor[0])[4]) > 0


def test_matmul_rate_is_measured_and_positive(report):
    m = re.search(r"^\| fp32 \| ([\d.]+) GFLOP/s \| ([\d.]+) GFLOP/s \|$", report, re.M)
    assert m, "no fp32 matmul row"
    assert float(m.group(1)) > 0 and float(m.group(2)) > 0
    assert re.search(r"^\| bf16 \| (not supported|[\d.]+ GFLOP/s) \|", report, re.M)


def test_app_store_and_folder_figures(report):
    assert re.search(r"re-threshold render .* median \*\*[\d.]+ ms\*\*", report)
    assert re.search(r"label-store save .* median \*\*[\d.]+ ms\*\*", report)
    assert re.search(r"\*\*[\d.]+ pairs/s\*\* end to end", report)


def test_targets_section_marks_each_target(report):
    assert "## Targets (issue 6)" in report
    section = report.split("## Targets (issue 6)", 1)[1]
    rows = [_cells(line) for line in section.splitlines() if line.startswith("| ") and not line.startswith("| target")]
    assert len(rows) >= 5
    for target, measured, status in rows:
        assert status in ("**met**", "**missed**"), (target, status)
        assert re.search(r"\d", measured), target


def test_interleaving_rotates_the_order():
    calls = []
    fns = {n: (lambda n=n: calls.append(n)) for n in "abc"}
    times = timing.interleaved(fns, repeats=3, warmup=1, sync=lambda: None)
    assert {n: len(t) for n, t in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert calls == list("abc") + list("abc") + list("bca") + list("cab")
