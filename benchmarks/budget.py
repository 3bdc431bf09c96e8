"""Methods compared at an equal CPU budget: the experiments behind the app's default model (issue #11).

    python -m benchmarks budget [--train] [--parallel 2] [--work ~/runs/exp] [--out benchmarks/ACCURACY.md]

Every method trains on the same data (the 8:2 training sides of DeepPCB, the tunnel pairs and ``synth:2000``)
with the same protocol (crops of 128 at native size, batch 4, one thread, validation every 400 steps on the
first 40 pairs of each validation side, the epoch with the best mean F1 at its calibrated threshold kept)
for the same **8 minutes of CPU time** of training (``train --budget-minutes 8``: process CPU time, so other
load on the machine changes the wall time, not the budget). Each run is then evaluated at native size on:

- DeepPCB val, tunnel val, synth val (the validation sides; the first ``--eval-limit`` pairs of the larger),
- synth hard (``synth:100:78:hard``): generated pairs with larger viewpoint and lighting changes,
- ``warp:1:`` DeepPCB val and tunnel val: the same pairs with the history seen from another viewpoint
  (up to 10 % shift, 10 degrees, 15 % scale, mild perspective; see ``anodfdnet/warped.py``).

F1 is reported at 0.5 (the paper's convention) and at each checkpoint's calibrated threshold, with AUC, as
mean ± standard deviation over seeds. ``--train`` first trains the runs that are missing (each table's
command is the one below); an existing run folder is reused or resumed. Evaluations are cached in each
run folder. The raw numbers go to ``budget.json`` beside the report.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ANODFDNET_SHARED_DATA", REPO.parent / "shared" / "data"))
BUDGET_MINUTES = 8


@dataclass(frozen=True)
class Method:
    key: str
    label: str
    args: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    group: str = ""


METHODS = [
    Method("effnet-d2-fast", "AnoDFDNet effnet d2, fast recipe", ("--preset", "effnet", "--depth", "2", "--recipe", "fast", "--augment", "geometric"), (0, 1, 2), "headline"),
    Method("lite-d2-fast", "AnoDFDNet lite d2 (from scratch), fast recipe", ("--preset", "lite", "--depth", "2", "--recipe", "fast", "--augment", "geometric"), (0, 1, 2), "headline"),
    Method("effnet-d2-paper", "effnet d2, paper recipe (Adam 2e-4, BCE)", ("--preset", "effnet", "--depth", "2", "--recipe", "paper", "--augment", "geometric"), (0, 1, 2), "recipe"),
    Method("lite-d2-paper", "lite d2, paper recipe (Adam 2e-4, BCE)", ("--preset", "lite", "--depth", "2", "--recipe", "paper", "--augment", "geometric"), (0,), "recipe"),
    Method("effnet-d2-noprior", "effnet d2, fast recipe, logit bias 0", ("--preset", "effnet", "--depth", "2", "--recipe", "fast", "--augment", "geometric", "--prior", "none"), (0,), "recipe"),
    Method("effnet-d2-nuis", "effnet d2, fast recipe, nuisance augmentation", ("--preset", "effnet", "--depth", "2", "--recipe", "fast", "--augment", "nuisance"), (0,), "recipe"),
    Method("effnet-d0-fast", "AnoDFDNet effnet d0", ("--preset", "effnet", "--depth", "0", "--recipe", "fast", "--augment", "geometric"), (0, 1, 2), "depth"),
    Method("effnet-d1-fast", "AnoDFDNet effnet d1", ("--preset", "effnet", "--depth", "1", "--recipe", "fast", "--augment", "geometric"), (0,), "depth"),
    Method("effnet-d4-fast", "AnoDFDNet effnet d4", ("--preset", "effnet", "--depth", "4", "--recipe", "fast", "--augment", "geometric"), (0,), "depth"),
    Method("effnet-d8-fast", "AnoDFDNet effnet d8", ("--preset", "effnet", "--depth", "8", "--recipe", "fast", "--augment", "geometric"), (0,), "depth"),
    Method("unet-cat-fast", "Unet-cat (lite widths)", ("--arch", "unet-cat", "--preset", "lite", "--recipe", "fast", "--augment", "geometric"), (0,), "baselines"),
    Method("fc-siam-diff-fast", "FC-Siam-diff (lite widths)", ("--arch", "fc-siam-diff", "--preset", "lite", "--recipe", "fast", "--augment", "geometric"), (0,), "baselines"),
    Method("deeplabv3plus-cat-fast", "DeepLabV3+-cat (lite widths)", ("--arch", "deeplabv3plus-cat", "--preset", "lite", "--recipe", "fast", "--augment", "geometric"), (0,), "baselines"),
]


def train_data() -> list[str]:
    return [f"deeppcb:{SHARED}/deeppcb/trainval.txt", f"ba:{SHARED}/tunnel_synthetic", "synth:2000"]


def train_command(m: Method, seed: int, work: Path, budget: float) -> list[str]:
    data = [x for d in train_data() for x in ("--data", d)]
    return [sys.executable, "-m", "anodfdnet", "train", *data, "--size", "128", "--crop", "--batch", "4", "--threads", "1",
            "--workers", "0", "--val-limit", "40", "--epochs", "100", "--steps-per-epoch", "400", "--save-every", "100",
            "--budget-minutes", f"{budget:g}", "--seed", str(seed), "--out", str(work / f"{m.key}-s{seed}"), *m.args]


@dataclass(frozen=True)
class EvalSet:
    key: str
    label: str
    spec: str
    limit: int | None = None


def eval_sets(limit: int) -> list[EvalSet]:
    pcb, tunnel = f"deeppcb:{SHARED}/deeppcb/trainval.txt@val", f"ba:{SHARED}/tunnel_synthetic@val"
    return [EvalSet("deeppcb", "DeepPCB val", pcb, limit), EvalSet("tunnel", "tunnel val", tunnel),
            EvalSet("synth", "synth val", "synth:2000@val", limit), EvalSet("synth-hard", "synth hard", "synth:100:78:hard"),
            EvalSet("warp-deeppcb", "DeepPCB val, viewpoint warp 1", f"warp:1:{pcb}", limit),
            EvalSet("warp-tunnel", "tunnel val, viewpoint warp 1", f"warp:1:{tunnel}")]


def evaluate_run(run: Path, sets: list[EvalSet], path: str) -> dict:
    """Per set: F1/IoU at 0.5 and at the checkpoint's threshold, AUC; cached in RUN/budget_eval.json."""
    from anodfdnet.checkpoint import load_checkpoint, read_info
    from anodfdnet.data import parse_spec
    from anodfdnet.device import pick_device
    from anodfdnet.evaluate import accumulate
    from anodfdnet.inference.runtime import build_runtime

    best = run / "best.safetensors"
    info = read_info(best)
    stamp = f"{info.meta.get('saved_at')}|{info.meta.get('steps')}|{path}"
    cache_file = run / "budget_eval.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if cache.get("checkpoint") != stamp:
        cache = {"checkpoint": stamp, "results": {}}
    model = runtime = None
    device = pick_device("cpu")
    for s in sets:
        key = f"{s.spec}|{s.limit}"
        if key in cache["results"]:
            continue
        if model is None:
            model, info = load_checkpoint(best, device)
            runtime = build_runtime(model, best, device, path)
        acc = accumulate(model, parse_spec(s.spec), None, device, limit=s.limit, progress=False, forward=runtime)
        m, at = acc.compute(), acc.at(info.threshold)
        cache["results"][key] = {"f1": m["f1"], "iou": m["iou"], "auc": m["auc"], "f1_cal": at["f1"], "iou_cal": at["iou"],
                                 "threshold": info.threshold, "pairs": m["pairs"]}
        tmp = cache_file.with_name(cache_file.name + ".tmp")
        tmp.write_text(json.dumps(cache, indent=1))
        os.replace(tmp, cache_file)
    return {s.key: cache["results"][f"{s.spec}|{s.limit}"] for s in sets}


