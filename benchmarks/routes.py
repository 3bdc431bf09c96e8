"""Can the app's default model (effnet-d2) run in half Unet-cat's time on the CPU? (issue 24)

``python -m benchmarks routes`` writes ``benchmarks/ROUTES.md`` (and ``routes.json``). In one process, 256x256,
batch 1, torch's default threads, each timing the median of interleaved runs:

1. the target: effnet-d2 and Unet-cat through ``Predictor.run`` on the default path (bf16, folded and fused);
2. where effnet-d2's time goes on that path: the encoder (both images), the head (Transformer + decoder),
   and the encoder with every depthwise convolution made free (a floor for any depthwise route: a fused
   depthwise kernel cannot beat zero), plus ``Predictor.run``'s own pre/post-processing;
3. routes the earlier paths benchmark (PATHS.md: channels-last, bf16, torch.compile fp32, ONNX Runtime
   fp32) did not measure: depthwise kept in fp32 under bf16, torch.compile of the bf16 model with
   inductor's weight freezing, int8 dynamic quantisation (PyTorch, the Linear layers), and int8 static
   quantisation on ONNX Runtime (QDQ, per channel, calibrated on generated pairs);
4. F1 of every route on the validation sets against the default path's (a route is accepted within 0.5
   points on every set, the paths benchmark's rule).
"""
from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .paths import ACCEPT_F1_POINTS  # the paths benchmark's acceptance rule
from .timing import interleaved, load_average, machine_header, median_spread

REPO = Path(__file__).resolve().parent.parent
SIZE = 256


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeats", type=int, default=25, help="timed runs per configuration (default 25)")
    p.add_argument("--limit", type=int, default=30, help="validation pairs per set for the F1 check (default 30)")
    p.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--skip", nargs="*", default=[], choices=["compile", "ort-int8", "dyn-int8"],
                   help="routes to leave out (compile builds for ~25 s a shape here)")
    p.add_argument("--from-json", default=None, metavar="routes.json", help="write the report again from a run's figures")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "ROUTES.md"))


def _log(msg: str) -> None:
    print(f"[routes] {msg}", file=sys.stderr, flush=True)


class _FreeDepthwise(nn.Module):
    """Stands in for a depthwise convolution at no cost: the input itself (stride 1) or every other pixel."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x if self.stride == 1 else x[:, :, ::2, ::2]


class _Fp32(nn.Module):
    """Runs a module in fp32 under bf16 autocast and hands bf16 on."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        with torch.autocast("cpu", enabled=False):
            return self.inner(x.float()).to(torch.bfloat16)


def _mbconvs(model):
    from anodfdnet.models.efficientnet_lite import MBConv

    return [m for m in model.modules() if isinstance(m, MBConv)]


def _default_model(model):
    """The default CPU path's model (runtime._channels_last with bf16): BatchNorm folded, activations fused."""
    from anodfdnet.inference.fuse import fold_batchnorm, fuse_activations

    return fuse_activations(fold_batchnorm(model)).to(memory_format=torch.channels_last)


def _bf16(fn):
    def run():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return fn()
    return run


