"""The routes and inspect benchmarks' arithmetic: verdicts and memory figures from measured numbers."""
from benchmarks.inspect_bench import rss_figures
from benchmarks.routes import format_report


def _routes(head_ms: float, free_ms: float, compile_f1_drop: float) -> dict:
    ms = lambda v: [v, v * 0.97, v * 1.05]  # noqa: E731  median, p10, p90
    f1 = {"DeepPCB val": 82.0, "tunnel val": 40.0}
    return {
        "size": 256, "repeats": 5, "limit": 10, "header": ["- machine: test"], "load_start": "0", "load_end": "0",
        "seconds": 1.0, "path": "bf16", "depthwise": 11,
        "target": {"effnet": ms(14.4), "unet": ms(10.4), "effnet-model": ms(14.0), "unet-model": ms(9.8)},
        "parts": {"whole": ms(13.7), "encoder": ms(7.8), "head": ms(head_ms), "encoder, depthwise free": ms(5.0),
                  "whole, depthwise free": ms(free_ms), "whole, depthwise in fp32": ms(17.5)},
        "routes": {"default": ms(13.6), "ort-int8": ms(3.0), "compile-bf16": ms(11.2)},
        "notes": {},
        "f1": {"default": f1, "ort-int8": {k: v - 3.0 for k, v in f1.items()},
               "compile-bf16": {k: v - compile_f1_drop for k, v in f1.items()}},
    }


def test_routes_verdict_takes_the_fastest_route_that_keeps_f1_and_the_floors():
    text = format_report(_routes(head_ms=5.9, free_ms=10.8, compile_f1_drop=0.1))
    # ort-int8 is faster but loses 3 F1 points: the accepted fastest is compile-bf16 ((11.2 + 0.4) / 10.4 = 1.12x)
    assert "fastest route: **ort-int8**" in text
    assert "keeps F1 within 0.5 points on every set: **compile-bf16**" in text and "**1.12x** Unet-cat (target 0.5x: missed)" in text
    assert "Not reachable by any route measured" in text
    assert "0.5x Unet-cat is **5.20 ms**" in text
    # floors under the target: the report must not claim it unreachable
    low = format_report(_routes(head_ms=2.0, free_ms=3.0, compile_f1_drop=0.1))
    assert "Not reachable" not in low and "leave room under 0.5x" in low
    # a route whose F1 moves by more than 0.5 is not accepted
    dropped = format_report(_routes(head_ms=5.9, free_ms=10.8, compile_f1_drop=0.8))
    assert "on every set: **default**" in dropped


def test_rss_end_is_read_before_the_final_row_not_after_the_shutdown():
    mb = 2**20
    samples = [(0.0, 0, 1 * mb)] + [(1.0 + i, 10 * i, (3000 + i) * mb) for i in range(1, 21)] + [(30.0, 200, 600 * mb)]
    r = rss_figures(samples, 200)
    assert r["rss_mark_pair"] == 100 and r["rss_at_mark_mb"] == 3010  # the first sample with 100 pairs done
    assert r["rss_end_mb"] == 3019  # the last sample before the 200th row, not the 600 MB after shutdown
    assert r["rss_growth_mb"] == 9 and r["rss_peak_mb"] == 3020
    short = rss_figures(samples[:8], 70)  # a run of 70 pairs: the mark is a third of it
    assert short["rss_mark_pair"] == 23 and short["rss_at_mark_mb"] == 3003
