"""``python -m benchmarks gil`` (benchmarks/gil_share.py): perf's report read by library, and a clear error without perf."""
from __future__ import annotations

import argparse

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
         "loop": {"pairs": 100, "cpu_ms_per_pair": 30.0, "wall_ms_per_pair": 31.0}, "shares_pct": shares,
         "gil_ms_low": 3.0, "gil_ms_high": 10.0, "cap_high": 333.3, "cap_low": 100.0, "samples": samples,
         "threads_against_processes": [{"mode": "threads", "workers": 2, "pairs_per_s": 60.0},
                                       {"mode": "processes", "workers": 2, "pairs_per_s": 66.0}]}
    text = gil_share.report(r, argparse.Namespace(seconds=10.0, pairs=24))
    assert "**3.0 to 10.0 ms of a pair's 30.0 ms**" in text and "**100 to 333 pairs/s**" in text
    assert "| interpreter | 10.5 | 3.2 | held |" in text and "| OpenCV | 49.3 | 14.8 | released |" in text
    assert "threads 60.0 against processes 66.0 pairs/s (-9 %)" in text


def test_without_perf_the_command_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr(gil_share.shutil, "which", lambda name: None)
    a = argparse.Namespace(seconds=1.0, pairs=1, checkpoint="effnet-d2", frequency=99, out=str(tmp_path / "GIL.md"))
    with pytest.raises(UserError, match="needs Linux perf"):
        gil_share.main(a)
    assert not (tmp_path / "GIL.md").exists()
