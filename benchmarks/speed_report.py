"""What the speed benchmark reports: the records of a run (its settings, a row per model, a run per
device), issue 6's targets judged from them, and the Markdown of ``benchmarks/SPEED.md``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

QUICK_BANNER = "**quick run — not for reporting**"
REFERENCE = "unet-cat"  # the latency-ratio column divides by this row

# Issue 6's targets.
TARGET_LITE_D2_MS = 60.0  # fp32 eager, batch 1, 256x256, on the 2-core machine
TARGET_RATIO_TO_UNET = 0.5
TARGET_DEFAULT_PATH_MS = 25.0
TARGET_RENDER_MS = 50.0  # 1024x1024
TARGET_SAVE_MS = 200.0
TARGET_FOLDER_VS_MODEL = 2.0  # predict --data within 2x of the model-only rate (CUDA)
# Issue 11's: the app's default model (effnet d2) through Predictor.run on the default path.
TARGET_DEFAULT_VS_LITE = 2.0  # at most 2x lite d2's Predictor.run, same run
TARGET_DEFAULT_VS_UNET = 0.5  # at most 0.5x Unet-cat's Predictor.run, same run


@dataclass(frozen=True)
class Settings:
    quick: bool
    size: int  # model input side
    warmup: int  # untimed rounds before the timed ones
    repeats: int  # timed batch-1 rounds (every model once per round)
    batch: dict  # device type -> batch for the throughput figure
    batch_repeats: int
    matmul_n: dict  # device type -> matrix side
    matmul_repeats: int
    image_side: int  # render and label-save image side
    render_repeats: int
    save_repeats: int
    folder_pairs: int
    memory_repeats: int


FULL = Settings(False, 256, 3, 25, {"cpu": 8, "cuda": 64}, 5, {"cpu": 2048, "cuda": 8192}, 5, 1024, 30, 12, 32, 3)
QUICK = Settings(True, 64, 1, 5, {"cpu": 2, "cuda": 8}, 2, {"cpu": 512, "cuda": 2048}, 3, 1024, 5, 3, 4, 1)


@dataclass
class ModelRow:
    label: str
    precision: str  # "fp32" or "bf16 autocast"
    params: int
    flops: int  # per pair at the benchmark size
    median_ms: float
    p10_ms: float
    p90_ms: float
    batch: int | None = None
    batch_s: float | None = None  # median seconds of one batch
    pairs_per_s: float | None = None
    peak_mb: float | None = None
    frac_b1: float | None = None  # achieved FLOP/s at batch 1 / measured matmul rate
    frac_batch: float | None = None
    ratio: float | None = None  # median latency / the reference's


@dataclass
class DeviceRun:
    device: str  # "cpu" or "cuda"
    matmul: dict = field(default_factory=dict)  # "fp32"/"bf16" -> [before, after] FLOP/s (None: unsupported)
    rows: list[ModelRow] = field(default_factory=list)
    folder: dict | None = None  # predict --data figures
    memory_note: str = ""


@dataclass
class Report:
    settings: Settings
    header: list[str]
    runs: list[DeviceRun]
    render: dict
    save: dict
    paper_baselines: list
    checkpoint: str
    load: tuple[str, str]
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------------
# The report


def _g(flops_per_s: float | None) -> str:
    return "not supported" if flops_per_s is None else f"{flops_per_s / 1e9:.1f} GFLOP/s"


def _num(v: float | None, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def best_of(values: list) -> float | None:
    """The largest of the values that are not None (None when there is none)."""
    vals = [v for v in values if v is not None]
    return max(vals) if vals else None


def _row(rows: list[ModelRow], label: str, precision: str = "fp32") -> ModelRow | None:
    return next((r for r in rows if r.label == label and r.precision == precision), None)


def _status(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def targets(rep: Report) -> list[tuple[str, str, bool | None]]:
    """(target, what was measured, met?) for each of issue 6's targets this command measures."""
    out = []
    cpu = next((r for r in rep.runs if r.device == "cpu"), None)
    cuda = next((r for r in rep.runs if r.device == "cuda"), None)
    size = rep.settings.size
    cores = os.cpu_count()
    if cpu is not None:
        lite, unet = _row(cpu.rows, "lite d2"), _row(cpu.rows, REFERENCE)
        pred = next((r for r in cpu.rows if r.label.startswith("lite d2 via Predictor")), None)
        app = next((r for r in cpu.rows if r.label.startswith("effnet d2 via Predictor")), None)
        unet_pred = next((r for r in cpu.rows if r.label.startswith("unet-cat via Predictor")), None)
        note = "" if cores == 2 else f" (the target is for a 2-core machine; this one has {cores})"
        out.append((f"lite d2, fp32 eager, batch 1, {size}x{size}, CPU: ≤ {TARGET_LITE_D2_MS:.0f} ms{note}",
                    f"{lite.median_ms:.1f} ms", lite.median_ms <= TARGET_LITE_D2_MS))
        out.append((f"lite d2 ≤ {TARGET_RATIO_TO_UNET:g} × Unet-cat's latency, same run, CPU "
                    "(the F1 half of this target is the accuracy benchmark's)",
                    f"{lite.median_ms:.1f} / {unet.median_ms:.1f} ms = {lite.median_ms / unet.median_ms:.2f}×",
                    lite.median_ms <= TARGET_RATIO_TO_UNET * unet.median_ms))
        out.append((f"default inference path (Predictor.run, lite d2, {size}x{size}), CPU: ≤ {TARGET_DEFAULT_PATH_MS:.0f} ms",
                    f"{pred.median_ms:.1f} ms", pred.median_ms <= TARGET_DEFAULT_PATH_MS))
        if app is not None and unet_pred is not None:
            out.append((f"issue 11: the app's default model (effnet d2) via Predictor.run, default path, {size}x{size}, CPU: "
                        f"≤ {TARGET_DEFAULT_VS_LITE:g} × lite d2's, same run",
                        f"{app.median_ms:.1f} / {pred.median_ms:.1f} ms = {app.median_ms / pred.median_ms:.2f}×",
                        app.median_ms <= TARGET_DEFAULT_VS_LITE * pred.median_ms))
            out.append((f"issue 11: the app's default model ≤ {TARGET_DEFAULT_VS_UNET:g} × Unet-cat's latency on the same path "
                        "(Predictor.run), same run", f"{app.median_ms:.1f} / {unet_pred.median_ms:.1f} ms = "
                        f"{app.median_ms / unet_pred.median_ms:.2f}×", app.median_ms <= TARGET_DEFAULT_VS_UNET * unet_pred.median_ms))
    side = rep.settings.image_side
    if "median_ms" in rep.render:
        out.append((f"re-threshold render at {side}x{side}: < {TARGET_RENDER_MS:.0f} ms", f"{rep.render['median_ms']:.1f} ms",
                    rep.render["median_ms"] < TARGET_RENDER_MS))
    else:
        out.append((f"re-threshold render at {side}x{side}: < {TARGET_RENDER_MS:.0f} ms", rep.render["error"], None))
    if "median_ms" in rep.save:
        out.append((f"label save ({side}x{side} pair): < {TARGET_SAVE_MS:.0f} ms", f"{rep.save['median_ms']:.1f} ms",
                    rep.save["median_ms"] < TARGET_SAVE_MS))
    else:
        out.append((f"label save: < {TARGET_SAVE_MS:.0f} ms", rep.save["error"], None))
    if cuda is not None:
        lite = _row(cuda.rows, "lite d2", "bf16 autocast")
        bf16 = best_of(cuda.matmul["bf16"])
        frac = f", {100 * lite.frac_batch:.1f} % of the measured bf16 matmul rate ({_g(bf16)})" if lite.frac_batch else ""
        out.append((f"lite d2 throughput on CUDA, bf16 autocast, batch {lite.batch} (report)",
                    f"{lite.pairs_per_s:.0f} pairs/s{frac}", None))
        if "pairs_per_s" in (cuda.folder or {}):
            model_rate = lite.pairs_per_s
            ratio = model_rate / cuda.folder["pairs_per_s"]
            out.append((f"predict --data over a folder within {TARGET_FOLDER_VS_MODEL:g}× of the model-only rate "
                        f"(lite d2 bf16, batch {lite.batch}), CUDA",
                        f"{cuda.folder['pairs_per_s']:.1f} vs {model_rate:.0f} pairs/s: {ratio:.1f}× slower",
                        ratio <= TARGET_FOLDER_VS_MODEL))
    return out


