"""``python -m benchmarks align``: what aligning the history to the current buys, what it costs, and
whether it ever makes a registered pair worse. Writes ``benchmarks/ALIGN.md`` (and ``align.json``).

1. **time**: ``anodfdnet.align.align_pair`` on a 1024x1024 pair (the first validation pair, enlarged, its
   history seen through a controlled viewpoint change), for ``auto``, ``ecc`` and each feature detector,
   and on the registered version of the same pair; the target is under 60 ms for ``auto``;
2. **geometry**, per feature detector (ORB, SIFT; AKAZE where the installed OpenCV has it): on the
   controlled viewpoint changes of each validation set (``warp:1``: up to 10 % shift, 10 degrees, 15 %
   scale, mild perspective, whose true homography is known) the share of pairs aligned correctly (mean
   error over a 7x7 grid under 1 % of the view's long side), aligned wrongly, and left alone; and on the
   registered versions (``warp:0``) the share left alone, which must be all;
3. **accuracy**: each checkpoint (depth 0 and depth 2 by default) on synth easy and hard, on the
   controlled viewpoint changes of each validation set and on the registered validation sets (DeepPCB val,
   tunnel val): F1 / IoU / AUC at 0.5 with ``--align off`` and ``auto``. With ``auto`` the pixels the
   aligned history does not cover are left out of the metrics (as ``evaluate`` does); ``off`` is given both
   over every pixel and over the same covered pixels, so the gain is not an artefact of dropping pixels;
   ``ecc`` (auto refined by ECC) beside them;
4. **a real unregistered pair** from outside ``../shared`` (scikit-image's stereo motorcycle, no anomaly): the
   share of pixels flagged (all false alarms) with off, auto and ecc.

``--quick`` is a smoke run (a few pairs, synth and the first real set's first pairs; not for reporting).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO.parent / "shared" / "data"
TIMING_SIDE = 1024
TARGET_MS = 60.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = "Alignment's time, geometric accuracy and F1 with --align off against auto; write benchmarks/ALIGN.md."
    p.add_argument("--checkpoint", action="append", default=None, help="checkpoints to evaluate (repeatable; default: effnet-d0 and "
                   "effnet-d2, else lite-d0 and lite-d2, whichever are shipped)")
    p.add_argument("--limit", type=int, default=200, help="pairs of each set for accuracy (default 200)")
    p.add_argument("--geometry-limit", type=int, default=100, help="pairs of each set for the geometry table (default 100)")
    p.add_argument("--repeats", type=int, default=30, help="timed calls per variant at 1024x1024 (default 30)")
    p.add_argument("--shared", default=str(DEFAULT_SHARED), help="folder with deeppcb/ and tunnel_synthetic/ (default ../shared/data)")
    p.add_argument("--skip-accuracy", action="store_true", help="time and geometry only")
    p.add_argument("--quick", action="store_true", help="smoke run: few pairs (not for reporting)")
    p.add_argument("--out", default=None, help="report (default benchmarks/ALIGN.md; quick: runs/bench-align-quick/ALIGN.md)")


def _log(msg: str) -> None:
    print(f"[align] {msg}", file=sys.stderr, flush=True)


def base_sets(shared: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """[(label, SPEC)] of the validation sets that exist here, and notes on the missing ones."""
    sets, notes = [], []
    for label, path, scheme in (("tunnel val", shared / "tunnel_synthetic", "ba"),
                                ("DeepPCB val", shared / "deeppcb" / "trainval.txt", "deeppcb")):
        if path.exists():
            sets.append((label, f"{scheme}:{path}@val"))
        else:
            notes.append(f"{label}: skipped, {path} is absent (pass --shared).")
    sets += [("synth easy val", "synth:3000@val"), ("synth hard val", "synth:1000:1:hard@val")]
    return sets, notes


def warped(level: float, spec: str):
    from anodfdnet.data import parse_spec
    from anodfdnet.data.warped import WarpedSource

    return WarpedSource(level, parse_spec(spec), f"warp:{level:g}:{spec}")


def _short(spec: str) -> str:
    """A SPEC without the folder: what the report names."""
    scheme, _, rest = spec.partition(":")
    return f"{scheme}:{Path(rest).name}" if "/" in rest else spec


# ---------------------------------------------------------------------------------------------------
# 1. time


def timing_pair(spec: str, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The first pair of ``spec`` at 1024x1024, the history seen through a level-``level`` viewpoint change."""
    from anodfdnet.data import parse_spec
    from anodfdnet.data.warped import _rng, view_homography

    pair = parse_spec(spec)[0]
    cur = cv2.resize(pair.current, (TIMING_SIDE, TIMING_SIDE), interpolation=cv2.INTER_LINEAR)
    hist = cv2.resize(pair.history, (TIMING_SIDE, TIMING_SIDE), interpolation=cv2.INTER_LINEAR)
    if level:
        H = view_homography(TIMING_SIDE, TIMING_SIDE, level, _rng("timing"))
        hist = cv2.warpPerspective(hist, np.linalg.inv(H), (TIMING_SIDE, TIMING_SIDE), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REFLECT101)
    return hist, cur


