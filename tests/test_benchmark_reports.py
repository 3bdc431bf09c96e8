"""The routes and inspect benchmarks' arithmetic: verdicts and memory figures from measured numbers."""
import json
import os
from types import SimpleNamespace

import pytest

from benchmarks.inspect_bench import command_seconds, finish_times, interleaved, round_size, rss_figures
from benchmarks.process_tree import cpu_by_role, process_role, tree_pss, tree_sample
from benchmarks.inspect_report import (KEPT, _limit_line, _table_line, cluster_estimate, background_lines, budget_line, cpu_lines, engine_cpu_line, interleaved_lines,
                                      interleaved_summary, kept_section, overhead_lines, pss_lines, ratio_line, write_report)
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


def test_process_roles_name_the_driver_ray_workers_and_daemons():
    assert process_role(10, 10, ["python", "-m", "anodfdnet"]) == "the command (driver)"
    assert process_role(11, 10, ["ray::MapWorker(MapBatches(_Model))", ""]) == "Ray: model actor"
    assert process_role(12, 10, ["ray::IDLE"]) == "Ray: CPU task workers"
    assert process_role(13, 10, ["ray::MapBatches(_prepare)"]) == "Ray: CPU task workers"
    assert process_role(14, 10, ["ray::_StatsActor"]) == "Ray: other workers"
    assert process_role(15, 10, ["/usr/lib/python3/site-packages/ray/core/src/ray/raylet/raylet", "--x"]) == "Ray: raylet"
    assert process_role(16, 10, ["/usr/bin/python3.11", "/site-packages/ray/_private/log_monitor.py", "--a"]) == "Ray: log_monitor.py"
    assert process_role(17, 10, ["/usr/bin/python3.11", "/home/me/other.py"]) == "other.py"


def test_cpu_by_role_counts_the_window_only_and_keeps_processes_that_started_or_exited():
    before = {1: ("the command (driver)", 10.0), 2: ("Ray: model actor", 50.0), 3: ("Ray: CPU task workers", 4.0)}
    after = {1: ("the command (driver)", 11.0), 2: ("Ray: model actor", 60.0), 3: ("Ray: CPU task workers", 6.0),
             4: ("Ray: CPU task workers", 2.0)}  # 4 started inside the window: all its CPU counts
    r = cpu_by_role(before, after, 100)
    assert list(r) == ["Ray: model actor", "Ray: CPU task workers", "the command (driver)", "total"]  # largest first
    assert r["Ray: model actor"] == 100.0 and r["Ray: CPU task workers"] == 40.0 and r["the command (driver)"] == 10.0
    assert r["total"] == 150.0
    assert cpu_by_role(before, after, 0) == {}


def test_cpu_lines_give_rays_share_of_the_local_engines_cpu():
    engines = [{"engine": "local", "lanes": 1, "cpu_ms_per_pair": {"the command (driver)": 150.0, "total": 150.0}},
               {"engine": "ray", "lanes": 1, "cpu_ms_per_pair": {"Ray: model actor": 100.0, "Ray: raylet": 65.0, "total": 165.0}}]
    text = "\n".join(cpu_lines(engines))
    assert "| ray, 1 actor | Ray: raylet | 65.0 |" in text and "| local, 1 lane | **total** | **150.0** |" in text
    assert "Ray's processes against the local engine, CPU per pair: +10% at 1 model worker each;" in text
    assert cpu_lines([{"engine": "local", "lanes": 1}]) == []


def test_rays_background_is_its_processes_outside_the_work_per_second_and_as_a_share_of_the_cores():
    engines = [{"engine": "local", "lanes": 2, "cpu_ms_per_pair": {"total": 176.0}, "files_steady_pairs_per_s": 11.0},
               {"engine": "ray", "lanes": 2, "files_steady_pairs_per_s": 10.0,
                "cpu_ms_per_pair": {"Ray: model actor": 140.0, "Ray: CPU task workers": 40.0, "the command (driver)": 12.0,
                                    "Ray: raylet": 4.0, "total": 196.0}},
               {"engine": "ray", "lanes": 1, "files_steady_pairs_per_s": 5.0,  # no local row at 1 worker: no comparison
                "cpu_ms_per_pair": {"Ray: model actor": 150.0, "Ray: other workers": 20.0, "total": 170.0}},
               {"engine": "ray", "lanes": 3, "files_steady_pairs_per_s": 5.0, "cpu_ms_per_pair": {}}]  # not sampled
    text = "\n".join(background_lines(engines, cores=2))
    assert "- ray, 2 actors: Ray's own processes" in text
    assert "16.0 ms of CPU a pair at 10.00 pairs/s = 160 ms of CPU a second, 8.0% of this machine's 2 cores (1.0% of a 16-core node's)" in text
    assert "without it (the journal and table left out too) Ray's processes would spend +2% CPU a pair against local, 2 lanes." in text  # 180 / 176
    assert "- ray, 1 actor: Ray's own processes" in text and "20.0 ms of CPU a pair at 5.00 pairs/s = 100 ms" in text
    assert "ray, 3 actors" not in text and text.count("without it") == 1
    assert background_lines(engines[:1], cores=2) == []


