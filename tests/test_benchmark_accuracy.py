"""The accuracy benchmark end to end in its quick mode (synth only, real training and evaluation), and
its aggregation and target rules on known numbers."""
import argparse
import json
import re

import pytest

from anodfdnet.errors import UserError
from benchmarks import accuracy as ba
from benchmarks import accuracy_tables as tables

TABLE1 = ["Unet-cat", "DeepLabV3+-cat", "FC-Siam-diff", "AnoDFDNet lite d2"]
TABLE3 = [f"AnoDFDNet lite d{d}" for d in (0, 1, 2, 4, 8)]
SETS = ["synth easy", "synth hard"]


def _args(*argv):
    p = argparse.ArgumentParser()
    ba.add_arguments(p)
    return p.parse_args(list(argv))


def _section(md: str, start: str, end: str) -> str:
    return md[md.index(start):md.index(end)]


def test_quick_run_writes_both_tables_targets_and_raw_results_and_resumes(tmp_path, capsys):
    out, work = tmp_path / "bench" / "ACCURACY.md", tmp_path / "work"
    argv = ["--quick", "--work", str(work), "--out", str(out), "--shared", str(tmp_path / "no-shared"), "--no-progress"]
    assert ba.main(_args(*argv)) == 0
    md = out.read_text()
    assert tables.QUICK_BANNER in md
    assert "python -m benchmarks accuracy --quick" in md and "**Date:**" in md and "**Device:**" in md
    assert "**Schedule (the same for every method):** 4 optimizer steps per run" in md
    t1 = _section(md, "## Table 1", "## Table 3")
    t3 = _section(md, "## Table 3", "## Targets")
    for section, labels in ((t1, TABLE1), (t3, TABLE3)):
        for s in SETS:
            block = section[section.index(f"### {s}"):]
            block = block[:block.index("\n\n", block.index("| method"))]
            rows = [line for line in block.splitlines() if line.startswith("| ") and not line.startswith("| method")]
            assert [r.split(" | ")[0][2:] for r in rows] == labels
            for r in rows:  # n, seven "mean ± std" cells, parameters, GFLOPs
                cells = [c.strip() for c in r.strip("|").split("|")]
                assert cells[1] == "1" and re.fullmatch(r"\d+\.\d+M", cells[9]) and re.fullmatch(r"\d+\.\d\d", cells[10])
                assert all(re.fullmatch(r"\d+\.\d\d ± (\d+\.\d\d|n/a)", c) for c in cells[2:9]), r
    targets = md[md.index("## Targets"):]
    statuses = re.findall(r"\*\*(met|missed|n/a)\*\* \|", targets)
    assert len(statuses) == 3 and statuses[0] == "n/a"  # DeepPCB is not part of a quick run
    assert "DeepPCB val: skipped" in md and "tunnel val: skipped" in md

    raw = json.loads((out.parent / "accuracy.json").read_text())
    runs = {(r["method"], r["seed"]): r for r in raw["runs"]}
    want = {"unet-cat-lite", "deeplabv3plus-cat-lite", "fc-siam-diff-lite"} | {f"anodfdnet-lite-d{d}" for d in (0, 1, 2, 4, 8)}
    assert set(m for m, _ in runs) == want and len(raw["runs"]) == len(want)  # d2 is trained once, used by both tables
    for r in raw["runs"]:
        assert r["seed"] == 0 and not r["reused"] and r["steps_timed"] == 4 and r["parameters"] > 0 and r["gflops"] > 0
        assert set(r["metrics"]) == {"synth-easy", "synth-hard"}
        for m in r["metrics"].values():
            assert m["pairs"] == 3 and 0 <= m["f1"] <= 1 and {"precision", "recall", "oa", "iou", "auc", "eer"} <= set(m)
        assert (work / r["method"] / "seed0" / "best.safetensors").is_file()
    assert raw["status"] == "complete" and len(raw["targets"]) == 3
    f1 = raw["summary"]["table1"]["synth-hard"]["anodfdnet-lite-d2"]["f1"]
    assert f1["n"] == 1 and f1["values"] == [runs[("anodfdnet-lite-d2", 0)]["metrics"]["synth-hard"]["f1"]]

    # The same command again reuses every finished run and its cached evaluation.
    capsys.readouterr()
    assert ba.main(_args(*argv)) == 0
    again = json.loads((out.parent / "accuracy.json").read_text())
    assert all(r["reused"] for r in again["runs"])
    assert [r["metrics"] for r in again["runs"]] == [r["metrics"] for r in raw["runs"]]
    printed = capsys.readouterr().out
    assert printed.count("    reused;") == len(want) and "    trained;" not in printed

    # Another schedule into the same work folder is refused before any training.
    with pytest.raises(UserError, match="trained with steps_per_epoch"):
        ba.main(_args(*argv, "--steps", "6"))