def _ms(values: list[float], pct: bool = True) -> str:
    vals = [v * (100 if pct else 1) for v in values if v == v]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.1f}"
    return f"{statistics.mean(vals):.1f} ± {statistics.stdev(vals):.1f}"



def train_runs(jobs: list[tuple[Path, list[str]]], parallel: int, poll_s: float = 2.0) -> None:
    """Run each (run folder, training command) whose folder has no ``DONE`` yet, ``parallel`` at once, each with
    its output in ``FOLDER/stdout.log``; a run that exits 0 gets ``DONE``, one that fails is named on stderr.
    The loop the budget, ablation and I2C benchmarks share."""
    todo = [(out, cmd) for out, cmd in jobs if not (out / "DONE").exists()]
    running: list[tuple[subprocess.Popen, Path]] = []
    while todo or running:
        while todo and len(running) < parallel:
            out, cmd = todo.pop(0)
            out.mkdir(parents=True, exist_ok=True)
            with open(out / "stdout.log", "a") as log:
                running.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO), out))
        time.sleep(poll_s)
        for p, out in list(running):
            if p.poll() is not None:
                running.remove((p, out))
                if p.returncode == 0:
                    (out / "DONE").touch()
                else:
                    print(f"{out.name} failed (exit {p.returncode}); see {out / 'stdout.log'}", file=sys.stderr)

