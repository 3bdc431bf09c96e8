"""Command line: ``python -m anodfdnet train | evaluate | predict | export | retrain | models | benchmark``.

Errors a user can cause print one sentence on stderr and exit with code 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import UserError

PATH_HELP = ("inference path: auto (the fastest accepted here: onnx on the CPU when the checkpoint has an ONNX export, else cl; "
             "bf16 on CUDA), eager (fp32 reference), cl (fp32 channels-last), bf16, compile, onnx (default auto)")
EPILOG_DATA = "data SPECs: see `python -m anodfdnet specs` (e.g. deeppcb:LISTFILE, ab:ROOT, ba:ROOT, pairs:ROOT, synth:N[:SEED[:hard]], hf:DIR_OR_REPO)"


def _size(text: str) -> int | None | str:
    if text == "checkpoint":  # the default of evaluate/predict: the checkpoint's preferred size
        return text
    if text in ("native", "none", "None"):
        return None
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size: give a multiple of 16 or 'native'") from None
    if v <= 0 or v % 16:
        raise argparse.ArgumentTypeError(f"size {v} is not a positive multiple of 16")
    return v


def _threshold(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"threshold {v} is outside [0, 1]")
    return v


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one sentence and exit 2, like ours
        print(f"error: {message} (see `{self.prog} --help`).", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    from .model import DEPTHS, PRESETS

    p = _Parser(prog="python -m anodfdnet", description="AnoDFDNet: find the abnormal difference between a history and a current image.",
                epilog=EPILOG_DATA)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a model on one or more data SPECs", epilog=EPILOG_DATA)
    t.add_argument("--data", action="append", required=True, metavar="SPEC", help="training data (repeat to mix sources)")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--val", action="append", metavar="SPEC", help="validation data (repeatable); default: hold out --val-fraction of each --data")
    g.add_argument("--val-fraction", type=float, default=0.2, help="fraction of each --data source held out for validation, by seed (default 0.2)")
    t.add_argument("--arch", default=None, help="anodfdnet, or a baseline: unet-cat, deeplabv3plus-cat, fc-siam-diff (default anodfdnet)")
    t.add_argument("--preset", choices=sorted(PRESETS), default=None, help="widths (default lite, or --init's)")
    t.add_argument("--depth", type=int, default=None, help=f"Transformer layers, usually one of {DEPTHS} (default 2, or --init's)")
    t.add_argument("--size", type=_size, default=256, help="training input size, a multiple of 16 (default 256)")
    t.add_argument("--crop", action="store_true", help="train on --size crops at native resolution instead of resizing whole pairs")
    t.add_argument("--eval-size", type=_size, default=None, help="validation input long side or 'native' (default: native with --crop, else --size)")
    t.add_argument("--epochs", type=int, default=100, help="(default 100, the paper's)")
    t.add_argument("--steps-per-epoch", type=int, default=None, help="optimizer steps per epoch (default: one pass over the data)")
    t.add_argument("--batch", type=int, default=4, help="per process (default 4)")
    t.add_argument("--recipe", choices=("fast", "paper"), default="fast", help="optimiser, schedule and default loss: fast = AdamW 1e-3, "
                   "warm-up + cosine decay, BCE + Dice; paper = the paper's Adam 2e-4 betas (0.5, 0.999), constant, BCE (default fast)")
    t.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's, 1e-3 fast / 2e-4 paper)")
    t.add_argument("--loss", choices=("bce", "bce+dice"), default=None, help="bce is the paper's; bce+dice learns rare, tiny anomalies faster (default: the recipe's)")
    t.add_argument("--budget-minutes", type=float, default=None, help="stop after this much CPU time of training, all threads counted "
                   "(the schedule decays over it); --epochs still caps the run")
    t.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto", help="bf16 autocast or fp32 (default auto: bf16 on CUDA, "
                   "and on CPUs with native bf16 where it trains faster)")
    t.add_argument("--prior", default="auto", help="start the logit bias at an anomaly share: auto (measured on the training masks), "
                   "none, or a number (default auto)")
    t.add_argument("--no-pretrained", dest="pretrained", action="store_false", help="train a pretrained-capable encoder (effnet) from scratch")
    t.add_argument("--no-cache", dest="cache", action="store_false", help="decode every pair every time instead of caching decoded pairs "
                   "in $ANODFDNET_CACHE/pairs")
    t.add_argument("--augment", choices=("nuisance", "geometric"), default="nuisance", help="geometric: the paper's flips and "
                   "rot180; nuisance: also small viewpoint changes, scale and lighting between history and current (with --crop; default nuisance)")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's, one per core)")
    t.add_argument("--out", required=True, help="run folder: best/last checkpoints, resume state, log.jsonl")
    t.add_argument("--init", default=None, metavar="CHECKPOINT", help="start from these weights (path, shipped name or hf://...)")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    t.add_argument("--seed", type=int, default=0, help="sampling and initialisation; the validation split is always the one of @train / @val (default 0)")
    t.add_argument("--workers", type=int, default=0, help="data-loading processes; 0 loads in the training process, enough with the "
                   "decoded-pair cache (default 0)")
    t.add_argument("--val-limit", type=int, default=None, help="validate on the first N pairs of each validation source")
    t.add_argument("--save-every", type=int, default=200, help="steps between mid-epoch saves for resuming (default 200)")

    e = sub.add_parser("evaluate", help="pixel metrics of a checkpoint on a data SPEC", epilog=EPILOG_DATA)
    e.add_argument("--checkpoint", required=True, help="path, shipped name (e.g. lite-d2) or hf://OWNER/REPO/FILE")
    e.add_argument("--data", required=True, metavar="SPEC")
    e.add_argument("--threshold", type=_threshold, default=None, help="one threshold to report at (default: both 0.5, the paper's "
                   "convention, and the checkpoint's calibrated threshold)")
    e.add_argument("--size", type=_size, default="checkpoint", help="model input long side or 'native' (default: the checkpoint's preferred size)")
    e.add_argument("--limit", type=int, default=None, help="the first N pairs only")
    e.add_argument("--json", default=None, metavar="OUT", help="write the metrics as JSON")
    e.add_argument("--roc", default=None, metavar="ROC.png", help="write the pixel ROC curve as a PNG")
    e.add_argument("--device", default="auto")
    e.add_argument("--path", default="eager", help="inference path, as for predict (default eager, the fp32 reference; "
                   "auto as predict's)")

    pr = sub.add_parser("predict", help="anomaly maps for one pair or for every pair of a SPEC", epilog=EPILOG_DATA)
    pr.add_argument("--checkpoint", required=True)
    pr.add_argument("--history", help="history (earlier, reference) image")
    pr.add_argument("--current", help="current image")
    pr.add_argument("--out", help="mask PNG to write (one pair)")
    pr.add_argument("--heatmap", help="heat-map PNG to write (one pair)")
    pr.add_argument("--data", metavar="SPEC", help="predict every pair of this source")
    pr.add_argument("--out-dir", help="folder for NAME_mask.png and NAME_heat.png (with --data)")
    pr.add_argument("--threshold", type=_threshold, default=None, help="mask threshold (default: the checkpoint's calibrated one, "
                   "which maximised its validation F1; 0.5 for checkpoints without one)")
    pr.add_argument("--size", type=_size, default="checkpoint", help="model input long side or 'native' (default: the checkpoint's)")
    pr.add_argument("--device", default="auto")
    pr.add_argument("--path", default="auto", help=PATH_HELP)
    pr.add_argument("--batch", type=int, default=None, help="pairs per model call with --data, when their input shapes match (default 1 on the CPU, 16 on CUDA)")
    pr.add_argument("--workers", type=int, default=2, help="threads decoding inputs and encoding outputs with --data; 0 does both in the main thread (default 2)")

    x = sub.add_parser("export", help="export checkpoints to ONNX (served by ONNX Runtime: the fast CPU path)")
    x.add_argument("--onnx", action="store_true", required=True, help="the format (ONNX, the only one)")
    x.add_argument("--checkpoint", action="append", default=None, help="path or shipped name (repeatable; default: every checkpoint the app lists, "
                   "in $ANODFDNET_CHECKPOINT_DIR and checkpoints/)")
    x.add_argument("--out", default=None, help="the .onnx file (one --checkpoint only; default: beside the checkpoint, or in "
                   "$ANODFDNET_CACHE/onnx (~/.cache/anodfdnet/onnx) when that folder is read-only or the Hugging Face cache)")

    r = sub.add_parser("retrain", help="fine-tune a checkpoint on the labels collected in the app")
    r.add_argument("--labels", required=True, help="label dataset folder (the app's ANODFDNET_LABEL_DIR) or Hub dataset id")
    r.add_argument("--from", dest="init", default="lite-d2", help="checkpoint to start from")
    r.add_argument("--out", required=True, help="run folder; the new checkpoint is OUT/best.safetensors")
    r.add_argument("--epochs", type=int, default=20)
    r.add_argument("--steps-per-epoch", type=int, default=None)
    r.add_argument("--val-fraction", type=float, default=0.2)
    r.add_argument("--size", type=_size, default=256)
    r.add_argument("--lr", type=float, default=1e-4)
    r.add_argument("--device", default="auto")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--name", default=None, help="also copy the new checkpoint to $ANODFDNET_CHECKPOINT_DIR (or checkpoints/) as anodfdnet-NAME.safetensors")

    sub.add_parser("models", help="parameter counts and FLOPs of every preset and depth")
    b = sub.add_parser("benchmark", help="measure speed or accuracy against the baselines; write a report under benchmarks/")
    bsub = b.add_subparsers(dest="which", required=True, parser_class=_Parser)
    bs = bsub.add_parser("speed", help="latency, throughput, memory, matmul rate, app render, label save, predict over a folder")
    bs.add_argument("--quick", action="store_true", help="few repeats and small inputs (a smoke run, not for reporting)")
    bs.add_argument("--out", default="benchmarks/SPEED.md", help="report to write (default benchmarks/SPEED.md)")
    bs.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: the CPU, and the CUDA GPU too when there is one")
    bp = bsub.add_parser("paths", help="every inference path's speed and its F1 against fp32 eager on the validation sets")
    from . import benchmark_accuracy, benchmark_paths

    benchmark_paths.add_arguments(bp)
    benchmark_accuracy.add_arguments(bsub.add_parser("accuracy", help="train and evaluate every method over seeds; write benchmarks/ACCURACY.md"))
    sub.add_parser("specs", help="the data SPEC syntax")
    return p


def cmd_train(a) -> int:
    from .checkpoint import read_info, resolve
    from .train import TrainConfig, train

    arch, preset, depth = a.arch, a.preset, a.depth
    if a.init:
        cfg0 = read_info(resolve(a.init)).config
        arch, preset, depth = arch or cfg0.arch, preset or cfg0.preset, cfg0.depth if depth is None else depth
    cfg = TrainConfig(data=a.data, out=a.out, val=a.val, val_fraction=a.val_fraction, arch=arch or "anodfdnet",
                      preset=preset or "lite", depth=2 if depth is None else depth, size=a.size, mode="crop" if a.crop else "resize",
                      eval_size=a.eval_size, epochs=a.epochs, steps_per_epoch=a.steps_per_epoch, batch=a.batch, recipe=a.recipe, lr=a.lr,
                      loss=a.loss, init=a.init, pretrained=a.pretrained, prior=a.prior, precision=a.precision, cache=a.cache,
                      budget_minutes=a.budget_minutes, augment=a.augment, threads=a.threads, device=a.device, seed=a.seed, workers=a.workers,
                      val_limit=a.val_limit, save_every=a.save_every)
    best = train(cfg)
    print(f"best checkpoint: {best}")
    return 0


def cmd_evaluate(a) -> int:
    from .checkpoint import load_checkpoint
    from .data import parse_spec
    from .device import pick_device
    from .evaluate import accumulate
    from .metrics import format_header, format_row

    from .runtime import build_runtime

    device = pick_device(a.device)
    model, info = load_checkpoint(a.checkpoint, device)
    runtime = build_runtime(model, info.path, device, a.path)
    source = parse_spec(a.data)
    size = info.eval_size if a.size == "checkpoint" else a.size
    acc = accumulate(model, source, size, device, threshold=0.5 if a.threshold is None else a.threshold, limit=a.limit,
                     forward=runtime)
    metrics = acc.compute()
    print(format_header(28))
    print(format_row(f"{info.name} @ {acc.threshold:.4g}", metrics, 28))
    result = {k: metrics[k] for k in ("pairs", "precision", "recall", "oa", "f1", "iou", "auc", "eer")}
    result["threshold"] = acc.threshold
    if a.threshold is None:  # also at the checkpoint's calibrated threshold
        at = {**metrics, **acc.at(info.threshold)}
        print(format_row(f"{info.name} @ {info.threshold:.4g} (calibrated)", at, 28))
        result["calibrated"] = {k: at[k] for k in ("threshold", "precision", "recall", "oa", "f1", "iou")}
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    if a.roc:
        from .metrics import plot_roc

        plot_roc(*acc.roc()[:2], a.roc, title=f"{info.name} on {a.data}")
    return 0


def cmd_predict(a) -> int:
    from .images import save_mask_png, save_rgb_png
    from .metrics import binarize
    from .predict import Predictor
    from .visualize import heatmap_rgb

    one = a.history or a.current or a.out or a.heatmap
    if bool(one) == bool(a.data):
        raise UserError("give either --history, --current and --out for one pair, or --data and --out-dir for many.")
    predictor = Predictor(a.checkpoint, device=a.device, size=a.size, path=a.path)
    if a.threshold is None:
        a.threshold = predictor.threshold
    if one:
        if not (a.history and a.current and (a.out or a.heatmap)):
            raise UserError("one-pair prediction needs --history, --current and --out (and/or --heatmap).")
        res = predictor.run(a.history, a.current)
        if a.out:
            save_mask_png(a.out, binarize(res.prob, a.threshold))
        if a.heatmap:
            save_rgb_png(a.heatmap, heatmap_rgb(res.prob))
        area = float(binarize(res.prob, a.threshold).mean()) * 100
        print(f"{a.current}: {area:.3f}% anomalous at threshold {a.threshold} ({res.seconds * 1000:.0f} ms on {res.device}, "
              f"{predictor.runtime.detail})")
        return 0
    if not a.out_dir:
        raise UserError("--data needs --out-dir for the masks and heat maps.")
    if a.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {a.workers}.")
    import contextlib
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from .data import parse_spec
    from .predict import iter_predictions

    source = parse_spec(a.data)
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    batch = a.batch if a.batch is not None else (16 if predictor.device.type == "cuda" else 1)
    if batch < 1:
        raise UserError(f"--batch must be 1 or more, got {batch}.")

    def write(name: str, prob) -> None:
        save_mask_png(out / f"{name}_mask.png", binarize(prob, a.threshold))
        save_rgb_png(out / f"{name}_heat.png", heatmap_rgb(prob))

    # Outputs are encoded in threads while the model runs on the next batch; at most 2 x workers wait.
    bar = tqdm(total=len(source), desc=f"predict ({predictor.runtime.path})", unit="pair")
    with ThreadPoolExecutor(a.workers, thread_name_prefix="anodfdnet-write") if a.workers else contextlib.nullcontext() as writer:
        waiting: deque = deque()
        for pair, prob in iter_predictions(predictor, source, batch=batch, workers=a.workers):
            if writer is None:
                write(pair.name, prob)
                bar.update(1)
                continue
            waiting.append(writer.submit(write, pair.name, prob))
            while len(waiting) > 2 * a.workers or (waiting and waiting[0].done()):
                waiting.popleft().result()
                bar.update(1)
        for f in waiting:
            f.result()
            bar.update(1)
    bar.close()
    print(f"wrote {len(source)} masks and heat maps to {out} ({predictor.runtime.detail}, batch {batch})")
    return 0


def cmd_export(a) -> int:
    from .checkpoint import list_checkpoints, resolve
    from .onnx_export import export_onnx

    refs = a.checkpoint or [str(info.path) for info in list_checkpoints()]
    if not refs:
        raise UserError("no checkpoints to export: pass --checkpoint PATH.")
    if a.out and len(refs) > 1:
        raise UserError("--out names one file: give exactly one --checkpoint with it.")
    for ref in refs:
        path = resolve(ref)
        written = export_onnx(path, a.out)
        print(f"{path.name} -> {written} (checked against the eager model)")
    return 0


def cmd_retrain(a) -> int:
    from .retrain import retrain

    retrain(labels=a.labels, init=a.init, out=a.out, epochs=a.epochs, steps_per_epoch=a.steps_per_epoch,
            val_fraction=a.val_fraction, size=a.size, lr=a.lr, device=a.device, seed=a.seed, name=a.name)
    return 0


def cmd_models(a) -> int:
    from .model import describe

    print(describe())
    return 0


def cmd_benchmark(a) -> int:
    from . import benchmark_accuracy, benchmark_paths, benchmark_speed

    return {"speed": benchmark_speed.main, "accuracy": benchmark_accuracy.main, "paths": benchmark_paths.main}[a.which](a)


def cmd_specs(a) -> int:
    from .data import spec_help

    print(spec_help())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "export": cmd_export, "retrain": cmd_retrain,
                "models": cmd_models, "specs": cmd_specs, "benchmark": cmd_benchmark}[args.command](args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