def _record(method, seed, f1):
    m = {k: f1 for k in tables.METRICS}
    return {"method": method, "seed": seed, "metrics": {"synth-hard": m, "deeppcb": m}}


def test_mean_std_cells_and_targets_follow_the_numbers():
    o = ba.resolve_options(_args("--quick"))
    table1, table3 = ba.methods(o)
    sets = [tables.ValSet("deeppcb", "DeepPCB val", "x", "x", ""), tables.ValSet("synth-hard", "synth hard", "y", "y", "")]
    f1 = {"unet-cat-lite": (0.50, 0.52, 0.54), "deeplabv3plus-cat-lite": (0.60, 0.61, 0.62), "fc-siam-diff-lite": (0.40, 0.40, 0.40),
          "anodfdnet-lite-d2": (0.86, 0.88, 0.90), "anodfdnet-lite-d0": (0.70, 0.71, 0.72), "anodfdnet-lite-d1": (0.80, 0.80, 0.80),
          "anodfdnet-lite-d4": (0.69, 0.70, 0.71), "anodfdnet-lite-d8": (0.90, 0.90, 0.90)}
    records = [_record(k, s, v) for k, vals in f1.items() for s, v in enumerate(vals)]
    summary = {t: {s.key: {m.key: tables.aggregate(records, m.key, s.key, [0, 1, 2]) for m in ms} for s in sets}
               for t, ms in (("table1", table1), ("table3", table3))}
    cell = summary["table1"]["synth-hard"]["anodfdnet-lite-d2"]["f1"]
    assert cell["n"] == 3 and tables._cell(cell) == "88.00 ± 2.00"
    assert tables._cell(tables.aggregate(records, "anodfdnet-lite-d2", "synth-hard", [0])["f1"]) == "86.00 ± n/a"
    status = [t["status"] for t in tables.targets(summary, table1, table3, sets)]
    assert status == ["met", "met", "missed"]  # 0.88 >= 0.85; +27 points > 2; d4 is behind d0
    records = [r for r in records if r["method"] != "anodfdnet-lite-d2" or r["seed"] == 0]  # one seed: no spread
    summary["table1"]["synth-hard"]["anodfdnet-lite-d2"] = tables.aggregate(records, "anodfdnet-lite-d2", "synth-hard", [0, 1, 2])
    assert tables.targets(summary, table1, table3, sets)[1]["status"] == "n/a"
    assert [t["status"] for t in tables.targets(summary, table1, table3, sets[1:])][0] == "n/a"  # DeepPCB not evaluated


def test_train_runs_runs_each_missing_run_once_and_marks_only_the_successful(tmp_path, capsys):
    """The training loop the budget and I2C benchmarks share: a run folder with DONE is skipped, a run that exits
    0 gets DONE and its output in stdout.log, a failing one is named and gets no DONE."""
    import sys

    from benchmarks.budget import train_runs

    ok, bad, done = tmp_path / "ok-s0", tmp_path / "bad-s0", tmp_path / "done-s0"
    done.mkdir()
    (done / "DONE").touch()
    py = sys.executable
    train_runs([(ok, [py, "-c", "print('trained')"]), (bad, [py, "-c", "raise SystemExit(3)"]),
                (done, [py, "-c", "open('ran', 'w')"])], parallel=2, poll_s=0.05)
    assert (ok / "DONE").exists() and (ok / "stdout.log").read_text().strip() == "trained"
    assert not (bad / "DONE").exists() and "bad-s0 failed (exit 3)" in capsys.readouterr().err
    assert not (done / "stdout.log").exists()