def _ncc_at(side: int, history: np.ndarray, current: np.ndarray):
    """align_pair(history, current, "auto") with its photometric check on images of ``side`` px (anodfdnet.align.NCC_SIDE)."""
    from anodfdnet import align

    kept = align.NCC_SIDE
    align.NCC_SIDE = side
    try:
        return align.align_pair(history, current, "auto")
    finally:
        align.NCC_SIDE = kept


def features_available() -> list[str]:
    return ["orb", "sift"] + (["akaze"] if hasattr(cv2, "AKAZE_create") else [])


def run_timing(spec: str, repeats: int) -> dict:
    from anodfdnet.align import align_pair

    from .timing import interleaved, median_spread

    moved, registered = timing_pair(spec, 1.0), timing_pair(spec, 0.0)
    fns = {"auto": lambda: align_pair(*moved, "auto"), "ecc": lambda: align_pair(*moved, "ecc"),
           "auto, registered pair": lambda: align_pair(*registered, "auto")}
    for f in features_available():
        if f != "orb":
            fns[f"auto with {f.upper()}"] = lambda f=f: align_pair(*moved, "auto", features=f)
    times = interleaved(fns, repeats, 2, lambda: None)
    verdicts = {name: fn().verdict() for name, fn in fns.items()}
    return {name: {"ms": median_spread(t), "verdict": verdicts[name]} for name, t in times.items()}


def run_pair_cpu(n: int, rounds: int) -> dict:
    """CPU ms a pair of ``align_pair(.., "auto")`` with OpenCV on 1 thread, as the inspect engines' CPU tasks run it,
    over the inspect benchmark's first ``n`` generated 512x512 pairs: the shipped photometric check (NCC_SIDE)
    against one at the work side, in ``rounds`` rounds whose order alternates. {variant: [ms of each round]}."""
    from anodfdnet.align import NCC_SIDE, WORK_SIDE, align_pair
    from anodfdnet.data.images import load_rgb

    from .inspect_bench import make_pairs

    folder = make_pairs(n, 512)
    pairs = [(load_rgb(folder / f"p{i:05d}" / "hist.jpg"), load_rgb(folder / f"p{i:05d}" / "cur.jpg")) for i in range(n)]
    variants = {f"auto (photometric check at NCC_SIDE = {NCC_SIDE} px)": lambda h, c: align_pair(h, c, "auto"),
                f"auto, photometric check at the work side ({WORK_SIDE} px)": lambda h, c: _ncc_at(WORK_SIDE, h, c)}
    ms: dict[str, list[float]] = {name: [] for name in variants}
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for h, c in pairs[:2]:  # first calls (caches, OpenCV's own set-up) are not timed
            for fn in variants.values():
                fn(h, c)
        for r in range(rounds):
            for name in list(variants)[::1 if r % 2 == 0 else -1]:
                t = time.process_time()
                for h, c in pairs:
                    variants[name](h, c)
                ms[name].append(1000 * (time.process_time() - t) / len(pairs))
    finally:
        cv2.setNumThreads(threads)
    return ms


# ---------------------------------------------------------------------------------------------------
# 2. geometry


def grid_error(M: np.ndarray, H: np.ndarray, shape: tuple[int, int]) -> float:
    """Mean distance over a 7x7 grid of the current view between the estimated map M (current <- history
    view) composed with the true H (current view -> history view), and the identity."""
    h, w = shape
    pts = np.float64([[x, y] for x in np.linspace(0, w, 7) for y in np.linspace(0, h, 7)]).reshape(-1, 1, 2)
    back = cv2.perspectiveTransform(cv2.perspectiveTransform(pts, H), M)
    return float(np.linalg.norm(back - pts, axis=2).mean())