def test_the_limit_line_follows_the_measured_costs():
    est = {"cores": 16, "cpu_ms_for_500": 32.0}
    slow = _limit_line({"cpu_s_per_pair": 0.044, "align": 0.016}, est)
    assert "1.4x that, so the ≥ 500 pairs/s target is not reachable on paper; with `--align off`" in slow
    assert "16 / 28 ms = 571 pairs/s" in slow
    assert "nor with `--align off`" in _limit_line({"cpu_s_per_pair": 0.060, "align": 0.016}, est)
    assert "is reachable on paper with alignment auto" in _limit_line({"cpu_s_per_pair": 0.030, "align": 0.016}, est)


def test_the_table_line_scales_the_timed_rewrite_and_the_driver_keeps_its_share_for_it():
    st = {"cpu_s_per_pair": 0.032, "journal_s_per_row": 20e-6, "bytes_in": 7e4, "bytes_out": 3e4,
          "table_s_per_row": 25e-6, "table_rows": 20_000}
    est = cluster_estimate(st)
    assert est["driver_cap_rows_s"] == pytest.approx(0.95 / 20e-6)  # 5 % of the driver's time is the rewrites'
    line = _table_line(st, est)
    assert "2.5 s per 100,000 rows here (timed on 20,000 rows), at most every 30 s and at most 5 % of its time" in line
    # 1,000,000 rows x 25 us = 25 s, so the next rewrite waits 25 / 0.05 = 500 s
    assert f"at {est['cluster_pairs_s']:.0f} pairs/s a run of 1,000,000 pairs ends with a rewrite of 25 s every 500 s" in line
    quick = _table_line({**st, "table_s_per_row": 1e-6}, est)
    assert "a rewrite of 1 s every 30 s" in quick  # every REFRESH_S while rewrites are cheap


def test_the_model_only_ratio_uses_the_model_measured_around_the_engines_own_run():
    m = {"pairs_per_s": 19.3, "torch_threads": 2}
    e = {"engine": "ray", "lanes": 2, "threads_each": 1, "files_steady_pairs_per_s": 15.0, "model_around": [22.0, 23.0]}
    line = ratio_line(e, m)  # (22 + 23) / 2 / 15 = 1.50, not 19.3 / 15 = 1.29 from the one measurement at the end
    assert "ray, 2 actors: the model-only rate measured right before and after its run (22.00 and 23.00 pairs/s) is 1.50x" in line
    assert "1.29x" not in line
    plain = ratio_line({k: v for k, v in e.items() if k != "model_around"}, m)  # runs recorded before the bracket
    assert "ray, 2 actors: the model-only rate is 1.29x its steady end-to-end rate" in plain
    assert "faster than the model alone" in ratio_line({**e, "files_steady_pairs_per_s": 30.0}, m)