def format_report(rep: Report, command: str) -> str:
    s = rep.settings
    L: list[str] = []
    if s.quick:
        L += [QUICK_BANNER + f" (`--quick`: {s.size}x{s.size} model inputs, {s.repeats} timed rounds; "
              "every figure below is from this run, at sizes and repeat counts too small to compare with the targets)", ""]
    L += ["# Speed benchmark", "", f"Written by `{command}` in one process and one run; nothing here is typed by hand.", ""]
    L += rep.header
    L += [f"- load average (1/5/15 min) at start: {rep.load[0]}, at end: {rep.load[1]} "
          "(other processes compete for the cores when these exceed ~0)",
          f"- Predictor checkpoint: {rep.checkpoint}",
          f"- duration of the run: {rep.seconds:.0f} s", ""]
    for run in rep.runs:
        dev = run.device.upper() if run.device == "cuda" else "CPU"
        fp32, bf16 = best_of(run.matmul["fp32"]), best_of(run.matmul["bf16"])
        n = s.matmul_n[run.device]
        L += [f"## {dev}", "", f"### Matrix multiply ({n}x{n}, best of {s.matmul_repeats}, at the start and at the end of the run)", ""]
        L += ["| dtype | start | end |", "|---|---:|---:|"]
        for k in ("fp32", "bf16"):
            L.append(f"| {k} | {_g(run.matmul[k][0])} | {_g(run.matmul[k][1])} |")
        if bf16 is None:
            L.append("\nbf16 matmul does not run here.")
        else:
            L.append(f"\nbf16 {'beats' if bf16 > fp32 else 'does not beat'} fp32 here ({bf16 / fp32:.2f}× the fp32 rate, best figures).")
        L += ["", "The fractions below divide each model's achieved FLOP/s (FLOPs / time) by the best measured matmul rate "
              "of its precision (fp32 rate for fp32; bf16 rate for bf16 autocast).", ""]
        batch = s.batch[run.device]
        L += [f"### Models at {s.size}x{s.size} (eval, inference_mode)", "",
              f"Batch-1 latency: median and p10–p90 of {s.repeats} timed runs per model after {s.warmup} warm-up round(s), "
              f"interleaved round-robin across the models; throughput: batch {batch}, median of {s.batch_repeats} "
              "interleaved runs; GFLOPs per pair from `count_flops` (a multiply-add = 2).", ""]
        L += ["| model | precision | params | GFLOPs | latency ms (median) | p10–p90 ms | × Unet-cat | "
              f"pairs/s @ batch {batch} | peak MB (b1) | % matmul rate (b1) | % matmul rate (b{batch}) |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in run.rows:
            L.append(f"| {r.label} | {r.precision} | {r.params / 1e6:.2f}M | {r.flops / 1e9:.2f} | {r.median_ms:.2f} | "
                     f"{r.p10_ms:.2f}–{r.p90_ms:.2f} | {_num(r.ratio, '.2f')} | {_num(r.pairs_per_s, '.1f')} | "
                     f"{_num(r.peak_mb, '.1f')} | {_num(r.frac_b1 and 100 * r.frac_b1, '.1f')} | "
                     f"{_num(r.frac_batch and 100 * r.frac_batch, '.1f')} |")
        L += ["", f"Baselines at lite widths (ndf 16); {run.memory_note}.", ""]
        f = run.folder or {}
        L += ["### `predict --data` over a folder", ""]
        if "pairs_per_s" in f:
            lite = _row(run.rows, "lite d2", "bf16 autocast" if run.device == "cuda" else "fp32")
            L.append(f"{f['pairs']} generated {f['size']}x{f['size']} pairs (`pairs:` layout, PNG) through the CLI's code path "
                     f"(`predict --data pairs:DIR --out-dir OUT --size {f['size']} --device {run.device}`, progress bar on stderr): "
                     f"{f['seconds']:.2f} s, **{f['pairs_per_s']:.1f} pairs/s** end to end (loading the checkpoint, decoding, "
                     f"preprocessing, the model, writing mask and heat-map PNGs); {f['written']} masks written.")
            if lite is not None:
                L.append(f"Model-only rate of lite d2 ({lite.precision}): {1000 / lite.median_ms:.1f} pairs/s at batch 1, "
                         f"{lite.pairs_per_s:.1f} pairs/s at batch {lite.batch}; the folder run is "
                         f"{1000 / lite.median_ms / f['pairs_per_s']:.1f}× / {lite.pairs_per_s / f['pairs_per_s']:.1f}× slower.")
        else:
            L.append(f"not measured: {f.get('error', 'no result')}")
        L.append("")
    L += ["## The app and the label store", ""]
    side = s.image_side
    if "median_ms" in rep.render:
        L.append(f"- re-threshold render (`demo.render.render`) of a {side}x{side} image: median **{rep.render['median_ms']:.1f} ms** "
                 f"(p10–p90 {rep.render['p10_ms']:.1f}–{rep.render['p90_ms']:.1f}) over {s.render_repeats} runs at varying "
                 f"thresholds; {rep.render['regions']} regions at 0.5")
    else:
        L.append(f"- re-threshold render: not measured: {rep.render['error']}")
    if "median_ms" in rep.save:
        L.append(f"- label-store save (`annotate.store.LabelStore.save`, a {side}x{side} pair and mask into a temporary folder, "
                 f"fsync included): median **{rep.save['median_ms']:.1f} ms** (p10–p90 {rep.save['p10_ms']:.1f}–"
                 f"{rep.save['p90_ms']:.1f}) over {s.save_repeats} saves after one warm-up save")
    else:
        L.append(f"- label-store save: not measured: {rep.save['error']}")
    L += ["", f"## Baselines at paper widths (ndf 64; counted, not timed; {s.size}x{s.size})", "",
          "| model | params | GFLOPs |", "|---|---:|---:|"]
    for arch, params, flops in rep.paper_baselines:
        L.append(f"| {arch} | {params / 1e6:.2f}M | {flops / 1e9:.2f} |")
    L += ["", "## Targets (issue 6)", ""]
    if s.quick:
        L += ["Quick run: the model figures are at the quick size, so these statuses say nothing about the targets.", ""]
    L += ["| target | measured | status |", "|---|---|---|"]
    for name, measured, ok in targets(rep):
        L.append(f"| {name} | {measured} | {_status(ok)} |")
    return "\n".join(L) + "\n"