def run_geometry(sets: list[tuple[str, str]], limit: int) -> list[dict]:
    from anodfdnet.align import align_pair

    rows = []
    for label, spec in sets:
        if spec.startswith("synth:"):
            continue  # generated pairs carry their own viewpoint change: the warp's homography is not the whole truth
        moved, registered = warped(1.0, spec), warped(0.0, spec)
        n = min(limit, len(moved))
        for feat in features_available():
            correct = wrong = left = reg_left = 0
            ms = []
            for i in range(n):
                pair = moved[i]
                a = align_pair(pair.history, pair.current, "auto", features=feat)
                ms.append(a.seconds * 1000)
                if not a.aligned:
                    left += 1
                elif grid_error(a.matrix, moved.homography(i), pair.current.shape[:2]) < 0.01 * max(pair.current.shape[:2]):
                    correct += 1
                else:
                    wrong += 1
                reg = registered[i]
                reg_left += not align_pair(reg.history, reg.current, "auto", features=feat).aligned
            rows.append({"set": label, "features": feat, "pairs": n, "correct": correct, "wrong": wrong, "left_alone": left,
                         "registered_left_alone": reg_left, "median_ms": float(np.median(ms)) if ms else None})
            _log(f"geometry {label} {feat}: {correct} correct, {wrong} wrong, {left} left alone of {n}; "
                 f"registered left alone {reg_left}/{n}")
    return rows


# ---------------------------------------------------------------------------------------------------
# 3. accuracy


def default_checkpoints() -> list[str]:
    from anodfdnet.checkpoint import resolve
    from anodfdnet.errors import UserError

    out = []
    for depth in (0, 2):
        for name in (f"effnet-d{depth}", f"lite-d{depth}"):
            try:
                resolve(name)
            except UserError:
                continue
            out.append(name)
            break
    return out


def evaluate_both(predictor, source, limit: int) -> dict:
    """Metrics at 0.5 of ``off`` (every pixel and the covered pixels only), ``auto`` and ``ecc`` (covered pixels)."""
    from anodfdnet.align import resize_valid
    from anodfdnet.inference.pipeline import predict_aligned
    from anodfdnet.metrics import PixelMetrics

    off_all, off_cov, auto, ecc = PixelMetrics(), PixelMetrics(), PixelMetrics(), PixelMetrics()
    n = min(limit, len(source))
    aligned = 0
    uncovered = 0.0
    for i in range(n):
        pair = source[i]
        p_off, _, _ = predict_aligned(predictor.runtime, pair.history, pair.current, predictor.size, predictor.device,
                                      out_shape=pair.mask.shape, align="off")
        p_auto, _, a = predict_aligned(predictor.runtime, pair.history, pair.current, predictor.size, predictor.device,
                                       out_shape=pair.mask.shape, align="auto")
        valid = None if a.valid is None else resize_valid(a.valid, pair.mask.shape)
        p_ecc, _, e = predict_aligned(predictor.runtime, pair.history, pair.current, predictor.size, predictor.device,
                                      out_shape=pair.mask.shape, align="ecc")
        ecc.update(p_ecc, pair.mask, None if e.valid is None else resize_valid(e.valid, pair.mask.shape))
        off_all.update(p_off, pair.mask)
        off_cov.update(p_off, pair.mask, valid)
        auto.update(p_auto, pair.mask, valid)
        aligned += a.aligned
        uncovered += a.uncovered_pct
    pick = ("f1", "iou", "auc")
    return {"pairs": n, "aligned": aligned, "uncovered_pct": uncovered / max(n, 1),
            "off": {k: off_all.compute()[k] for k in pick}, "off_covered": {k: off_cov.compute()[k] for k in pick},
            "auto": {k: auto.compute()[k] for k in pick}, "ecc": {k: ecc.compute()[k] for k in pick}}


def run_accuracy(checkpoints: list[str], sets: list[tuple[str, str]], limit: int) -> list[dict]:
    from anodfdnet.predict import Predictor

    evaluated = [(f"{label}, controlled viewpoint change", "warp", spec) for label, spec in sets] + \
                [(label, "plain", spec) for label, spec in sets]
    rows = []
    for ck in checkpoints:
        predictor = Predictor(ck, device="cpu", path="auto")
        for label, kind, spec in evaluated:
            source = warped(1.0, spec) if kind == "warp" else _parse(spec)
            t0 = time.perf_counter()
            m = evaluate_both(predictor, source, limit)
            rows.append({"checkpoint": ck, "set": label, "spec": ("warp:1:" if kind == "warp" else "") + _short(spec), **m})
            _log(f"{ck} on {label}: F1 off {100 * m['off']['f1']:.2f} / auto {100 * m['auto']['f1']:.2f} "
                 f"({m['aligned']}/{m['pairs']} aligned, {time.perf_counter() - t0:.0f} s)")
    return rows