def test_the_node_estimate_counts_each_engines_own_cpu():
    m = {"torch_threads": 2, "cpu_ms_per_pair": 145.0, "by_threads": {"1": {"cpu_ms_per_pair": 127.0}}}
    engines = [{"engine": "local", "lanes": 2, "threads_each": 1, "cpu_ms_per_pair": {"total": 175.0}},
               {"engine": "ray", "lanes": 2, "threads_each": 1,
                "cpu_ms_per_pair": {"Ray: model actor": 140.0, "Ray: CPU task workers": 38.0, "total": 195.0}},
               {"engine": "ray", "lanes": 1, "threads_each": 2, "cpu_ms_per_pair": {}}]  # not sampled: left out
    line = engine_cpu_line(engines, m, {"cpu_s_per_pair": 0.030}, cores=16)
    assert "the steps, 30 ms alone" in line
    assert "local, 2 lanes 48 ms (16 / 48 ms = 333 pairs/s a node)" in line  # 175 - the model alone on 1 thread
    # 195 - the model alone on 1 thread (Ray's CPU model actors also finish their pairs: their own CPU is not the model's)
    assert "ray, 2 actors 68 ms (16 / 68 ms = 235 pairs/s a node)" in line
    assert "ray, 1 actor" not in line
    # an engine that spent less than the model alone measured on its own: said, not divided
    cheap = [{"engine": "local", "lanes": 1, "threads_each": 2, "cpu_ms_per_pair": {"total": 140.0}}]
    line = engine_cpu_line(cheap, m, {"cpu_s_per_pair": 0.030})
    assert "local, 1 lane not measurable here (its 140 ms of CPU a pair are less than the model alone's 145" in line
    assert "pairs/s a node" not in line
    assert engine_cpu_line([engines[2]], m, {"cpu_s_per_pair": 0.030}) is None


def test_rewriting_the_report_keeps_the_earlier_runs_section(tmp_path):
    out = tmp_path / "INSPECT.md"
    kept = f"{KEPT} (by hand)\n\n| pairs | overhead |\n|---:|---:|\n| 600 | +9 % |\n"
    out.write_text(f"# old report\n\n## End to end\n\nold figures\n\n{kept}\n## A later section\n\nnot kept\n")
    assert kept_section(out) == kept
    r = {"command": "python -m benchmarks inspect", "header": ["- machine: test"], "load_start": "0.1/0.1/0.1", "load_end": "1/1/1",
         "pairs": 20, "side": 64, "checkpoint": "effnet-d2", "batch": 1, "workers": 2, "ray_cpus": 3, "engines": []}
    write_report(out, r)
    text = out.read_text()
    assert "old figures" not in text and "not kept" not in text and "the issue asks for 2,000, 20 were asked for here" in text
    assert text.count(KEPT) == 1 and text.endswith(kept)
    write_report(out, r)  # and again: still one copy
    assert out.read_text() == text
    assert kept_section(tmp_path / "missing.md") == ""


def test_the_budget_line_gives_the_ceiling_and_how_busy_each_engine_kept_the_cores():
    m = {"ms_per_call": 47.0, "torch_threads": 2, "pairs_per_s": 21.2}
    engines = [{"engine": "local", "lanes": 1, "threads_each": 2, "cpu_ms_per_pair": {"total": 142.0}, "files_steady_pairs_per_s": 11.2}]
    near = budget_line(m, 0.041, 2, engines)  # 2 / 0.135 s = 14.8 pairs/s: 1.43x below the model
    assert "no engine can pass 14.8 pairs/s, 1.43x below" in near and "busy at least 95% of the time" in near
    assert "local, 1 lane 80% (142 ms of CPU a pair, against 135 ms" in near
    far = budget_line(m, 0.070, 2, [])
    assert "1.74x below" in far and "out of reach here" in far and "busy:" not in far
    # with lanes, the ceiling uses the CPU one lane's model call measured (1 thread: 70 ms), not 2 threads' 94
    lane = {**m, "by_threads": {"1": {"ms_per_call": 70.0, "torch_threads": 1, "pairs_per_s": 14.3, "cpu_ms_per_pair": 70.0}}}
    laned = budget_line(lane, 0.041, 2, [])  # 2 / 0.111 s = 18.0 pairs/s
    assert "about 70 ms of CPU a pair (on 1 torch thread, as the engines run it)" in laned and "pass 18.0 pairs/s" in laned
    # the model alone on 2 threads slower than two 1-thread lanes can go: the ceiling is above it, said so
    slow = {"ms_per_call": 228.0, "torch_threads": 2, "pairs_per_s": 4.38, "cpu_ms_per_pair": 453.0,
            "by_threads": {"1": {"ms_per_call": 313.0, "torch_threads": 1, "pairs_per_s": 3.19, "cpu_ms_per_pair": 313.0}}}
    above = budget_line(slow, 0.042, 2, [])  # 2 / 0.355 s = 5.6 pairs/s
    assert "pass 5.6 pairs/s, 1.29x above the model-only rate (the model alone on 2 torch threads spends 453 ms" in above
    assert "x below" not in above and "busy at least 52% of the time" in above
    # the ceiling and the model alone within half a percent (the AVX-512 host, 2026-12-07): neither above nor below
    even = {"ms_per_call": 97.0, "torch_threads": 2, "pairs_per_s": 10.27, "cpu_ms_per_pair": 193.0,
            "by_threads": {"1": {"ms_per_call": 159.0, "torch_threads": 1, "pairs_per_s": 6.29, "cpu_ms_per_pair": 159.0}}}
    same = budget_line(even, 0.0357, 2, [])  # 2 / 0.1947 s = 10.3 pairs/s
    assert "pass 10.3 pairs/s, the model-only rate itself:" in same and "x above" not in same and "x below" not in same


