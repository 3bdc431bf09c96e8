"""``python -m benchmarks paths``: is each inference path fast, and is it exact enough?

For one checkpoint (default the shipped effnet-d2) and every path of ``anodfdnet.inference.runtime`` that can run on
the device, in one process:

1. latency: the model call alone at batch 1 on a 256x256 pair, and ``Predictor.run`` end to end (decode
   of in-memory arrays, resize, the model, upsampling, sigmoid), each path timed in a block of its own;
   also the model call on a 640x640 pair (DeepPCB's native size, what the app runs a DeepPCB image at);
2. accuracy: pixel metrics of every path on the validation sets (DeepPCB val at native 640, tunnel val
   at native 512 when ``../shared/data`` is there; synth easy and hard, generated) at threshold 0.5;
3. the verdict: a path is *accepted* when its F1 is within 0.5 points of fp32 eager's on every set.
   ``auto`` (what ``predict`` and the app use) must pick an accepted path; the report says which it
   picks here and whether it is.

Writes ``benchmarks/PATHS.md`` (and ``paths.json`` beside it). ``--quick`` is a smoke run (synth only,
few pairs, 64x64 inputs) whose report says it is not for reporting.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from anodfdnet.errors import UserError

from .timing import interleaved, machine_header, median_spread

ACCEPT_F1_POINTS = 0.5  # issue 6: a path is kept only if its F1 is within 0.5 points of fp32 eager
QUICK_BANNER = "**quick run — not for reporting**"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class Settings:
    quick: bool
    size: int  # latency input side
    big: int  # second latency input side (DeepPCB's native)
    repeats: int
    big_repeats: int
    warmup: int
    synth_pairs: int
    real_limit: int | None


FULL = Settings(False, 256, 640, 25, 6, 3, 100, None)
QUICK = Settings(True, 64, 128, 3, 2, 1, 4, 4)


@dataclass
class PathRow:
    path: str
    detail: str = ""
    error: str | None = None  # why this path could not run here
    setup_s: float | None = None  # building it: ONNX session / compile of the first shape
    model_ms: tuple | None = None  # (median, p10, p90) at size
    run_ms: tuple | None = None  # Predictor.run (median, p10, p90) at size
    big_ms: tuple | None = None  # model call at big
    metrics: dict = field(default_factory=dict)  # set key -> metrics dict
    delta_f1: dict = field(default_factory=dict)  # set key -> F1 points minus eager's
    accepted: bool | None = None


def add_arguments(p: argparse.ArgumentParser) -> None:
    from anodfdnet.inference.runtime import PATHS

    p.description = ("Time every inference path (anodfdnet.inference.runtime) and evaluate each on the validation sets against fp32 "
                     "eager; a path is accepted when its F1 stays within 0.5 points of eager's on every set.")
    p.add_argument("--checkpoint", default="effnet-d2", help="path or shipped name (default effnet-d2, the app's default)")
    p.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS), help="paths to compare (default all; eager is always included)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--quick", action="store_true", help="smoke run: synth only, few pairs, 64x64 (not for reporting)")
    p.add_argument("--limit", type=int, default=None, help="the first N pairs of each real validation set (default all)")
    p.add_argument("--shared", default=str(DEFAULT_SHARED), help="folder with deeppcb/ and tunnel_synthetic/ (default ../shared/data)")
    p.add_argument("--out", default=None, help="report (default benchmarks/PATHS.md; quick: runs/bench-paths-quick/PATHS.md)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bars (default: when stderr is a terminal)")


def validation_sets(s: Settings, shared: Path, limit: int | None) -> tuple[list[tuple[str, str, str, int | None, int | None]], list[str]]:
    """[(key, label, spec, size, limit)] and notes on skipped sets. size None = native."""
    sets, notes = [], []
    real = [("deeppcb", "DeepPCB val (native 640)", shared / "deeppcb" / "trainval.txt", "deeppcb"),
            ("tunnel", "tunnel val (native 512)", shared / "tunnel_synthetic", "ba")]
    for key, label, path, scheme in real:
        if s.quick:
            notes.append(f"{label}: skipped (quick run).")
        elif not path.exists():
            notes.append(f"{label}: skipped, {path} is absent (pass --shared).")
        else:
            sets.append((key, label, f"{scheme}:{path}@val", None, limit or s.real_limit))
    side = s.size if s.quick else None
    sets.append(("synth", f"synth easy ({s.synth_pairs} pairs)", "synth:3000@val", side, s.synth_pairs))
    sets.append(("synth-hard", f"synth hard ({s.synth_pairs} pairs)", "synth:1000:1:hard@val", side, s.synth_pairs))
    return sets, notes


def _build(path: str, ckpt: Path, device: torch.device):
    """(Predictor on this path, seconds to set it up). ONNX: exported to the cache first if missing."""
    from anodfdnet.inference.onnx_export import cache_path, export_onnx, open_onnx
    from anodfdnet.predict import Predictor

    if path == "onnx" and open_onnx(ckpt) is None:
        _log(f"exporting {ckpt.name} to ONNX (once; cached at {cache_path(ckpt)})")
        export_onnx(ckpt, cache_path(ckpt))
    t0 = time.perf_counter()
    predictor = Predictor(str(ckpt), device=str(device), size="checkpoint", path=path, align="off")  # paths, not alignment (ALIGN.md)
    return predictor, time.perf_counter() - t0


def _log(msg: str) -> None:
    print(f"[paths] {msg}", file=sys.stderr, flush=True)


def run(args) -> dict:
    from anodfdnet.checkpoint import resolve
    from anodfdnet.data import parse_spec
    from anodfdnet.device import pick_device
    from anodfdnet.evaluate import evaluate

    s = QUICK if args.quick else FULL
    device = pick_device(args.device)
    ckpt = resolve(args.checkpoint)
    paths = ["eager"] + [p for p in args.paths if p != "eager"]
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    t_start = time.perf_counter()
    rows: dict[str, PathRow] = {}
    predictors = {}
    for p in paths:
        _log(f"setting up {p}")
        try:
            predictors[p], setup = _build(p, ckpt, device)
        except (UserError, ImportError, RuntimeError) as e:
            rows[p] = PathRow(p, error=str(e).splitlines()[0])
            continue
        rows[p] = PathRow(p, predictors[p].runtime.detail, setup_s=setup)
    if "eager" not in predictors:
        raise UserError(f"the eager path does not run: {rows['eager'].error}")

    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    g = torch.Generator().manual_seed(0)
    x = [torch.rand(1, 3, s.size, s.size, generator=g) * 2 - 1 for _ in range(2)]
    xb = [torch.rand(1, 3, s.big, s.big, generator=g) * 2 - 1 for _ in range(2)]
    rng = np.random.default_rng(0)
    hist = rng.integers(0, 256, (s.size, s.size, 3), dtype=np.uint8)
    cur = hist.copy()
    cur[s.size // 4: s.size // 2, s.size // 4: s.size // 2] = 255
    # First calls of each shape outside the timed rounds (compile's compilations land here, in setup_s).
    for p, pred in predictors.items():
        t0 = time.perf_counter()
        pred.predict_logits(*x), pred.predict_logits(*xb)
        rows[p].setup_s = (rows[p].setup_s or 0) + time.perf_counter() - t0
    # Each path is timed in a block of its own, not interleaved with the others: ONNX Runtime's threads and
    # PyTorch's both spin-wait after a call, so alternating the two would slow each by the other's spinning.
    for p, pred in predictors.items():
        _log(f"{p}: batch-1 latency, {s.repeats} runs at {s.size}x{s.size} (model, then Predictor.run), {s.big_repeats} at {s.big}x{s.big}")
        rows[p].model_ms = median_spread(interleaved({p: lambda pr=pred: pr.predict_logits(*x)}, s.repeats, s.warmup, sync)[p])
        rows[p].run_ms = median_spread(interleaved({p: lambda pr=pred: pr.run(hist, cur)}, s.repeats, s.warmup, sync)[p])
        rows[p].big_ms = median_spread(interleaved({p: lambda pr=pred: pr.predict_logits(*xb)}, s.big_repeats, 1, sync)[p])

    sets, notes = validation_sets(s, Path(args.shared).expanduser(), args.limit)
    for key, label, spec, size, limit in sets:
        source = parse_spec(spec)
        for p, pred in predictors.items():
            _log(f"{p} on {label}")
            eval_size = pred.size if size is None else size
            rows[p].metrics[key] = evaluate(pred.model, source, eval_size, device, limit=limit, progress=progress,
                                            desc=f"{p} {key}", forward=pred.runtime)
    for r in rows.values():
        if r.error:
            continue
        r.delta_f1 = {k: 100 * (m["f1"] - rows["eager"].metrics[k]["f1"]) for k, m in r.metrics.items()}
        r.accepted = all(abs(d) <= ACCEPT_F1_POINTS for d in r.delta_f1.values())

    from anodfdnet.checkpoint import load_checkpoint
    from anodfdnet.inference.runtime import build_runtime  # what auto picks on this machine for this checkpoint

    auto = build_runtime(load_checkpoint(ckpt, device)[0], ckpt, device, "auto")
    return {
        "quick": s.quick, "settings": asdict(s), "checkpoint": ckpt.name, "device": str(device),
        "header": machine_header([device]), "sets": [{"key": k, "label": lab, "spec": sp, "limit": lim} for k, lab, sp, _, lim in sets],
        "notes": notes, "rows": [asdict(r) for r in rows.values()], "auto": auto.path, "auto_detail": auto.detail,
        "seconds": time.perf_counter() - t_start, "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "python": platform.python_version(),
    }


def _ms(v) -> str:
    return "–" if not v else f"{v[0]:.1f} ({v[1]:.1f}–{v[2]:.1f})"


def format_report(rep: dict, command: str) -> str:
    rows = [PathRow(**r) for r in rep["rows"]]
    eager = next(r for r in rows if r.path == "eager")
    s = rep["settings"]
    out = ["# Inference paths: speed and exactness", ""]
    if rep["quick"]:
        out += [QUICK_BANNER, ""]
    out += [f"Written by `{command}` in one process and one run; nothing here is typed by hand.", "",
            f"- checkpoint: {rep['checkpoint']}", *rep["header"], f"- duration of the run: {rep['seconds']:.0f} s", ""]
    out += ["## Speed", "",
            f"Batch 1, median (p10–p90) of {s['repeats']} runs after {s['warmup']} warm-up run(s) ({s['big_repeats']} at "
            f"{s['big']}x{s['big']}), each path in a block of its own (ONNX Runtime's and PyTorch's threads both spin-wait "
            f"after a call, so interleaving them would slow each by the other). *model* = the path's model call on prepared tensors; *Predictor.run* = the whole call the app makes "
            f"(uint8 arrays in, probability map out, pre/post-processing included). Set-up = building the path plus its first call at each "
            f"size (torch.compile compiles there).", "",
            f"| path | what runs | model ms {s['size']}² | × eager | Predictor.run ms {s['size']}² | model ms {s['big']}² | × eager | set-up s |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.error:
            out.append(f"| {r.path} | could not run: {r.error} | – | – | – | – | – | – |")
            continue
        ratio = r.model_ms[0] / eager.model_ms[0]
        ratio_big = r.big_ms[0] / eager.big_ms[0]
        out.append(f"| {r.path} | {r.detail} | {_ms(r.model_ms)} | {ratio:.2f} | {_ms(r.run_ms)} | {_ms(r.big_ms)} | {ratio_big:.2f} | {r.setup_s:.1f} |")
    out += ["", "## Exactness", "",
            f"Pixel metrics at threshold 0.5 on each set, F1 and AUC in %; Δ = F1 points minus fp32 eager's. A path is **accepted** when "
            f"|Δ| ≤ {ACCEPT_F1_POINTS} on every set.", ""]
    keys = [st["key"] for st in rep["sets"]]
    out.append("| path | " + " | ".join(f"{st['label']}: F1 / Δ / AUC" for st in rep["sets"]) + " | accepted |")
    out.append("|---|" + "---:|" * len(keys) + "---|")
    for r in rows:
        if r.error:
            continue
        cells = [f"{100 * r.metrics[k]['f1']:.2f} / {r.delta_f1[k]:+.2f} / {100 * r.metrics[k]['auc']:.2f}" for k in keys]
        verdict = "reference" if r.path == "eager" else ("**yes**" if r.accepted else "**no**")
        out.append(f"| {r.path} | " + " | ".join(cells) + f" | {verdict} |")
    pairs = ", ".join(f"{st['label']}: {next(r for r in rows if not r.error).metrics[st['key']]['pairs']} pairs" for st in rep["sets"])
    out += ["", f"Sets: {pairs}."]
    for n in rep["notes"]:
        out.append(f"- {n}")
    accepted = [r for r in rows if not r.error and r.accepted]
    fastest = min(accepted, key=lambda r: r.run_ms[0]) if accepted else None
    auto_row = next((r for r in rows if r.path == rep["auto"]), None)
    out += ["", "## Verdict", ""]
    if fastest:
        out.append(f"- fastest accepted path by Predictor.run at {s['size']}x{s['size']}: **{fastest.path}** ({fastest.run_ms[0]:.1f} ms; "
                   f"eager {eager.run_ms[0]:.1f} ms)")
    auto_ok = auto_row is not None and (auto_row.accepted or auto_row.path == "eager")
    out.append(f"- `auto` (the default of `predict` and the app) picks **{rep['auto']}** here ({rep['auto_detail']}): "
               f"{'accepted' if auto_ok else 'NOT accepted or not measured'}")
    rejected = [r for r in rows if not r.error and r.accepted is False]
    for r in rejected:
        worst = max(r.delta_f1.items(), key=lambda kv: abs(kv[1]))
        out.append(f"- rejected: {r.path} (F1 off by {worst[1]:+.2f} points on {worst[0]})")
    return "\n".join(out) + "\n"


def main(args) -> int:
    rep = run(args)
    out = Path(args.out or ("runs/bench-paths-quick/PATHS.md" if args.quick else "benchmarks/PATHS.md"))
    command = "python -m benchmarks paths" + (" --quick" if args.quick else "") + \
        (f" --checkpoint {args.checkpoint}" if args.checkpoint != "effnet-d2" else "") + (f" --device {args.device}" if args.device != "cpu" else "")
    text = format_report(rep, command)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_name("paths.json").write_text(json.dumps(rep, indent=1) + "\n")
    print(text)
    print(f"wrote {out}", file=sys.stderr)
    return 0