def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.description = __doc__.split("\n\n")[0]
    ap.add_argument("--work", default=str(Path.home() / "runs" / "exp"), help="run folders, METHOD-sSEED (default ~/runs/exp)")
    ap.add_argument("--train", action="store_true", help="train the runs that are missing or unfinished first")
    ap.add_argument("--parallel", type=int, default=2, help="runs trained at once with --train, one thread each (default 2)")
    ap.add_argument("--budget-minutes", type=float, default=BUDGET_MINUTES, help=f"CPU minutes of training per run (default {BUDGET_MINUTES})")
    ap.add_argument("--eval-limit", type=int, default=60, help="pairs of the larger sets evaluated (default 60)")
    ap.add_argument("--path", default="bf16", help="inference path for the evaluation (default bf16; eager is the fp32 reference)")
    ap.add_argument("--only", nargs="*", default=None, help="method keys to include (default all)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the evaluation (default 1: on a busy 2-core machine "
                    "two OpenMP threads wait on each other for seconds per pair)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("ACCURACY.md")), help="report (default benchmarks/ACCURACY.md)")


def main(a: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(a.threads)
    work = Path(a.work).expanduser()
    methods = [m for m in METHODS if a.only is None or m.key in a.only]
    if a.train:
        train_runs([(work / f"{m.key}-s{s}", train_command(m, s, work, a.budget_minutes)) for m in methods for s in m.seeds],
                   a.parallel)
    sets = eval_sets(a.eval_limit)
    results: dict[str, dict[int, dict]] = {}
    for m in methods:
        for s in m.seeds:
            run = work / f"{m.key}-s{s}"
            if (run / "DONE").exists() and (run / "best.safetensors").exists():
                print(f"evaluating {run.name}", file=sys.stderr, flush=True)
                from anodfdnet.checkpoint import read_info

                meta = read_info(run / "best.safetensors").meta
                last = read_info(run / "last.safetensors").meta
                results.setdefault(m.key, {})[s] = {"sets": evaluate_run(run, sets, a.path), "best_step": meta.get("steps"),
                                                    "steps": last.get("steps"), "cpu_minutes": last.get("train_cpu_minutes")}
    write_report(a, methods, sets, results)
    return 0


def write_report(a, methods: list[Method], sets: list[EvalSet], results: dict) -> None:
    lines = ["# Accuracy at an equal CPU budget", "",
             f"Written by `python -m benchmarks budget --eval-limit {a.eval_limit} --path {a.path}"
             f"{' --only ' + ' '.join(a.only) if a.only else ''}` from the runs in the work folder "
             f"({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC); nothing here is typed by hand. "
             "How the runs were trained and evaluated: the docstring of `benchmarks/budget.py`; the training command of one run:", "",
             "```", " ".join(str(x) for x in train_command(methods[0], 0, Path("RUNS"), a.budget_minutes)).replace(sys.executable, "python")
             .replace(str(SHARED), "../shared/data"), "```", "",
             "Cells: mean ± std over the seeds (one number: one seed). F1 in % at 0.5 / at the run's calibrated threshold; AUC in %.", ""]
    groups = [("headline", "Encoders: ImageNet EfficientNet-Lite0 against the paper's from-scratch encoder (3 seeds)"),
              ("baselines", "Table 1 analogue: the paper's comparison methods, same protocol"),
              ("depth", "Table 3 analogue: Transformer depth (effnet encoder)"),
              ("recipe", "Recipe ablations (effnet d2 unless named)")]
    for g, title in groups:
        ms = [m for m in methods if m.group == g or (g == "baselines" and m.key == "effnet-d2-fast") or (g == "depth" and m.key == "effnet-d2-fast")]
        ms = [m for m in ms if m.key in results]
        if not ms:
            continue
        lines += [f"## {title}", "", "| method | seeds | steps | " + " | ".join(s.label for s in sets) + " |",
                  "|---|---:|---:|" + "---:|" * len(sets)]
        for m in ms:
            r = results[m.key]
            cells = []
            for s in sets:
                f1 = _ms([x["sets"][s.key]["f1"] for x in r.values()])
                f1c = _ms([x["sets"][s.key]["f1_cal"] for x in r.values()])
                auc = _ms([x["sets"][s.key]["auc"] for x in r.values()])
                cells.append(f"{f1} / {f1c}<br>AUC {auc}")
            steps = _ms([float(x["steps"]) for x in r.values()], pct=False).split(" ±")[0]
            lines.append(f"| {m.label} | {len(r)} | {steps} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Pairs per set: " + ", ".join(f"{s.label} {s.limit or 'all'}" for s in sets) + ".", ""]
    Path(a.out).write_text("\n".join(lines) + "\n")
    Path(a.out).with_name("budget.json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(lines))