def _row(engine, lanes, steady, seconds, cpu=None, each=None):
    return {"engine": engine, "lanes": lanes, "threads_each": each or 2 // lanes, "files_steady_pairs_per_s": steady,
            "seconds": seconds, **({"cpu_ms_per_pair": {"total": cpu}} if cpu else {})}


def test_rays_overhead_is_read_at_equal_model_workers_and_at_each_engines_best():
    rows = [_row("local", 1, 11.0, 180.0), _row("ray", 1, 10.0, 200.0), _row("local", 2, 12.0, 170.0), _row("ray", 2, 9.0, 230.0)]
    lines = overhead_lines(rows)
    assert len(lines) == 3
    assert "(1 model worker each: local, 1 lane against ray, 1 actor): +10 % steady, +11 % on the whole command" in lines[0]
    assert "(2 model workers each: local, 2 lanes against ray, 2 actors): +33 % steady, +35 %" in lines[1]
    assert "(local, 2 lanes: 12.00 pairs/s; ray, 1 actor: 10.00): Ray's overhead +20 % steady" in lines[2]
    # one setting only: no best-of line; a setting with one engine only: no overhead line for it
    assert len(overhead_lines(rows[:2])) == 1 and overhead_lines([rows[0], rows[3]]) == []


def test_cpu_lines_and_the_budget_name_each_setting_and_use_its_own_models_cpu():
    rows = [_row("local", 1, 11.0, 180.0, cpu=142.0), _row("ray", 1, 10.0, 200.0, cpu=163.0),
            _row("local", 2, 12.0, 170.0, cpu=160.0), _row("ray", 2, 9.0, 230.0, cpu=196.0)]
    text = "\n".join(cpu_lines(rows))
    assert "| ray, 2 actors | **total** | **196.0** |" in text and "| local, 1 lane | **total** | **142.0** |" in text
    assert "against the local engine, CPU per pair: +15% at 1 model worker each, +23% at 2 model workers each;" in text
    m = {"ms_per_call": 50.0, "torch_threads": 2, "pairs_per_s": 20.0, "cpu_ms_per_pair": 100.0,
         "by_threads": {"1": {"ms_per_call": 90.0, "torch_threads": 1, "pairs_per_s": 11.1, "cpu_ms_per_pair": 90.0}}}
    line = budget_line(m, 0.050, 2, rows)
    assert "about 90 ms of CPU a pair (on 1 torch thread" in line and "pass 14.3 pairs/s" in line  # 2 / 0.140 s
    # each row against its own model's CPU: 2 threads (100 ms) for 1 lane, 1 thread (90 ms) for 2 lanes
    assert "local, 1 lane 78% (142 ms of CPU a pair, against 150 ms" in line
    assert "local, 2 lanes 96% (160 ms of CPU a pair, against 140 ms" in line
    assert "sampler" not in line  # rows recorded before the sampler's own CPU was
    rows[1]["sampler_cpu_ms_per_s"] = 23.4
    assert "ray, 1 actor 82% (163 ms of CPU a pair, against 150 ms for the model and the steps alone; the benchmark's sampler 23 ms of CPU a second)" in budget_line(m, 0.050, 2, rows)


def test_the_pss_line_gives_each_engines_memory_without_double_counting():
    rows = [{**_row("local", 2, 10.0, 200.0), "pss": {"rss_at_mark_mb": 600.4, "rss_end_mb": 655.0, "rss_growth_mb": 54.6}},
            {**_row("ray", 2, 8.0, 250.0), "pss": {"rss_at_mark_mb": 1500.0, "rss_end_mb": 1480.0, "rss_growth_mb": -20.0}},
            _row("ray", 1, 8.0, 250.0)]  # an older run's row: no PSS sampled, left out
    text = "\n".join(pss_lines(rows))
    assert "local, 2 lanes 600 → 655 MB (+55 MB); ray, 2 actors 1500 → 1480 MB (-20 MB)." in text and "1 actor" not in text
    assert pss_lines(rows[2:]) == []


