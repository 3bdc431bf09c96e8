"""Accuracy benchmark: ``python -m benchmarks accuracy`` writes ``benchmarks/ACCURACY_STEPS.md`` (methods at an equal number of steps).

Every method is trained and evaluated under one protocol (same data pipeline, loss, schedule and
selection rule), over several seeds, and the report is generated from the numbers:

- Table 1 analogue: Unet-cat, DeepLabV3+-cat, FC-Siam-diff and AnoDFDNet lite depth 2 (and the paper
  preset at depth 2 with ``--include-paper``) x the validation sets (DeepPCB val at native 640, tunnel val
  at native 512, synth easy, synth hard): precision, recall, OA, F1, IoU, AUC, EER as mean ± std over
  the seeds, with parameters and GFLOPs.
- Table 3 analogue: AnoDFDNet lite at Transformer depths 0/1/2/4/8 on the same sets.
- Targets: each judged from the measured numbers and printed as met / missed / n/a.

Runs go to ``--work`` (one folder per method and seed). A run whose folder holds a finished
``best.safetensors`` is reused, an unfinished one resumes, and evaluations are cached beside the
checkpoint, so an interrupted benchmark picks up where it stopped. The raw per-seed numbers go to a JSON
file beside the Markdown. ``--quick`` is a smoke run of the whole pipeline (synth only, a handful of
steps on 64x64 crops) whose report says it is not for reporting.

Best-epoch selection does not look at the reported sets: it uses held-out *selection* sets (other
synth seeds, and 10 % carved out of the DeepPCB and tunnel training splits); ``--select val`` instead
selects on the reported sets, as ``checkpoints/train.sh`` and the paper do.

This module runs the protocol (options, data plan, one run after another); ``accuracy_tables`` holds the
tables' rows and sections, the aggregation over seeds, the targets and the Markdown.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from anodfdnet.errors import UserError
from anodfdnet.json_safe import json_safe

from .accuracy_tables import (
    BASELINE_LABELS,
    QUICK_BANNER,
    Method,
    ValSet,
    aggregate,
    anodfdnet_method,
    model_cost,
    pct,
    render,
    targets,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = REPO.parent / "shared" / "data"
DEPTHS = (0, 1, 2, 4, 8)

# The fields of a TrainConfig that decide a run's result: a run folder trained with other values is not reused.
RESULT_FIELDS = ("data", "val", "arch", "preset", "depth", "size", "mode", "eval_size", "epochs", "steps_per_epoch",
                 "batch", "lr", "loss", "seed", "val_limit", "init")

# Defaults of the full benchmark and of --quick; an option given on the command line wins over both.
FULL = dict(steps=20000, epochs=20, size=256, crop=True, batch=4, loss="bce+dice", val_limit=64, eval_limit=None,
            workers=4, seeds=[0, 1, 2], ablation_seeds=[0, 1, 2], work="runs/bench-accuracy",
            out="benchmarks/ACCURACY_STEPS.md")
QUICK = dict(steps=4, epochs=2, size=64, crop=True, batch=4, loss="bce+dice", val_limit=2, eval_limit=3,
             workers=0, seeds=[0], ablation_seeds=[0], work="runs/bench-accuracy-quick",
             out="runs/bench-accuracy-quick/ACCURACY.md")


# -------------------------------------------------------------------------------------------------
# Command-line options
# -------------------------------------------------------------------------------------------------
def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{v} is not positive")
    return v


def _size16(text: str) -> int:
    v = _positive(text)
    if v % 16:
        raise argparse.ArgumentTypeError(f"size {v} is not a multiple of 16")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m benchmarks accuracy`` (defaults of None are resolved by --quick or the full run)."""
    parser.description = ("Train and evaluate every method under one protocol over several seeds and write the "
                          "Markdown report (Table 1 and Table 3 analogues, targets) and a JSON of the raw results.")
    a = parser.add_argument
    a("--quick", action="store_true", help=f"smoke run: synth only, {QUICK['steps']} steps on {QUICK['size']}x{QUICK['size']} "
      f"crops, 1 seed, {QUICK['eval_limit']} pairs per set; the report is marked '{QUICK_BANNER}' and goes to {QUICK['out']}")
    a("--seeds", type=int, nargs="+", default=None, help="training seeds of Table 1 (default 0 1 2; quick: 0)")
    a("--ablation-seeds", type=int, nargs="+", default=None, help="training seeds of the depth ablation (default 0 1 2; quick: 0)")
    a("--depths", type=int, nargs="+", default=list(DEPTHS), help="Transformer depths of the ablation (default 0 1 2 4 8)")
    a("--include-paper", action="store_true", help="also train the paper preset at depth 2 (35.9M parameters; for a GPU)")
    a("--baseline-preset", choices=("lite", "paper"), default="lite",
      help="widths of the baselines: lite (ndf 16, about AnoDFDNet lite's size) or paper (the originals', ndf 64) (default lite)")
    a("--steps", type=_positive, default=None, help=f"optimizer steps per run (default {FULL['steps']}; quick: {QUICK['steps']})")
    a("--epochs", type=_positive, default=None,
      help=f"validations per run, the best kept; steps are split evenly (default {FULL['epochs']}; quick: {QUICK['epochs']})")
    a("--size", type=_size16, default=None, help=f"training crop (or resize) size (default {FULL['size']}; quick: {QUICK['size']})")
    a("--crop", action=argparse.BooleanOptionalAction, default=None,
      help="train on crops at native resolution and evaluate at native size (default); --no-crop resizes whole pairs to --size")
    a("--batch", type=_positive, default=None, help="batch size (default 4, the paper's)")
    a("--loss", choices=("bce", "bce+dice"), default=None, help="the same for every method (default bce+dice, as the shipped checkpoints)")
    a("--select", choices=("holdout", "val"), default="holdout",
      help="best-epoch selection on held-out selection sets (default) or on the reported validation sets (the paper's practice)")
    a("--val-limit", type=_positive, default=None,
      help=f"pairs of each selection set evaluated per epoch (default {FULL['val_limit']}; quick: {QUICK['val_limit']})")
    a("--eval-limit", type=_positive, default=None, help=f"the first N pairs of each reported set (default all; quick: {QUICK['eval_limit']})")
    a("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    a("--workers", type=int, default=None, help=f"data-loading processes (default {FULL['workers']}; quick: {QUICK['workers']})")
    a("--shared", default=str(DEFAULT_SHARED), help="folder with deeppcb/ and tunnel_synthetic/ (default: ../shared/data beside the repository); "
      "when absent the real sets are skipped with a note")
    a("--work", default=None, help=f"run folders (default {FULL['work']}; quick: {QUICK['work']})")
    a("--out", default=None, help=f"the Markdown report (default {FULL['out']}; quick: {QUICK['out']})")
    a("--json", default=None, help="raw results (default: accuracy.json beside --out)")
    a("--notes", default=None, help="a Markdown file of hand-written discussion to include in the report")
    a("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bars (default: when stderr is a terminal)")


@dataclass
class Options:
    quick: bool
    seeds: list[int]
    ablation_seeds: list[int]
    depths: list[int]
    include_paper: bool
    baseline_preset: str
    steps: int
    epochs: int
    size: int
    crop: bool
    batch: int
    loss: str
    select: str
    val_limit: int | None
    eval_limit: int | None
    device: str
    workers: int
    shared: str
    work: str
    out: str
    json: str
    notes: str | None
    progress: bool

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.steps // self.epochs)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs


def resolve_options(args: argparse.Namespace) -> Options:
    base = QUICK if args.quick else FULL
    pick = {k: (getattr(args, k) if getattr(args, k, None) is not None else base[k]) for k in base}
    if pick["epochs"] > pick["steps"]:
        pick["epochs"] = pick["steps"]
    if pick["workers"] < 0:
        raise UserError(f"--workers must be 0 or more, got {pick['workers']}.")
    depths = sorted(set(args.depths))
    if any(d < 0 for d in depths):
        raise UserError(f"--depths must be 0 or more, got {' '.join(map(str, args.depths))}.")
    out = pick["out"]
    json_path = args.json or str(Path(out).with_name("accuracy.json"))
    progress = args.progress if args.progress is not None else os.isatty(2)
    return Options(quick=args.quick, seeds=list(dict.fromkeys(pick["seeds"])), ablation_seeds=list(dict.fromkeys(pick["ablation_seeds"])),
                   depths=depths, include_paper=args.include_paper, baseline_preset=args.baseline_preset, steps=pick["steps"],
                   epochs=pick["epochs"], size=pick["size"], crop=pick["crop"], batch=pick["batch"], loss=pick["loss"],
                   select=args.select, val_limit=pick["val_limit"], eval_limit=pick["eval_limit"], device=args.device,
                   workers=pick["workers"], shared=args.shared, work=pick["work"], out=out, json=json_path, notes=args.notes,
                   progress=progress)


def command_line(o: Options) -> str:
    """The explicit command that reproduces this benchmark (every result-deciding option spelled out)."""
    parts = ["python", "-m", "benchmarks", "accuracy"]
    if o.quick:
        parts.append("--quick")
    parts += ["--seeds", *map(str, o.seeds), "--ablation-seeds", *map(str, o.ablation_seeds), "--depths", *map(str, o.depths)]
    if o.include_paper:
        parts.append("--include-paper")
    parts += ["--baseline-preset", o.baseline_preset, "--steps", str(o.steps), "--epochs", str(o.epochs), "--size", str(o.size),
              "--crop" if o.crop else "--no-crop", "--batch", str(o.batch), "--loss", o.loss, "--select", o.select]
    if o.val_limit is not None:
        parts += ["--val-limit", str(o.val_limit)]
    if o.eval_limit is not None:
        parts += ["--eval-limit", str(o.eval_limit)]
    parts += ["--device", o.device, "--workers", str(o.workers), "--shared", _display_path(o.shared), "--work", o.work, "--out", o.out,
              "--json", o.json]
    if o.notes:
        parts += ["--notes", o.notes]
    return shlex.join(parts)


# -------------------------------------------------------------------------------------------------
# Data: the training mixture of checkpoints/train.sh, selection sets and reported validation sets
# -------------------------------------------------------------------------------------------------
SYNTH_TRAIN = ("synth:20000", "synth:5000:1:hard")  # as checkpoints/train.sh full
SYNTH_SELECT_N = 100
CARVE = "(val_fraction=0.1,seed=1)"  # selection pairs carved out of a real training split


def _display_path(path: str | Path) -> str:
    """A path relative to the working directory when that is shorter (keeps absolute paths out of reports)."""
    p = Path(path).expanduser().resolve()
    try:
        rel = os.path.relpath(p)
    except ValueError:  # another drive on Windows
        return str(p)
    return rel if len(rel) < len(str(p)) else str(p)


def data_plan(o: Options) -> tuple[list[str], list[ValSet], list[str]]:
    """(training specs, validation sets, notes about skipped sets)."""
    holdout = o.select == "holdout"
    train = list(SYNTH_TRAIN)
    sets: list[ValSet] = []
    notes: list[str] = []
    shared = Path(o.shared).expanduser()
    real = [
        ("deeppcb", "DeepPCB val", shared / "deeppcb" / "trainval.txt", "deeppcb", "native 640x640"),
        ("tunnel", "tunnel val", shared / "tunnel_synthetic", "ba", "native 512x512"),
    ]
    for key, label, path, scheme, res in real:
        if o.quick:
            notes.append(f"{label}: skipped (quick run: synth only).")
            continue
        if not path.exists():
            notes.append(f"{label}: skipped, `{_display_path(path)}` is absent (pass --shared to point at the data).")
            continue
        base = f"{scheme}:{_display_path(path)}"
        train.append(f"{base}@train@train{CARVE}" if holdout else f"{base}@train")
        sets.append(ValSet(key, label, f"{base}@val", f"{base}@train@val{CARVE}" if holdout else f"{base}@val", res))
    sets.append(ValSet("synth-easy", "synth easy", "synth:200:77", f"synth:{SYNTH_SELECT_N}:91" if holdout else "synth:200:77", "native 256x256"))
    sets.append(ValSet("synth-hard", "synth hard", "synth:200:78:hard",
                       f"synth:{SYNTH_SELECT_N}:92:hard" if holdout else "synth:200:78:hard", "native 256x256"))
    return train, sets, notes


def methods(o: Options) -> tuple[list[Method], list[Method]]:
    """(Table 1 methods, Table 3 depths)."""
    table1 = [Method(f"{arch}-{o.baseline_preset}", f"{label}" + (" (paper widths)" if o.baseline_preset == "paper" else ""), arch,
                     o.baseline_preset, 0) for arch, label in BASELINE_LABELS.items()]
    table1.append(anodfdnet_method("lite", 2))
    if o.include_paper:
        table1.append(anodfdnet_method("paper", 2))
    table3 = [anodfdnet_method("lite", d) for d in o.depths]
    return table1, table3


# -------------------------------------------------------------------------------------------------
# One run: train (or reuse / resume), then evaluate with a cache
# -------------------------------------------------------------------------------------------------
def train_config(o: Options, m: Method, seed: int, train_specs: list[str], sets: list[ValSet]):
    from anodfdnet.train import TrainConfig

    return TrainConfig(data=list(train_specs), val=[s.select for s in sets], out=str(Path(o.work) / m.key / f"seed{seed}"),
                       arch=m.arch, preset=m.preset, depth=m.depth, size=o.size, mode="crop" if o.crop else "resize",
                       epochs=o.epochs, steps_per_epoch=o.steps_per_epoch, batch=o.batch, loss=o.loss, device=o.device,
                       seed=seed, workers=o.workers, val_limit=o.val_limit, progress=o.progress,
                       extra_meta={"benchmark": "accuracy"})


def _meta(path: Path) -> dict:
    from anodfdnet.checkpoint import read_info

    return read_info(path).meta


def run_state(cfg) -> str:
    """'finished', 'partial' or 'new'; a UserError if the folder was trained with another schedule."""
    out = Path(cfg.out)
    last = out / "last.safetensors"
    if not last.exists():
        if (out / "resume.pt").exists():
            raise UserError(f"run folder '{out}' has resume.pt but no last.safetensors to check its schedule: delete the folder "
                            f"or pass another --work.")
        return "new"
    meta = _meta(last)
    want = {k: v for k, v in asdict(cfg).items() if k in RESULT_FIELDS}
    have = meta.get("train", {})
    for k, v in want.items():
        if have.get(k) != v:
            raise UserError(f"run folder '{out}' was trained with {k} = {have.get(k)!r}, this benchmark uses {v!r}: "
                            f"delete the folder or pass another --work.")
    if meta.get("epochs", 0) >= cfg.epochs and (out / "best.safetensors").exists():
        return "finished"
    return "partial"


def _timing_path(out: Path) -> Path:
    return out / "benchmark_timing.json"


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def train_or_reuse(cfg) -> dict:
    """Train the run unless it is finished; returns its timing record (accumulated over invocations)."""
    from anodfdnet.train import train

    out = Path(cfg.out)
    state = run_state(cfg)
    timing = _read_json(_timing_path(out), {"train_seconds": 0.0, "steps_timed": 0, "devices": []})
    if state != "finished":
        before = _meta(out / "last.safetensors").get("steps", 0) if state == "partial" else 0
        t0 = time.perf_counter()
        train(cfg)
        seconds = time.perf_counter() - t0
        after = _meta(out / "last.safetensors").get("steps", 0)
        from anodfdnet.device import describe_device, pick_device

        dev = describe_device(pick_device(cfg.device))
        timing = {"train_seconds": timing["train_seconds"] + seconds, "steps_timed": timing["steps_timed"] + max(after - before, 0),
                  "devices": sorted(set(timing["devices"]) | {dev})}
        _write_atomic(_timing_path(out), json.dumps(timing, indent=2) + "\n")
    return {"state": state, **timing}


def evaluate_run(best: Path, sets: list[ValSet], o: Options, device) -> tuple[dict, float]:
    """Metrics of the best checkpoint on every reported set (cached in the run folder); (metrics, seconds)."""
    from anodfdnet.checkpoint import load_checkpoint
    from anodfdnet.evaluate import evaluate

    cache_path = best.parent / "benchmark_eval.json"
    meta = _meta(best)
    stamp = f"{meta.get('saved_at')}|{meta.get('steps')}"
    cache = _read_json(cache_path, {})
    if cache.get("checkpoint") != stamp:
        cache = {"checkpoint": stamp, "results": {}}
    size = None if o.crop else o.size
    model, seconds = None, 0.0
    results = {}
    for s in sets:
        key = f"{s.spec}|size={size}|limit={o.eval_limit}|threshold=0.5"
        if key not in cache["results"]:
            if model is None:
                model, _ = load_checkpoint(best, device)
            t0 = time.perf_counter()
            cache["results"][key] = json_safe(evaluate(model, _parse(s.spec), size, device, limit=o.eval_limit, progress=o.progress,
                                                    desc=f"eval {s.label}"))
            seconds += time.perf_counter() - t0
            _write_atomic(cache_path, json.dumps(cache, indent=2) + "\n")
        results[s.key] = cache["results"][key]
    del model
    return results, seconds


_SOURCES: dict = {}


def _parse(spec: str):
    from anodfdnet.data import parse_spec

    if spec not in _SOURCES:
        _SOURCES[spec] = parse_spec(spec)
    return _SOURCES[spec]


def machine() -> dict:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"platform": platform.platform(), "cpu": cpu, "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = round(os.getloadavg()[0], 2)
    return info


# -------------------------------------------------------------------------------------------------
# The command
# -------------------------------------------------------------------------------------------------
def run(o: Options) -> dict:
    """Train, evaluate, write the Markdown and the JSON; returns the report dict."""
    import torch

    from anodfdnet.device import describe_device, pick_device

    t_start = time.perf_counter()
    device = pick_device(o.device)
    train_specs, sets, notes = data_plan(o)
    if o.notes and not Path(o.notes).is_file():
        raise UserError(f"--notes '{o.notes}' is not a file.")
    table1, table3 = methods(o)
    plan: list[tuple[Method, int]] = []
    for m, seeds in [(m, o.seeds) for m in table1] + [(m, o.ablation_seeds) for m in table3]:
        for seed in seeds:
            if (m, seed) not in plan:
                plan.append((m, seed))
    # Table 1 first, seed-major (every method's first seed before any second seed), then the depths only
    # the ablation needs: a report written part-way (it is rewritten after each run) then holds the
    # headline comparison over as many seeds as possible.
    seed_order = list(dict.fromkeys(o.seeds + o.ablation_seeds))
    plan.sort(key=lambda ms: (ms[0] not in table1 or ms[1] not in o.seeds, seed_order.index(ms[1])))
    for m, seed in plan:  # fail before any training if a run folder holds another schedule
        run_state(train_config(o, m, seed, train_specs, sets))
    set_pairs = {}
    for s in sets:
        n = len(_parse(s.spec))
        set_pairs[s.key] = min(n, o.eval_limit) if o.eval_limit else n
    report = {
        "options": {**asdict(o), "shared": _display_path(o.shared), "steps_per_epoch": o.steps_per_epoch, "total_steps": o.total_steps},
        "header": {"command": command_line(o), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
                   "device": describe_device(device) if device.type == "cpu" else f"{device} ({describe_device(device)})"},
        "train_specs": train_specs, "sets": [asdict(s) for s in sets], "set_pairs": set_pairs, "notes": notes,
        "table1": [asdict(m) for m in table1], "table3": [asdict(m) for m in table3],
        "cost": {m.key: model_cost(m) for m in table1 + table3},
        "discussion": Path(o.notes).read_text() if o.notes else None,
        "runs": [], "summary": {}, "targets": [], "status": f"0 of {len(plan)} runs done",
    }
    train_seconds, steps_trained = 0.0, 0
    for i, (m, seed) in enumerate(plan, 1):
        cfg = train_config(o, m, seed, train_specs, sets)
        print(f"[{i}/{len(plan)}] {m.label}, seed {seed}: {cfg.out}", flush=True)
        before = _read_json(_timing_path(Path(cfg.out)), {"train_seconds": 0.0, "steps_timed": 0})
        timing = train_or_reuse(cfg)
        train_seconds += timing["train_seconds"] - before["train_seconds"]
        steps_trained += timing["steps_timed"] - before["steps_timed"]
        best = Path(cfg.out) / "best.safetensors"
        metrics, eval_seconds = evaluate_run(best, sets, o, device)
        meta = _meta(best)
        report["runs"].append({
            "method": m.key, "label": m.label, "arch": m.arch, "preset": m.preset, "depth": m.depth, "seed": seed,
            "run_dir": cfg.out, "reused": timing["state"] == "finished", "best_epoch": meta.get("epochs"), "best_step": meta.get("steps"),
            "selection_metrics": json_safe(meta.get("val_metrics", {})), "metrics": metrics, **report["cost"][m.key],
            "train_seconds_total": timing["train_seconds"], "steps_timed": timing["steps_timed"],
            "seconds_per_step": timing["train_seconds"] / timing["steps_timed"] if timing["steps_timed"] else None,
            "train_devices": timing.get("devices", []), "eval_seconds_this_invocation": eval_seconds,
        })
        f1s = "  ".join(f"{s.label} F1 {pct(metrics[s.key]['f1'])}" for s in sets)
        print(f"    {'reused' if timing['state'] == 'finished' else 'trained'}; {f1s}", flush=True)
        report["status"] = "complete" if i == len(plan) else f"{i} of {len(plan)} runs done"
        _finish(report, o, table1, table3, sets, t_start, train_seconds, steps_trained)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return report


def _finish(report, o, table1, table3, sets, t_start, train_seconds, steps_trained) -> None:
    """Summaries, targets, header timing; writes the JSON and the Markdown (after every run, so a partial report exists)."""
    for key, meths, seeds in (("table1", table1, o.seeds), ("table3", table3, o.ablation_seeds)):
        report["summary"][key] = {s.key: {m.key: aggregate(report["runs"], m.key, s.key, seeds) for m in meths} for s in sets}
    report["targets"] = targets(report["summary"], table1, table3, sets)
    report["header"].update(wall_seconds=time.perf_counter() - t_start, train_seconds=train_seconds, steps_trained=steps_trained,
                            seconds_per_step=train_seconds / steps_trained if steps_trained else None)
    _write_atomic(Path(o.json), json.dumps(json_safe(report), indent=2, ensure_ascii=False) + "\n")
    _write_atomic(Path(o.out), render(report))


def main(args: argparse.Namespace) -> int:
    o = resolve_options(args)
    report = run(o)
    print(f"wrote {o.out} and {o.json}")
    for t in report["targets"]:
        print(f"  {t['status']:>6}: {t['target']} — {t['measured']}")
    return 0