def _ort_int8(ckpt: Path, calib: list[tuple[torch.Tensor, torch.Tensor]], work: Path):
    """An ONNX Runtime session of the checkpoint quantised to int8 (static, QDQ, per-channel weights)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from anodfdnet.inference.onnx_export import cache_path, export_onnx, onnx_session, open_onnx

    if open_onnx(ckpt) is None:
        export_onnx(ckpt, cache_path(ckpt))
    fp32 = open_onnx(ckpt)[1]
    pre, int8 = work / "pre.onnx", work / "int8.onnx"
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calib)

        def get_next(self):
            item = next(self.items, None)
            return None if item is None else {"history": item[0].numpy(), "current": item[1].numpy()}

    quantize_static(str(pre), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    session = onnx_session(int8)

    def forward(h, c):
        feed = {"history": np.ascontiguousarray(h.numpy(), dtype=np.float32), "current": np.ascontiguousarray(c.numpy(), dtype=np.float32)}
        out = session.run(["logits"], feed)[0]
        return torch.from_numpy(out)
    return forward


def _calibration(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """n generated training pairs (the project's generator, not a validation set) as model inputs."""
    from anodfdnet.data import parse_spec
    from anodfdnet.inference.pipeline import prepare_pair

    src = parse_spec("synth:3000@train")
    out = []
    for i in range(n):
        p = src[i]
        h, c, _, _ = prepare_pair(p.history, p.current, SIZE)
        out.append((h[None].contiguous(), c[None].contiguous()))
    return out


def measure(args) -> dict:
    from anodfdnet.checkpoint import load_checkpoint, resolve, save_checkpoint
    from anodfdnet.inference.runtime import build_runtime
    from anodfdnet.models import ModelConfig, build_model
    from anodfdnet.predict import Predictor

    t_start = time.perf_counter()
    cpu = torch.device("cpu")
    ckpt = resolve("effnet-d2")
    tmp = Path(tempfile.mkdtemp(prefix="routes-"))
    torch.manual_seed(0)
    unet_ckpt = tmp / "unet-cat.safetensors"
    save_checkpoint(unet_ckpt, build_model(ModelConfig.from_preset("lite", 2, arch="unet-cat")), {"note": "stand-in"})

    g = torch.Generator().manual_seed(0)
    h, c = (torch.rand(1, 3, SIZE, SIZE, generator=g) * 2 - 1 for _ in range(2))
    hl, cl = h.contiguous(memory_format=torch.channels_last), c.contiguous(memory_format=torch.channels_last)
    rng = np.random.default_rng(0)
    hist = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    cur = hist.copy()
    cur[64:128, 64:128] = 255
    sync = lambda: None  # noqa: E731
    rep = {"size": SIZE, "repeats": args.repeats, "limit": args.limit, "header": machine_header([cpu]), "load_start": load_average()}

    # 1. The target, as the speed benchmark measures it.
    _log("Predictor.run: effnet-d2 and Unet-cat on the default path")
    pe, pu = (Predictor(str(p), device="cpu", size=SIZE, path="auto", align="off") for p in (ckpt, unet_ckpt))
    t = interleaved({"effnet": lambda: pe.run(hist, cur), "unet": lambda: pu.run(hist, cur),
                     "effnet-model": lambda: pe.predict_logits(h, c), "unet-model": lambda: pu.predict_logits(h, c)},
                    args.repeats, 3, sync)
    rep["path"] = pe.path
    rep["target"] = {k: median_spread(v) for k, v in t.items()}

    # 2. Where effnet-d2's time goes on that path.
    _log("parts of effnet-d2 on the default path")
    model = load_checkpoint(ckpt, cpu)[0].eval()
    fused = _default_model(model)
    x2 = torch.cat([hl, cl], 0)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        taps = [t_.clone() for t_ in fused.encoder(x2)]
    free = copy.deepcopy(fused)
    for block in _mbconvs(free):
        block.dw = _FreeDepthwise(2 if any(getattr(m, "stride", [1])[0] == 2 for m in block.dw.modules()) else 1)
    mixed = copy.deepcopy(fused)
    for block in _mbconvs(mixed):
        block.dw = _Fp32(block.dw)
    parts = {
        "whole": _bf16(lambda: fused(hl, cl)),
        "encoder": _bf16(lambda: fused.encoder(x2)),
        "head": _bf16(lambda: fused.head(taps, (SIZE, SIZE))),
        "encoder, depthwise free": _bf16(lambda: free.encoder(x2)),
        "whole, depthwise free": _bf16(lambda: free(hl, cl)),
        "whole, depthwise in fp32": _bf16(lambda: mixed(hl, cl)),
    }
    rep["parts"] = {k: median_spread(v) for k, v in interleaved(parts, args.repeats, 3, sync).items()}
    rep["depthwise"] = sum(1 for b in _mbconvs(fused))

    # 3. Routes not measured before, each in a block of its own (ORT's and torch's threads both spin-wait).
    routes, forwards, notes = {}, {}, {}
    base = build_runtime(model, ckpt, cpu, "auto")
    forwards["default"] = base
    routes["default"] = median_spread(interleaved({"d": _bf16(lambda: base(h, c))}, args.repeats, 3, sync)["d"])
    if "dyn-int8" not in args.skip:
        _log("int8 dynamic quantisation (Linear layers), fp32 channels-last otherwise")
        from anodfdnet.inference.fuse import fold_batchnorm

        q = torch.ao.quantization.quantize_dynamic(fold_batchnorm(model), {nn.Linear}, dtype=torch.qint8)
        q = q.to(memory_format=torch.channels_last)
        fwd = lambda a, b: q(a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)).float()  # noqa: E731
        forwards["dyn-int8"] = fwd
        with torch.inference_mode():
            routes["dyn-int8"] = median_spread(interleaved({"q": lambda: fwd(h, c)}, args.repeats, 3, sync)["q"])
    if "ort-int8" not in args.skip:
        _log("ONNX Runtime int8 static quantisation (calibrating on 16 generated pairs)")
        try:
            fwd = _ort_int8(ckpt, _calibration(16), tmp)
            forwards["ort-int8"] = fwd
            routes["ort-int8"] = median_spread(interleaved({"o": lambda: fwd(h, c)}, args.repeats, 3, sync)["o"])
        except (ImportError, RuntimeError, ValueError) as e:
            notes["ort-int8"] = f"did not run: {str(e).splitlines()[0][:200]}"
    if "compile" not in args.skip:
        _log("torch.compile of the bf16 model with inductor freezing (compiles for minutes)")
        import torch._inductor.config as inductor_config
        from anodfdnet.inference.fuse import fold_batchnorm

        inductor_config.freezing = True
        cm = torch.compile(fold_batchnorm(model).to(memory_format=torch.channels_last), dynamic=False)
        t0 = time.perf_counter()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            cm(hl, cl)
        notes["compile"] = f"compiled in {time.perf_counter() - t0:.0f} s"

        def fwd(a, b):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return cm(a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)).float()
        forwards["compile-bf16"] = fwd
        with torch.inference_mode():
            routes["compile-bf16"] = median_spread(interleaved({"c": lambda: fwd(h, c)}, args.repeats, 3, sync)["c"])
    rep["routes"], rep["notes"] = routes, notes

    # 4. F1 of every route against the default path (DeepPCB and tunnel validation pairs, native size).
    from anodfdnet.data import parse_spec
    from anodfdnet.evaluate import evaluate

    shared = Path(args.shared)
    sets = [("DeepPCB val", f"deeppcb:{shared / 'deeppcb' / 'trainval.txt'}@val"),
            ("tunnel val", f"ba:{shared / 'tunnel_synthetic'}@val"), ("synth hard", "synth:1000:1:hard@val")]
    rep["f1"] = {}
    for label, spec in sets:
        if not spec.startswith("synth") and not shared.exists():
            continue
        source = parse_spec(spec)
        for name, fwd in forwards.items():
            _log(f"F1: {name} on {label}")
            with torch.inference_mode():
                m = evaluate(model, source, SIZE if label == "synth hard" else None, cpu, limit=args.limit,
                             progress=False, forward=fwd)
            rep["f1"].setdefault(name, {})[label] = 100 * m["f1"]
    shutil.rmtree(tmp, ignore_errors=True)  # the stand-in checkpoint and the quantised ONNX files
    rep["load_end"], rep["seconds"] = load_average(), time.perf_counter() - t_start
    rep["date"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    return rep


def _ms(v) -> str:
    med, lo, hi = v  # ms (timing.median_spread)
    return f"{med:.2f} ({lo:.2f}–{hi:.2f})"


def format_report(r: dict) -> str:
    t, p = r["target"], r["parts"]
    unet = t["unet"][0]
    goal = 0.5 * unet
    overhead = t["effnet"][0] - t["effnet-model"][0]
    lines = ["# effnet-d2 against half of Unet-cat's time on the CPU: where the time goes, every route", "",
             "Written by `python -m benchmarks routes` in one process and one run; nothing here is typed by hand.", "",
             *r["header"],
             f"- load average at start: {r['load_start']}, at end: {r['load_end']}",
             f"- {SIZE}x{SIZE}, batch 1; median (p10–p90) of {r['repeats']} interleaved runs, ms; "
             f"duration {r['seconds']:.0f} s", "",
             "## The target (issue 24): effnet-d2 at most 0.5x Unet-cat on the same path", "",
             "| | effnet-d2 | Unet-cat | ratio |", "|---|---:|---:|---:|",
             f"| Predictor.run (path `{r['path']}`, pre/post-processing included) | {_ms(t['effnet'])} | {_ms(t['unet'])} | "
             f"{t['effnet'][0] / unet:.2f}x |",
             f"| model only (Predictor.predict_logits) | {_ms(t['effnet-model'])} | {_ms(t['unet-model'])} | "
             f"{t['effnet-model'][0] / t['unet-model'][0]:.2f}x |", "",
             f"0.5x Unet-cat is **{goal:.2f} ms** for the whole `Predictor.run` call. effnet-d2's call spends "
             f"{overhead:.2f} ms outside the model (loading the arrays, resizing, tensors, the sigmoid and the "
             "map back), so the model itself would have to run in "
             f"**{(goal - overhead):.2f} ms**.", "",
             "## Where effnet-d2's time goes on the default path (model only)", "",
             "| part | ms |", "|---|---:|"]
    lines += [f"| {k} | {_ms(v)} |" for k, v in p.items()]
    floor = p["whole, depthwise free"][0] + overhead
    lines += ["", f"The encoder's {r['depthwise']} MBConv blocks each have one depthwise convolution. With every one of them "
              f"replaced by nothing at all (the input passed on, subsampled where the block strides), the whole model "
              f"takes {p['whole, depthwise free'][0]:.2f} ms and the `Predictor.run` call would take about "
              f"{floor:.2f} ms: {floor / unet:.2f}x Unet-cat. "
              + ("So no depthwise route (a fused depthwise kernel, another precision for it) can reach 0.5x: even free "
                 "depthwise convolutions leave the rest above the target."
                 if floor > goal else
                 "So a depthwise route could in principle reach 0.5x; see the routes below."),
              f"The head alone (Transformer and decoder) takes {p['head'][0]:.2f} ms; with the call's {overhead:.2f} ms outside the "
              f"model that is {p['head'][0] + overhead:.2f} ms = {(p['head'][0] + overhead) / unet:.2f}x Unet-cat before any encoder "
              "runs, so no change to the encoder (another cut, int8, another encoder) can reach 0.5x on its own either.",
              f"Depthwise convolutions kept in fp32 under bf16: {p['whole, depthwise in fp32'][0]:.2f} ms against "
              f"{p['whole'][0]:.2f} ms all in bf16: depthwise convolutions gain from bf16 here after all.", "",
              "## Routes the paths benchmark had not measured (model only)", "",
              f"F1 (%) at the checkpoint's threshold on the first {r.get('limit', 30)} pairs of each set (DeepPCB and tunnel at "
              f"their native size, synth hard at {SIZE}); in brackets the change against the default path.", "",
              "| route | what runs | ms | × default | " + " | ".join(f"F1 {s}" for s in next(iter(r["f1"].values()), {})) + " |",
              "|---|---|---:|---:|" + "---:|" * len(next(iter(r["f1"].values()), {}))]
    what = {"default": f"the default path (`{r['path']}`: bf16 autocast, BatchNorm folded, oneDNN-fused activations, channels-last)",
            "dyn-int8": "PyTorch int8 dynamic quantisation of the Linear layers (Transformer), fp32 channels-last convolutions",
            "ort-int8": "ONNX Runtime, int8 static quantisation (QDQ, per-channel weights, uint8 activations, 16 generated calibration pairs)",
            "compile-bf16": "torch.compile (inductor, weight freezing) of the BatchNorm-folded model under bf16 autocast"}
    d = r["routes"]["default"][0]
    for k, v in r["routes"].items():
        f1 = r["f1"].get(k, {})
        cells = " | ".join(f"{x:.1f} ({x - r['f1']['default'][s]:+.1f})" if k != "default" else f"{x:.1f}" for s, x in f1.items())
        lines.append(f"| {k} | {what[k]} | {_ms(v)} | {v[0] / d:.2f} | {cells} |")
    for k, v in r["notes"].items():
        lines.append(f"\n- {k}: {v}")
    best = min(r["routes"], key=lambda k: r["routes"][k][0])
    ok = [k for k in r["routes"] if all(abs(x - r["f1"]["default"][s]) <= ACCEPT_F1_POINTS for s, x in r["f1"].get(k, {}).items())]
    fastest_ok = min(ok, key=lambda k: r["routes"][k][0])
    est = r["routes"][fastest_ok][0] + overhead
    head_floor = p["head"][0] + overhead
    lines += ["", "## Verdict", "",
              ("- Not reachable by any route measured: the head with the call's pre/post-processing alone, and the whole model "
               "with free depthwise convolutions, are each above 0.5x Unet-cat (above). A route that speeds the whole model "
               "(torch.compile) would speed Unet-cat on the same path too."
               if floor > goal and head_floor > goal else
               "- The floors above leave room under 0.5x: see the routes."),
              f"- fastest route: **{best}** ({r['routes'][best][0]:.2f} ms model only); fastest that keeps F1 within "
              f"{ACCEPT_F1_POINTS} points on every set: **{fastest_ok}**, which puts `Predictor.run` at about "
              f"{est:.2f} ms = **{est / unet:.2f}x** Unet-cat (target 0.5x: "
              f"{'met' if est <= goal else 'missed'})."]
    return "\n".join(lines) + "\n"


def main(args) -> int:
    if args.from_json:
        rep = json.loads(Path(args.from_json).read_text())
        Path(args.out).write_text(format_report(rep))
        print(f"wrote {args.out} from {args.from_json}")
        return 0
    rep = measure(args)
    out = Path(args.out)
    out.with_name("routes.json").write_text(json.dumps(rep, indent=1))
    out.write_text(format_report(rep))
    print(f"wrote {out} and {out.with_name('routes.json')}")
    return 0