def test_this_processs_pss_is_read_from_proc_and_never_above_its_rss():
    import os

    if not os.path.exists(f"/proc/{os.getpid()}/smaps_rollup"):
        import pytest
        pytest.skip("no /proc/PID/smaps_rollup on this system (Linux 4.14 or later has it)")
    pss, rss = tree_pss(os.getpid()), tree_sample(os.getpid())
    assert 10 * 2**20 < pss <= rss, (pss, rss)  # a Python with numpy loaded maps well over 10 MB; shared pages split


def _round(k, engine, lanes, pairs, steady, cpu, command_s):
    return {"round": k, "engine": engine, "lanes": lanes, "pairs": pairs, "files_steady_pairs_per_s": steady, "seconds": command_s + 3,
            "command_s": command_s, "cpu_ms_per_pair": {"total": cpu}, "load_start": f"{k}.00/0.50/0.40"}


def test_interleaved_rounds_add_up_steady_pairs_over_steady_seconds_round_by_round():
    runs = [_round(1, "local", 1, 110, 5.0, 400.0, 30.0), _round(1, "ray", 1, 110, 4.0, 440.0, 50.0),   # 100 steady pairs: 20 s, 25 s
            _round(2, "ray", 1, 110, 2.5, 460.0, 60.0), _round(2, "local", 1, 110, 2.5, 420.0, 48.0),   # 40 s each
            _round(3, "local", 1, 110, 6.0, 380.0, 20.0)]  # round 3 has no Ray run (a stopped benchmark): left out
    s = interleaved_summary(runs, 1)
    assert s["rounds"] == 2 and s["local"]["pairs"] == 220 and s["ray"]["pairs"] == 220
    assert s["local"]["steady_pairs_per_s"] == pytest.approx(200 / 60) and s["ray"]["steady_pairs_per_s"] == pytest.approx(200 / 65)
    assert s["overhead"] == pytest.approx(65 / 60 - 1)  # not the mean of the rounds' +25 % and 0 %
    assert [(x["round"], x["first"], round(x["overhead"], 3)) for x in s["per_round"]] == [(1, "local", 0.25), (2, "ray", 0.0)]
    assert s["local"]["cpu_ms_per_pair"] == pytest.approx(410.0) and s["cpu_overhead"] == pytest.approx(450 / 410 - 1)
    assert s["local"]["command_s"] == 78.0 and s["ray"]["command_s"] == 110.0
    assert interleaved_summary(runs, 2) is None
    iv = {"command": "python -m benchmarks inspect --pairs 220 --rounds 2", "header": ["- machine: test"], "load_start": "0.1/0.1/0.1",
          "load_end": "2/2/2", "cores": 2, "pairs": 220, "rounds": 2, "lanes": [1, 2], "checkpoint": "effnet-d2", "align": "auto", "workers": 2,
          "ray_cpus": 4, "runs": runs}
    text = "\n".join(interleaved_lines(iv))
    assert "2 rounds of 110" in text and "### 1 model worker each" in text and "model workers each" not in text
    assert "| 1 | local | 5.00 | 4.00 | +25 % | 1.00/0.50/0.40 |" in text and "| 2 | ray | 2.50 | 2.50 | +0 % | 2.00/0.50/0.40 |" in text
    assert "local 3.33 pairs/s, Ray 3.08: **Ray's overhead +8.3 % steady**" in text and "round by round +0 to +25 % (median +12 %)" in text
    # busy: 410 ms x 3.33 pairs/s = 1.37 of 2 cores; 450 ms x 3.08 pairs/s = 1.38
    assert "CPU per pair local 410 ms, Ray 450 ms (+10 %), so the 2 cores were busy 68 % of the time under local and 69 % under Ray" in text and "78 s local, 110 s Ray (+41 %)" in text
    assert "sampler" not in text  # runs recorded before the sampler's own CPU was