def _parse(spec: str):
    from anodfdnet.data import parse_spec

    return parse_spec(spec)


def run_real_pairs(checkpoints: list[str]) -> list[dict]:
    """A real unregistered pair without anomalies, from outside ../shared: scikit-image's stereo motorcycle
    (left view as history, right as current; a 3D scene, so no homography fits it exactly). The share of
    covered pixels flagged at 0.5 is all false alarm."""
    import skimage.data
    from PIL import Image

    from anodfdnet.predict import Predictor

    folder = Path(skimage.data.__file__).parent
    left = np.array(Image.open(folder / "motorcycle_left.png").convert("RGB"))
    right = np.array(Image.open(folder / "motorcycle_right.png").convert("RGB"))
    rows = []
    for ck in checkpoints:
        predictor = Predictor(ck, device="cpu", path="auto")
        for mode in ("off", "auto", "ecc"):
            r = predictor.run(left, right, align=mode)
            a = r.alignment
            flagged = (r.prob >= 0.5) if a.valid is None else (r.prob >= 0.5)[a.valid]
            rows.append({"checkpoint": ck, "align": mode, "verdict": a.verdict(), "flagged_pct": 100 * float(flagged.mean()),
                         "align_ms": 1000 * a.seconds})
            _log(f"stereo motorcycle {ck} {mode}: {rows[-1]['flagged_pct']:.2f} % flagged ({a.verdict()})")
    return rows


# ---------------------------------------------------------------------------------------------------
# Report


def _pct(v) -> str:
    return "n/a" if v is None or v != v else f"{100 * v:.2f}"


