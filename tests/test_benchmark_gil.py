"""``python -m benchmarks gil`` (benchmarks/gil_share.py): perf's report read by library, and a clear error without perf."""
from __future__ import annotations

import argparse
import json

import pytest

from anodfdnet.errors import UserError
from benchmarks import gil_share

# `perf report --sort dso --stdio -n` of a run of the loop on this project's 2-core AMD EPYC (rows cut to a few).
PERF_REPORT = """# To display the perf.data header info, please use --header/--header-only options.
#
# Samples: 9K of event 'cpu-clock:ppp'
# Event count (approx.): 4780000000
#
# Overhead       Samples  Shared Object
# ........  ............  .................................................
#
    49.31%          4714  cv2.abi3.so
    10.23%           978  _multiarray_umath.cpython-311-x86_64-linux-gnu.so
    10.02%           958  libpython3.11.so.1.0
     6.34%           606  [kernel.kallsyms]
     6.18%           591  libc.so.6
     5.33%           510  libz.so.1.2.13
     5.06%           484  libjpeg-31e2ca52.so.62.4.0
     3.48%           333  _imaging.cpython-311-x86_64-linux-gnu.so
     3.02%           289  libtorch_cpu.so
     0.50%            48  python3.11
     0.16%            15  libm.so.6
     0.02%             2  [vdso]
"""


def test_perf_report_is_read_by_library_and_gil_behaviour():
    shares, samples = gil_share.parse_report(PERF_REPORT)
    assert samples == 4714 + 978 + 958 + 606 + 591 + 510 + 484 + 333 + 289 + 48 + 15 + 2
    assert shares["interpreter"] == pytest.approx(10.02 + 0.50)  # libpython and a static python binary
    assert shares["numpy"] == pytest.approx(10.23)
    assert shares["C library"] == pytest.approx(6.18 + 0.16)
    assert shares["kernel"] == pytest.approx(6.34)
    assert shares["OpenCV"] == pytest.approx(49.31)
    assert shares["JPEG, PNG, zlib (Pillow's codecs)"] == pytest.approx(5.33 + 5.06 + 3.48)
    assert shares["torch"] == pytest.approx(3.02)
    assert shares["other"] == pytest.approx(0.02)


def test_the_report_gives_the_bounds_and_the_thread_ceiling():
    shares, samples = gil_share.parse_report(PERF_REPORT)
    r = {"header": ["- machine: test"], "load_start": "0", "load_end": "0", "seconds": 10.0, "frequency": 1999,
         "perf": {"loop": {"pairs": 100, "cpu_ms_per_pair": 30.0, "wall_ms_per_pair": 31.0}, "shares_pct": shares,
                  "gil_ms_low": 3.0, "gil_ms_high": 10.0, "cap_high": 333.3, "cap_low": 100.0, "samples": samples},
         "threads_against_processes": [{"mode": "threads", "workers": 2, "pairs_per_s": 60.0},
                                       {"mode": "processes", "workers": 2, "pairs_per_s": 66.0}]}
    text = gil_share.report(r, argparse.Namespace(seconds=10.0, pairs=24))
    assert "**3.0 to 10.0 ms of a pair's 30.0 ms**" in text and "**100 to 333 pairs/s**" in text
    assert "| interpreter | 10.5 | 3.2 | held |" in text and "| OpenCV | 49.3 | 14.8 | released |" in text
    assert "threads 60.0 against processes 66.0 pairs/s (-9 %)" in text
    without = gil_share.report({**r, "perf": None}, argparse.Namespace(seconds=10.0, pairs=24))
    assert "Linux perf is not on PATH here" in without and "| interpreter |" not in without
    assert "threads 60.0 against processes 66.0 pairs/s (-9 %)" in without


def test_without_perf_only_threads_against_processes_run(monkeypatch, tmp_path):
    """No perf: the report says so and still compares threads with processes (run for real, 1 pair, 1 s a round)."""
    monkeypatch.setattr(gil_share.shutil, "which", lambda name: None)
    monkeypatch.setattr(gil_share.os, "cpu_count", lambda: 2)
    a = argparse.Namespace(seconds=1.0, pairs=1, checkpoint="effnet-d2", frequency=99, out=str(tmp_path / "GIL.md"))
    assert gil_share.main(a) == 0
    text = (tmp_path / "GIL.md").read_text()
    assert "Linux perf is not on PATH here" in text and "2 threads of one process against 2 forked processes" in text
    runs = json.loads((tmp_path / "gil.json").read_text())["threads_against_processes"]
    assert sorted(x["mode"] for x in runs) == ["processes", "processes", "threads", "threads"]
    assert all(x["pairs"] >= 1 and x["pairs_per_s"] > 0 for x in runs)


@pytest.mark.parametrize("bad", [{"seconds": 0.0}, {"seconds": float("nan")}, {"pairs": 0}, {"frequency": -5}])
def test_settings_that_cannot_measure_are_refused_before_anything_runs(tmp_path, bad):
    a = argparse.Namespace(**{"seconds": 1.0, "pairs": 1, "checkpoint": "effnet-d2", "frequency": 99,
                              "out": str(tmp_path / "GIL.md"), **bad})
    with pytest.raises(UserError, match="--seconds must be above 0"):
        gil_share.main(a)
    assert not list(tmp_path.iterdir())