def test_the_samplers_own_cpu_is_averaged_over_each_engines_seconds():
    runs = [_round(1, "local", 1, 110, 5.0, 400.0, 27.0), _round(1, "ray", 1, 110, 4.0, 440.0, 47.0),  # 30 s, 50 s
            _round(2, "ray", 1, 110, 2.5, 460.0, 17.0), _round(2, "local", 1, 110, 2.5, 420.0, 7.0)]   # 20 s, 10 s
    for run, ms in zip(runs, (30.0, 90.0, 40.0, 60.0)):
        run["sampler_cpu_ms_per_s"] = ms
    s = interleaved_summary(runs, 1)
    assert s["local"]["sampler_cpu_ms_per_s"] == pytest.approx((30 * 30 + 60 * 10) / 40)  # 37.5
    assert s["ray"]["sampler_cpu_ms_per_s"] == pytest.approx((90 * 50 + 40 * 20) / 70)  # 75.7
    iv = {"command": "c", "header": [], "load_start": "0", "load_end": "0", "cores": 2, "pairs": 220, "rounds": 2, "lanes": [1],
          "checkpoint": "effnet-d2", "align": "auto", "workers": 2, "ray_cpus": 4, "runs": runs}
    assert ("the benchmark's own sampler (outside the engines' trees) took 38 ms of CPU a second during the local commands "
            "and 76 during Ray's.") in "\n".join(interleaved_lines(iv))


def test_a_resumed_runs_rates_count_the_pairs_it_finished_itself(tmp_path):
    thumbs = tmp_path / "thumbs"
    thumbs.mkdir()
    for i in range(40):  # 20 pairs of an earlier run 1 s apart, then 20 of this run 0.5 s apart, an hour later
        f = thumbs / f"p{i:03d}_o.jpg"
        f.write_bytes(b"x")
        t = 1_000_000.0 + i if i < 20 else 1_003_600.0 + (i - 20) * 0.5
        os.utime(f, (t, t))
    (thumbs / "p000_h.jpg").write_bytes(b"not an overlay: not counted")
    assert finish_times(tmp_path)["files_span_s"] == pytest.approx(3609.5)
    own = finish_times(tmp_path, since=1_003_000.0)
    assert own["files_steady_pairs_per_s"] == pytest.approx(10 / 5.0) and own["files_span_s"] == pytest.approx(9.5)
    assert finish_times(tmp_path, since=1_003_605.0) == {"files_steady_pairs_per_s": None}  # 10 pairs: too few for a rate


def test_interleaving_refuses_rounds_too_short_for_a_steady_rate_before_running_anything():
    with pytest.raises(SystemExit, match="leaves 25 pairs a round"):
        interleaved(SimpleNamespace(pairs=100, rounds=4), None, ["local", "ray"], [1])
    assert round_size(2000, 8) == 250


def test_the_commands_own_seconds_come_from_its_summary_line():
    assert command_seconds({"summary": ["inspected 250 pairs in 56.5 s (local engine), 750 skipped as finished"]}) == 56.5
    assert command_seconds({"summary": []}) is None and command_seconds({}) is None


def test_the_archive_scale_benchmark_measures_a_real_journal_and_manifest_and_keeps_the_earlier_runs(tmp_path):
    """``python -m benchmarks archive-scale`` end to end, small: a row of the shipped model, the journal's three steps
    and the manifest's parse in fresh processes, the report with its hand-kept section carried over (Ray's part is
    the inspect tests' to check: --ray-pairs 0)."""
    from benchmarks import archive_scale
    from benchmarks.cli import main as bench_main

    out = tmp_path / "ARCHIVE_SCALE.md"
    out.write_text("# old\n\n" + KEPT + " (kept by hand)\n\nbefore: 3.4 GB\n")
    assert bench_main(["archive-scale", "--rows", "300,2000", "--manifest-rows", "3000", "--ray-pairs", "0",
                       "--tmp", str(tmp_path), "--out", str(out)]) == 0
    record = json.loads((tmp_path / "archive_scale.json").read_text())
    small, large = record["journals"]
    assert (small["rows"], small["counted"], small["ranked"]) == (300, 300, 300)
    assert (large["rows"], large["counted"], large["ranked"]) == (2000, 2000, archive_scale.REPORT_ROWS)
    assert 0 < small["journal_mb"] < large["journal_mb"] and large["open_rss_mb"] < 50  # ids, not rows
    assert record["manifest"]["lines"] == 3000 and record["manifest"]["parse_s"] > 0 and "ray" not in record
    text = out.read_text()
    assert "| 2,000 | " in text and "| 300 | " in text and "a manifest of 3,000 lines" in text
    assert text.rstrip().endswith("before: 3.4 GB") and text.count(KEPT) == 1
    assert not list(tmp_path.glob("tmp*"))  # the journals and the manifest were removed