def format_report(rep: dict, command: str) -> str:
    lines = ["# Alignment: time, geometry, and F1 with `--align off` against `auto`", "",
             f"Command: `{command}`" + (" (quick smoke run: not for reporting)" if rep["quick"] else ""), "",
             *rep["header"], f"- load average at the start: {rep['load']}", f"- duration of the run: {rep['seconds']:.0f} s", ""]
    lines += [f"## Time at {TIMING_SIDE}x{TIMING_SIDE} (`anodfdnet.align.align_pair`, target under {TARGET_MS:.0f} ms for auto)", "",
              f"The first pair of {rep['timing_set']}, enlarged to {TIMING_SIDE}x{TIMING_SIDE}, its history seen through a "
              "level-1 viewpoint change (and unchanged for the registered row); interleaved calls.", "",
              "| variant | median ms | p10 | p90 | verdict |", "|---|---:|---:|---:|---|"]
    for name, r in rep["timing"].items():
        med, p10, p90 = r["ms"]
        lines.append(f"| {name} | {med:.1f} | {p10:.1f} | {p90:.1f} | {r['verdict']} |")
    if rep.get("pair_cpu"):
        rounds = len(next(iter(rep["pair_cpu"].values())))
        lines += ["", "## CPU a 512x512 pair, OpenCV on 1 thread (as the inspect engines' CPU tasks run it)", "",
                  f"The inspect benchmark's generated pairs (`python -m benchmarks inspect`), {rounds} rounds over them in "
                  "alternating order; the process's CPU time a pair, the median round and the range of rounds.", "",
                  "| variant | CPU ms a pair | fastest round | slowest round |", "|---|---:|---:|---:|"]
        for name, ms in rep["pair_cpu"].items():
            lines.append(f"| {name} | {float(np.median(ms)):.1f} | {min(ms):.1f} | {max(ms):.1f} |")
    lines += ["", "## Geometry on controlled viewpoint changes (`warp:1`) and registered pairs (`warp:0`)", "",
              "Correct: mean error over a 7x7 grid under 1 % of the view's long side; wrong: aligned but not correct; "
              "left alone: the judge refused the estimate (the pair is used unaligned). Generated (synth) pairs are not "
              "listed: they carry a viewpoint change of their own, so the warp's homography is not the whole truth.", "",
              "| set | features | pairs | correct | wrong | left alone | registered left alone | median ms |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rep["geometry"]:
        lines.append(f"| {r['set']} | {r['features'].upper()} | {r['pairs']} | {r['correct']} | {r['wrong']} | {r['left_alone']} | "
                     f"{r['registered_left_alone']} | {r['median_ms']:.1f} |")
    if rep["accuracy"]:
        lines += ["", "## F1 / IoU / AUC (%) at threshold 0.5, `--align off` against `auto`", "",
                  "`off`: every pixel; `off, covered`: the same pixels `auto` keeps (those the aligned history covers); "
                  "`auto`: uncovered pixels left out, as `evaluate` does. ΔF1 = auto − off (every pixel).", "",
                  "| checkpoint | set | pairs | aligned | uncovered % | F1 off | F1 off, covered | F1 auto | ΔF1 | F1 ecc | IoU off | "
                  "IoU auto | AUC off | AUC auto |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rep["accuracy"]:
            d = 100 * (r["auto"]["f1"] - r["off"]["f1"])
            lines.append(f"| {r['checkpoint']} | {r['set']} | {r['pairs']} | {r['aligned']} | {r['uncovered_pct']:.2f} | "
                         f"{_pct(r['off']['f1'])} | {_pct(r['off_covered']['f1'])} | {_pct(r['auto']['f1'])} | {d:+.2f} | "
                         f"{_pct(r['ecc']['f1'])} | "
                         f"{_pct(r['off']['iou'])} | {_pct(r['auto']['iou'])} | {_pct(r['off']['auc'])} | {_pct(r['auto']['auc'])} |")
    if rep.get("real"):
        lines += ["", "## A real unregistered pair without anomalies (scikit-image's stereo motorcycle, 741x500)", "",
                  "History = left view, current = right view of a 3D scene (parallax: no homography fits it exactly). "
                  "Every pixel flagged at 0.5 is a false alarm; covered pixels only.", "",
                  "| checkpoint | align | flagged % | align ms | verdict |", "|---|---|---:|---:|---|"]
        for r in rep["real"]:
            lines.append(f"| {r['checkpoint']} | {r['align']} | {r['flagged_pct']:.2f} | {r['align_ms']:.0f} | {r['verdict']} |")
    if rep["notes"]:
        lines += ["", "Notes:", *[f"- {n}" for n in rep["notes"]]]
    return "\n".join(lines) + "\n"


def main(args) -> int:
    from .timing import load_average, machine_header

    t0 = time.time()
    shared = Path(args.shared)
    sets, notes = base_sets(shared)
    limit, glimit, repeats = (3, 3, 3) if args.quick else (args.limit, args.geometry_limit, args.repeats)
    if args.quick:
        sets = sets[:1] + [s for s in sets if s[1].startswith("synth:3000")]
    if not args.quick and limit < 50:
        notes.append(f"only {limit} pairs per set for accuracy: a small run, the figures are rough.")
    checkpoints = args.checkpoint or default_checkpoints()
    if not checkpoints and not args.skip_accuracy:
        notes.append("accuracy: skipped, no effnet-d0/d2 or lite-d0/d2 checkpoint is shipped here (pass --checkpoint).")
    rep = {"quick": args.quick, "header": machine_header([torch.device("cpu")]), "load": load_average(), "notes": notes,
           "timing_set": sets[0][0]}
    _log(f"timing at {TIMING_SIDE}x{TIMING_SIDE}")
    rep["timing"] = run_timing(sets[0][1], repeats)
    _log("CPU a 512x512 pair")
    rep["pair_cpu"] = run_pair_cpu(*((4, 2) if args.quick else (40, 6)))
    _log("geometry")
    rep["geometry"] = run_geometry(sets, glimit)
    rep["accuracy"] = [] if args.skip_accuracy else run_accuracy(checkpoints, sets, limit)
    rep["real"] = [] if args.skip_accuracy else run_real_pairs(checkpoints)
    rep["seconds"] = time.time() - t0
    command = "python -m benchmarks align" + (" --quick" if args.quick else "") + \
        (f" --limit {args.limit}" if args.limit != 200 and not args.quick else "") + \
        (f" --geometry-limit {args.geometry_limit}" if args.geometry_limit != 100 and not args.quick else "") + \
        (f" --repeats {args.repeats}" if args.repeats != 30 and not args.quick else "") + \
        (" --skip-accuracy" if args.skip_accuracy else "") + "".join(f" --checkpoint {c}" for c in args.checkpoint or [])
    text = format_report(rep, command)
    out = Path(args.out or ("runs/bench-align-quick/ALIGN.md" if args.quick else "benchmarks/ALIGN.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_name("align.json").write_text(json.dumps(rep, indent=1, default=float) + "\n")
    print(text)
    print(f"wrote {out}", file=sys.stderr)
    return 0
