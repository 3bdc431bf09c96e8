"""The I2Correlation ablation (issue 21): does cross-attention to the history make the model robust to the
viewpoint changes registration misses, and how far does the unsupervised objective get?

    python -m benchmarks i2c --work DIR [--run] [--budget-minutes 8] [--seeds 0 1 2] [--out benchmarks/I2C.md]

Every trained method uses the protocol of ``python -m benchmarks budget`` (preset effnet, crops of 128 at native
size, batch 4, one thread, the same **CPU budget** per run, default 8 minutes), on the training sides of
DeepPCB, the tunnel pairs and ``synth:2000``:

- supervised: Transformer depth 2 (today's), no bottleneck (Transformer depth 0), I2Correlation depths 0, 2, 4;
- unsupervised: I2Correlation depth 2 with ``--objective normal`` (the same training sides read as ``normal:``,
  no masks, no validation);
- the classical baseline, without training: the history registered onto the current (``align auto``) and the
  blurred grey-level absolute difference as the anomaly map.

Each method (each seed) is scored on DeepPCB val, tunnel val and synth val, and on generated pairs under a
controlled viewpoint change (``move:PX:DEG:synth:2000@val``: shift 0/4/8/16 px, rotation 0/2/5 degrees), with
``--align off`` and ``--align auto``. Every figure is at a threshold **calibrated on 5 labelled pairs** of the
same kind (the set's training side, moved alike), so the unsupervised model and the baseline, whose scores have
no natural threshold, are compared fairly; AUC needs no threshold. Results are mean ± standard deviation
over seeds. ``--run`` trains what is missing first (a finished run has ``DONE``); evaluations are cached
per run. The report is written from whatever has run; the raw numbers go to ``i2c.json`` beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from .budget import BUDGET_MINUTES, REPO, SHARED, train_runs

SHIFTS, ROTATIONS = (0, 4, 8, 16), (0, 2, 5)
CALIBRATION_PAIRS = 5
CLASSICAL = "classical"


@dataclass(frozen=True)
class Method:
    key: str
    label: str
    args: tuple[str, ...]
    normal: bool = False


METHODS = [
    Method("transformer-d2", "Transformer d2 (today's)", ("--bottleneck", "transformer", "--depth", "2")),
    Method("none-d0", "no bottleneck (Transformer d0)", ("--bottleneck", "transformer", "--depth", "0")),
    Method("i2c-d0", "I2Correlation d0 (one correlation)", ("--bottleneck", "i2c", "--depth", "0")),
    Method("i2c-d2", "I2Correlation d2", ("--bottleneck", "i2c", "--depth", "2")),
    Method("i2c-d4", "I2Correlation d4", ("--bottleneck", "i2c", "--depth", "4")),
    Method("i2c-d2-normal", "I2Correlation d2, unsupervised (normal pairs only)",
           ("--bottleneck", "i2c", "--depth", "2", "--objective", "normal"), normal=True),
]


def train_data(normal: bool) -> list[str]:
    data = [f"deeppcb:{SHARED}/deeppcb/trainval.txt", f"ba:{SHARED}/tunnel_synthetic", "synth:2000"]
    return [f"{d}@train" for d in data] if normal else data  # normal: no held-out split of its own (no masks)


def train_command(m: Method, seed: int, work: Path, budget: float, val_limit: int = 40) -> list[str]:
    data = [x for d in train_data(m.normal) for x in ("--data", d)]
    return [sys.executable, "-m", "anodfdnet", "train", *data, "--preset", "effnet", "--size", "128", "--crop", "--batch", "4",
            "--threads", "1", "--workers", "0", "--val-limit", str(val_limit), "--epochs", "100", "--steps-per-epoch", "400",
            "--save-every", "100", "--budget-minutes", f"{budget:g}", "--seed", str(seed),
            "--out", str(work / f"{m.key}-s{seed}"), *m.args]


@dataclass(frozen=True)
class EvalSet:
    key: str
    label: str
    spec: str  # the pairs scored
    calibration: str  # the labelled pairs of the same kind whose first CALIBRATION_PAIRS fit the threshold


def eval_sets(shifts=SHIFTS, rotations=ROTATIONS) -> list[EvalSet]:
    pcb, tunnel = f"deeppcb:{SHARED}/deeppcb/trainval.txt", f"ba:{SHARED}/tunnel_synthetic"
    sets = [EvalSet("deeppcb", "DeepPCB val", f"{pcb}@val", f"{pcb}@train"),
            EvalSet("tunnel", "tunnel val", f"{tunnel}@val", f"{tunnel}@train"),
            EvalSet("synth", "synth val", "synth:2000@val", "synth:2000@train")]
    for px in shifts:
        for deg in rotations:
            sets.append(EvalSet(f"move-{px}-{deg}", f"synth val moved {px} px, {deg}°", f"move:{px}:{deg}:synth:2000@val",
                                f"move:{px}:{deg}:synth:2000@train"))
    return sets


def classical_map(history, current, align: str):
    """The registered-difference baseline: grey-level |current - history| after alignment, blurred, in [0, 1]."""
    import cv2
    import numpy as np

    from anodfdnet.align import align_pair

    a = align_pair(history, current, align)
    g = lambda im: cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32)  # noqa: E731
    d = cv2.GaussianBlur(np.abs(g(current) - g(a.history)), (0, 0), 2.0) / 255.0
    if a.valid is not None:
        d[~a.valid] = 0.0
    return np.clip(d, 0.0, 1.0), a.valid


def _metrics(predict, source, limit: int | None):
    from anodfdnet.metrics import PixelMetrics

    acc = PixelMetrics()
    for i in range(len(source) if limit is None else min(limit, len(source))):
        pair = source[i]
        prob, valid = predict(pair)
        acc.update(prob, pair.mask, valid)
    return acc


def score_method(run: Path | None, sets: list[EvalSet], aligns: list[str], limit: int) -> dict:
    """{set key: {align: {f1_cal, auc, threshold}}} for one run (None: the classical baseline); cached in
    RUN/i2c_eval.json (the baseline's in the work folder)."""
    from anodfdnet.align import resize_valid
    from anodfdnet.checkpoint import load_checkpoint, read_info
    from anodfdnet.data import parse_spec
    from anodfdnet.device import pick_device
    from anodfdnet.inference.pipeline import predict_aligned
    from anodfdnet.inference.runtime import build_runtime
    from anodfdnet.metrics import best_threshold

    stamp, cache_file = "classical", None
    if run is not None:
        info = read_info(run / "best.safetensors")
        stamp = f"{info.meta.get('saved_at')}|{info.meta.get('steps')}"
    cache_file = (run or Path(os.environ.get("I2C_WORK", "."))) / "i2c_eval.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if cache.get("checkpoint") != stamp:
        cache = {"checkpoint": stamp, "results": {}}
    device, forward = pick_device("cpu"), None
    for s in sets:
        for align in aligns:
            key = f"{s.spec}|{align}|{limit}"
            if key in cache["results"]:
                continue
            if run is None:
                predict = lambda pair, align=align: classical_map(pair.history, pair.current, align)  # noqa: E731
            else:
                if forward is None:
                    model, info = load_checkpoint(run / "best.safetensors", device)
                    forward = build_runtime(model, run / "best.safetensors", device, "auto")

                def predict(pair, align=align):
                    prob, _, a = predict_aligned(forward, pair.history, pair.current, None, device, out_shape=pair.mask.shape,
                                                 align=align)
                    return prob, None if a.valid is None else resize_valid(a.valid, pair.mask.shape)
            calib = _metrics(predict, parse_spec(s.calibration), CALIBRATION_PAIRS)
            threshold, _ = best_threshold([calib])
            acc = _metrics(predict, parse_spec(s.spec), limit)
            m = acc.compute()
            cache["results"][key] = {"f1_cal": acc.at(threshold)["f1"], "auc": m["auc"], "threshold": threshold,
                                     "pairs": m["pairs"]}
            tmp = cache_file.with_name(cache_file.name + ".tmp")
            tmp.write_text(json.dumps(cache, indent=1))
            os.replace(tmp, cache_file)
    return {s.key: {a: cache["results"][f"{s.spec}|{a}|{limit}"] for a in aligns} for s in sets}


def _ms(values: list[float]) -> str:
    vals = [100 * v for v in values if v == v]
    if not vals:
        return "–"
    return f"{vals[0]:.1f}" if len(vals) == 1 else f"{statistics.mean(vals):.1f} ± {statistics.stdev(vals):.1f}"


def format_report(results: dict, sets: list[EvalSet], aligns: list[str], command: str, budget: float, seeds) -> str:
    """results: {method key: {seed: {set key: {align: figures}}}} (the baseline under CLASSICAL, seed 0)."""
    labels = {m.key: m.label for m in METHODS} | {CLASSICAL: "registered difference (classical, no training)"}
    lines = ["# I2Correlation (FOD) in AnoDFDNet: the ablation", "",
             "The question: does cross-attention from the current image to the history (the I2Correlation bottleneck) make "
             "the model robust to the viewpoint changes registration misses; and how far does training on normal pairs "
             "only get against the supervised models and the classical registered difference? An i2c checkpoint ships "
             "only where it beats today's at an equal budget on a set that matters.", "",
             f"Command: `{command}`", "",
             f"Protocol: `benchmarks/i2c.py` (effnet preset, {budget:g} CPU-minutes of training per run, seeds "
             f"{', '.join(map(str, seeds))}); F1 at a threshold calibrated on {CALIBRATION_PAIRS} labelled pairs of the same kind, "
             "AUC; mean ± standard deviation over the seeds that have run (n = runs). Methods with no finished run are "
             "absent.", ""]
    if not results:
        lines += ["Nothing has run yet: no figures. Run the command above with `--run`.", ""]
        return "\n".join(lines)
    lines += summary_section(results, sets, aligns, labels)
    for align in aligns:
        lines += [f"## F1 (%) at the calibrated threshold, `--align {align}`", ""]
        head = [s.label for s in sets]
        lines += ["| method | n | " + " | ".join(head) + " |", "|---|---|" + "---|" * len(head)]
        for key, per_seed in results.items():
            row = [_ms([r[s.key][align]["f1_cal"] for r in per_seed.values()]) for s in sets]
            lines.append(f"| {labels[key]} | {len(per_seed)} | " + " | ".join(row) + " |")
        lines += ["", f"## AUC (%), `--align {align}`", "", "| method | n | " + " | ".join(head) + " |",
                  "|---|---|" + "---|" * len(head)]
        for key, per_seed in results.items():
            row = [_ms([r[s.key][align]["auc"] for r in per_seed.values()]) for s in sets]
            lines.append(f"| {labels[key]} | {len(per_seed)} | " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


def summary_section(results: dict, sets: list[EvalSet], aligns: list[str], labels: dict) -> list[str]:
    """The question in one table: F1 on the unmoved validation sets and on the moved ones, each a mean over the
    sets per seed, then mean ± sd over seeds; the change against the Transformer d2 from the means."""
    moved = [s for s in sets if s.key.startswith("move-")]
    plain = [s for s in sets if not s.key.startswith("move-")]
    worst = [s for s in moved if s.key == f"move-{max(SHIFTS)}-{max(ROTATIONS)}"] or moved[-1:]
    if not moved or not results:
        return []
    groups = [(f"unmoved sets, `--align {aligns[0]}`", plain, aligns[0])] + [(f"moved sets, `--align {a}`", moved, a) for a in aligns] \
        + [(f"{worst[0].label}, `--align {a}`", worst, a) for a in aligns]
    lines = ["## Summary: F1 (%) without and with viewpoint change", "",
             f"Mean F1 at the calibrated threshold over a group of sets (unmoved: {', '.join(s.label for s in plain)}; "
             f"moved: the {len(moved)} shifted and rotated synth sets), per seed, then mean ± sd over seeds; in brackets "
             "the difference from the Transformer d2's mean. The question is answered by the moved sets with "
             "`--align off`: cross-attention to the history would show there as a smaller loss than the Transformer's.", "",
             "| method | n | " + " | ".join(g[0] for g in groups) + " |", "|---|---|" + "---|" * len(groups)]

    def per_seed(per: dict, group: list[EvalSet], align: str) -> list[float]:
        return [statistics.mean(r[s.key][align]["f1_cal"] for s in group) for r in per.values()]

    ref = results.get("transformer-d2")
    for key, per in results.items():
        cells = []
        for _, group, align in groups:
            vals = per_seed(per, group, align)
            cell = _ms(vals)
            if ref and key != "transformer-d2":
                cell += f" ({100 * (statistics.mean(vals) - statistics.mean(per_seed(ref, group, align))):+.1f})"
            cells.append(cell)
        lines.append(f"| {labels[key]} | {len(per)} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.description = __doc__.split("\n\n")[0]
    ap.add_argument("--work", required=True, help="run folders, METHOD-sSEED, and the cached evaluations")
    ap.add_argument("--run", action="store_true", help="train the runs that are missing or unfinished first")
    ap.add_argument("--parallel", type=int, default=2, help="runs trained at once with --run, one thread each (default 2)")
    ap.add_argument("--budget-minutes", type=float, default=BUDGET_MINUTES, help=f"CPU minutes of training per run (default {BUDGET_MINUTES})")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="(default 0 1 2)")
    ap.add_argument("--only", nargs="*", default=None, help="method keys to include (default all, and the classical baseline)")
    ap.add_argument("--val-limit", type=int, default=40, help="validation pairs per set while training (default 40)")
    ap.add_argument("--eval-limit", type=int, default=40, help="pairs scored per set (default 40)")
    ap.add_argument("--shifts", type=int, nargs="+", default=list(SHIFTS), help="shifts in px of the moved sets (default 0 4 8 16)")
    ap.add_argument("--rotations", type=float, nargs="+", default=list(ROTATIONS), help="rotations in degrees (default 0 2 5)")
    ap.add_argument("--aligns", nargs="+", default=["off", "auto"], choices=("off", "auto"), help="(default off auto)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the evaluation (default 1)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("I2C.md")), help="report (default benchmarks/I2C.md)")


def main(a: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(a.threads)
    work = Path(a.work).expanduser()
    work.mkdir(parents=True, exist_ok=True)
    os.environ["I2C_WORK"] = str(work)
    methods = [m for m in METHODS if a.only is None or m.key in a.only]
    if a.run:
        train_runs([(work / f"{m.key}-s{s}", train_command(m, s, work, a.budget_minutes, a.val_limit))
                    for m in methods for s in a.seeds], a.parallel)
    sets = eval_sets(a.shifts, [int(r) if float(r).is_integer() else r for r in a.rotations])
    results: dict[str, dict[int, dict]] = {}
    for m in methods:
        for s in a.seeds:
            run = work / f"{m.key}-s{s}"
            if (run / "DONE").exists() and (run / "best.safetensors").exists():
                print(f"evaluating {run.name}", file=sys.stderr, flush=True)
                results.setdefault(m.key, {})[s] = score_method(run, sets, a.aligns, a.eval_limit)
    if a.only is None or CLASSICAL in a.only:
        print("evaluating the classical baseline", file=sys.stderr, flush=True)
        results[CLASSICAL] = {0: score_method(None, sets, a.aligns, a.eval_limit)}
    args = ["DIR" if x == a.work else x for x in sys.argv[1:]] if sys.argv[1:2] == ["i2c"] else ["i2c", "--work", "DIR"]
    command = "python -m benchmarks " + " ".join(args)  # the command as given, the work folder as DIR
    report = format_report(results, sets, a.aligns, command, a.budget_minutes, a.seeds)
    out = Path(a.out)
    out.write_text(report + "\n")
    out.with_name("i2c.json").write_text(json.dumps(results, indent=1) + "\n")
    print(report)
    return 0
