"""Command line: ``python -m anodfdnet train | evaluate | predict | inspect | export | adapt | models | specs`` (``retrain``: adapt's former name).

Parses and dispatches, nothing more: each command is a function of the library module that owns it
(``train.train``, ``evaluate.evaluate_checkpoint``, ``predict.predict_files``, ``inspect.inspect_archive``,
``inference.onnx_export.export_checkpoints``, ``adaptation.adapt``, ``models.describe``,
``data.spec_help``). Errors a user can cause print one sentence on stderr and exit with code 2.
"""
from __future__ import annotations

import argparse
import sys

from .errors import UserError

PATH_HELP = ("inference path: auto (the fastest measured here: bf16 on CPUs with native bf16, AVX512-BF16 or AMX, else cl; "
             "bf16 on CUDA), eager (fp32 reference), cl (fp32 channels-last), bf16, compile, onnx (default auto)")
ALIGN_HELP = ("bring the history onto the current view first: auto (a homography, affine or similarity map from image "
              "features, used only when judged trustworthy; registered pairs are left alone), off, homography, affine, "
              "ecc (auto refined by ECC); pixels the warped history does not cover are unknown: probability 0, flagged (default auto)")
ADAPT_DESCRIPTION = ("Fine-tune a checkpoint on a handful of labelled pairs of your own domain within a CPU-time budget (native-"
                     "resolution crops around the labelled anomalies, a replay share of the checkpoint's own training data), "
                     "score it against the old checkpoint and the old checkpoint with a threshold fitted to your labels on "
                     "held-out pairs (cross-fitting over folds), and keep the best: never a model that did worse on held-out pairs.")
INSPECT_DESCRIPTION = ("Inspect every pair of an archive: per pair the highest anomaly probability, the anomalous area, "
                       "regions (box, area, max/mean probability), the alignment's verdict, mask and heat-map PNGs; one "
                       "RUN/results.parquet and a self-contained RUN/report.html listing pairs worst first. A rerun skips "
                       "finished pairs; an unreadable pair or manifest line is reported and skipped.")
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


def labels_k(text: str) -> int:
    """k, the labels a pair needs: a whole number of at least 1 (``annotate``'s commands use it too)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"k must be at least 1 (a pair needs at least one label), got {v}")
    return v


def _threshold(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"threshold {v} is outside [0, 1]")
    return v


class Parser(argparse.ArgumentParser):
    """argparse with the package's error convention (one sentence on stderr, exit code 2); the benchmarks use it too."""

    def error(self, message):  # argparse's own errors: one sentence and exit 2, like ours
        print(f"error: {message} (see `{self.prog} --help`).", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .align import MODES
    from .models.config import DEPTHS, PRESETS

    p = Parser(prog="python -m anodfdnet", description="AnoDFDNet: find the abnormal difference between a history and a current image.",
                epilog=EPILOG_DATA)
    p.add_argument("--version", action="version", version=f"anodfdnet {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    t = sub.add_parser("train", help="train a model on one or more data SPECs", epilog=EPILOG_DATA)
    t.add_argument("--data", action="append", required=True, metavar="SPEC", help="training data (repeat to mix sources)")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--val", action="append", metavar="SPEC", help="validation data (repeatable); default: hold out --val-fraction of each --data")
    g.add_argument("--val-fraction", type=float, default=0.2, help="fraction of each --data source held out for validation, by seed (default 0.2)")
    t.add_argument("--arch", default=None, help="anodfdnet, or a baseline: unet-cat, deeplabv3plus-cat, fc-siam-diff (default anodfdnet)")
    t.add_argument("--preset", choices=sorted(PRESETS), default=None, help="widths (default lite, or --init's)")
    t.add_argument("--depth", type=int, default=None, help=f"bottleneck layers, usually one of {DEPTHS} (default 2, or --init's)")
    t.add_argument("--bottleneck", choices=("transformer", "i2c"), default=None, help="on the deepest features: transformer (the "
                   "paper's, over |e5(current) - e5(history)|) or i2c (FOD's I2Correlation: intra-correlation of the current "
                   "image's tokens, inter-correlation to the history's as the reference, their discrepancy maps to the decoder); "
                   "default transformer, or --init's")
    t.add_argument("--objective", choices=("supervised", "normal"), default="supervised", help="supervised: learn from the "
                   "masks; normal: learn from pairs without anomalies only (each --data SPEC read as normal:SPEC: generated "
                   "pairs with the anomaly off, pairs with empty masks as they are, a pair with an anomaly as its history against an altered copy), i2c only, "
                   "encoder frozen, anomaly map = the discrepancy score; --val SPEC --val-limit 5 calibrates the threshold "
                   "on 5 labelled pairs, none keeps the score's own scale (default supervised)")
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
    t.add_argument("--align", choices=MODES, default="off", help="align every training and validation history to its current "
                   "view as predict --align does (uncovered pixels: history = current, mask cleared); recorded in the "
                   "checkpoint as the alignment it expects (default off)")

    e = sub.add_parser("evaluate", help="pixel metrics of a checkpoint on a data SPEC", epilog=EPILOG_DATA)
    e.add_argument("--checkpoint", required=True, help="path, shipped name (e.g. effnet-d2) or hf://OWNER/REPO/FILE")
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
    e.add_argument("--align", choices=MODES, default="auto", help=ALIGN_HELP + "; uncovered pixels are left out of the metrics")

    pr = sub.add_parser("predict", help="anomaly maps for one pair or for every pair of a SPEC", epilog=EPILOG_DATA)
    pr.add_argument("--checkpoint", required=True, help="path, shipped name (e.g. effnet-d2) or hf://OWNER/REPO/FILE")
    pr.add_argument("--history", help="history (earlier, reference) image")
    pr.add_argument("--current", help="current image")
    pr.add_argument("--out", help="mask PNG to write (one pair; missing folders are made)")
    pr.add_argument("--heatmap", help="heat-map PNG to write (one pair; missing folders are made)")
    pr.add_argument("--data", metavar="SPEC", help="predict every pair of this source")
    pr.add_argument("--out-dir", help="folder for NAME_mask.png and NAME_heat.png (with --data)")
    pr.add_argument("--threshold", type=_threshold, default=None, help="mask threshold (default: the checkpoint's calibrated one, "
                   "which maximised its validation F1; 0.5 for checkpoints without one)")
    pr.add_argument("--size", type=_size, default="checkpoint", help="model input long side or 'native' (default: the checkpoint's)")
    pr.add_argument("--device", default="auto")
    pr.add_argument("--path", default="auto", help=PATH_HELP)
    pr.add_argument("--batch", type=int, default=None, help="pairs per model call with --data, when their input shapes match (default 1 on the CPU, 16 on CUDA)")
    pr.add_argument("--workers", type=int, default=2, help="threads decoding inputs and encoding outputs with --data; 0 does both in the main thread (default 2)")
    pr.add_argument("--lanes", type=int, default=None, help="with --data: model calls in flight at once, each on its share of torch's "
                    "threads (default 2 on a CPU: they keep the cores busier than one call on all of them; 1 on a GPU)")
    pr.add_argument("--align", choices=MODES, default="auto", help=ALIGN_HELP)

    ins = sub.add_parser("inspect", help="inspect a whole archive: scores, regions, masks, a report worst first; resumable; "
                         "on this machine or a Ray cluster", epilog=EPILOG_DATA + "; manifest:FILE.csv|parquet (id, history, current)",
                         description=INSPECT_DESCRIPTION)
    ins.add_argument("--data", required=True, metavar="SPEC", help="the pairs: any SPEC, or manifest:FILE.csv|parquet with columns "
                     "id, history, current (local paths or fsspec URLs)")
    ins.add_argument("--out", required=True, metavar="RUN", help="run folder: results.parquet, report.html, masks/, heat/, thumbs/; "
                     "run again to resume (finished pairs are skipped)")
    ins.add_argument("--checkpoint", default="effnet-d2", help="path, shipped name or hf://OWNER/REPO/FILE (default effnet-d2)")
    ins.add_argument("--engine", choices=("local", "ray"), default="local", help="local: this process, the prefetching pipeline "
                     "(nothing to install; its threads share one interpreter lock: about 120 to 380 pairs/s at most on the "
                     "measured host, whatever the cores, benchmarks/GIL.md); ray: Ray Data tasks and a pool of model actors, "
                     "processes over every core of a machine or cluster (pip install .[ray]) (default local)")
    ins.add_argument("--address", default=None, help="with --engine ray: the cluster to join (ray://HOST:PORT, HOST:PORT or auto); "
                     "default: start a local Ray on this machine")
    ins.add_argument("--threshold", type=_threshold, default=None, help="mask threshold (default: the checkpoint's calibrated one)")
    ins.add_argument("--size", type=_size, default="checkpoint", help="model input long side or 'native' (default: the checkpoint's)")
    ins.add_argument("--device", default="auto")
    ins.add_argument("--path", default="auto", help=PATH_HELP)
    ins.add_argument("--align", choices=MODES, default="auto", help=ALIGN_HELP)
    ins.add_argument("--batch", type=int, default=None, help="pairs per model call when their input shapes match (default 1 on "
                     "the CPU, 16 on a GPU)")
    ins.add_argument("--workers", type=int, default=None, help="local: threads reading and writing beside the model (default 2); "
                     "ray: model actors (default 1)")
    ins.add_argument("--lanes", type=int, default=None, help="local: model calls in flight at once, each on its share of "
                     "torch's threads (default 2 on a CPU: they keep the cores busier than one call on all of them; 1 on a GPU)")
    ins.add_argument("--cpus", type=int, default=None, help="ray without --address: CPUs of the local Ray (default: all)")
    ins.add_argument("--cpus-per-worker", type=float, default=1.0, help="ray: CPUs each model actor reserves (default 1)")
    ins.add_argument("--gpus-per-worker", type=float, default=0.0, help="ray: GPUs each model actor reserves, e.g. 1 or 0.5 "
                     "(default 0: CPU actors, which also write their own pairs' outputs; GPU actors leave that to CPU tasks)")
    ins.add_argument("--limit", type=int, default=None, help="the first N pairs of the SPEC only")
    ins.add_argument("--report-rows", type=int, default=500, help="pairs listed with thumbnails in report.html, worst first (default 500)")
    ins.add_argument("--to-queue", default=None, metavar="FILE.csv", help="add the --top pairs to this manifest, the Label tab's "
                     "queue (ANODFDNET_QUEUE=manifest:FILE.csv)")
    ins.add_argument("--top", type=int, default=20, help="pairs for --to-queue (default 20)")
    ins.add_argument("--rank", choices=("score", "uncertainty"), default="score", help="--to-queue order: score (highest "
                     "probability first) or uncertainty (most pixels near the threshold first) (default score)")

    x = sub.add_parser("export", help="export checkpoints to ONNX, for ONNX Runtime or another ONNX consumer "
                       "(predict --path onnx uses it; not the fastest path here: see the README's Inference paths)")
    x.add_argument("--onnx", action="store_true", required=True, help="the format (ONNX, the only one)")
    x.add_argument("--checkpoint", action="append", default=None, help="path or shipped name (repeatable; default: every checkpoint the app lists, "
                   "in $ANODFDNET_CHECKPOINT_DIR and checkpoints/)")
    x.add_argument("--out", default=None, help="the .onnx file (one --checkpoint only; default: beside the checkpoint, or in "
                   "$ANODFDNET_CACHE/onnx (~/.cache/anodfdnet/onnx) when that folder is read-only or the Hugging Face cache)")

    for command, help_text in (("adapt", "adapt a checkpoint to your own pairs: fine-tune on a handful of labelled pairs, "
                                          "checked on held-out ones, never silently worse"),
                               ("retrain", "the former name of adapt (the same command)")):
        r = sub.add_parser(command, help=help_text, epilog=EPILOG_DATA, description=ADAPT_DESCRIPTION)
        r.add_argument("--labels", required=True, help="the labelled pairs: a label dataset folder (the app's ANODFDNET_LABEL_DIR), "
                       "a Hub dataset id, or any data SPEC with masks (e.g. ab:DIR)")
        r.add_argument("--from", dest="init", default="effnet-d2", help="checkpoint to start from: path, shipped name or "
                       "hf://OWNER/REPO/FILE (default effnet-d2, the app's default)")
        r.add_argument("--out", required=True, help="run folder (resumable): fold-N/ and final/ runs, adapted.safetensors, "
                       "threshold.safetensors, best.safetensors (the chosen one), report.json")
        r.add_argument("--budget-minutes", type=float, default=5.0, help="CPU time for all of the training, all threads counted: "
                       "--final-share of it for the final run, the rest shared by the folds (default 5)")
        r.add_argument("--final-share", type=float, default=0.5, help="share of the budget for the final run, the model that is "
                       "served; the folds, which only score held-out pairs, share the rest (default 0.5)")
        r.add_argument("--steps", type=int, default=None, help="cap on optimizer steps per run (default: the budget decides)")
        r.add_argument("--folds", type=int, default=3, help="folds of held-out labelled pairs (leave-one-pair-out with fewer "
                       "pairs; default 3)")
        r.add_argument("--size", type=_size, default=128, help="crop side at native resolution, a multiple of 16 (default 128)")
        r.add_argument("--lr", type=float, default=3e-4, help="peak learning rate of the decoder and bottleneck (default 3e-4)")
        r.add_argument("--encoder-lr", type=float, default=0.0, help="the encoder's rate as a share of --lr; 0 freezes it (default 0)")
        r.add_argument("--frozen-norm", action="store_true", help="keep the checkpoint's BatchNorm statistics instead of letting "
                       "them follow the adaptation mix (measured worse on the target domain: benchmarks/ADAPT.md)")
        r.add_argument("--replay-share", type=float, default=0.3, help="share of training crops from the checkpoint's own training "
                       "data, so old domains are not forgotten; 0 turns replay off (default 0.3)")
        r.add_argument("--replay-pairs", type=int, default=128, help="pairs drawn from that data (default 128)")
        r.add_argument("--calibrate-old", type=int, default=20, metavar="N", help="refit the adapted model's threshold for the "
                       "old domains ('generic') on N training pairs of each that replay did not use (0: keep the old one; default 20)")
        r.add_argument("--check-old", type=int, default=20, metavar="N", help="report forgetting: F1 before and after on the first N "
                       "validation pairs of each old domain the checkpoint trained on that can be read here (0: skip; default 20)")
        r.add_argument("--no-route", dest="route", action="store_false", help="serve the adapted model for every pair; by default "
                       "the served checkpoint routes each pair by its look: the adapted head for pairs like the labelled ones, the old "
                       "head (unchanged) for pairs like the old domains' (benchmarks/ADAPT.md measures both)")
        r.add_argument("--align", choices=MODES, default="auto", help="alignment when held-out pairs are predicted, as predict "
                       "and the app do (default auto)")
        r.add_argument("--domain", default=None, help="name the domain's threshold is recorded under (default: the labels' folder name)")
        r.add_argument("--name", default=None, help="install the chosen checkpoint into $ANODFDNET_CHECKPOINT_DIR (or checkpoints/) "
                       "as anodfdnet-NAME.safetensors, where the app's model menu finds it")
        r.add_argument("--force", action="store_true", help="with --name: install the adapted model even when it was not better "
                       "on held-out pairs")
        r.add_argument("--device", default="auto")
        r.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: one per core)")
        r.add_argument("--seed", type=int, default=0)
        r.add_argument("--labels-policy", choices=("latest", "consensus", "accepted"), default="latest",
                       help="which labels of a label dataset train: latest (every annotator's latest answer per pair), consensus "
                       "(per pair with --labels-per-pair answers, their per-pixel majority), accepted (masks reviewers accepted "
                       "or corrected); default latest")
        r.add_argument("--min-agreement", type=float, default=None, metavar="X",
                       help="leave out pairs whose annotators' masks agree less than X (mean pairwise IoU, 0 to 1); latest and consensus")
        r.add_argument("--labels-per-pair", type=labels_k, default=None, metavar="K",
                       help="answers a pair needs for a consensus (default $ANODFDNET_LABELS_PER_PAIR, else 1)")

    sub.add_parser("models", help="parameter counts and FLOPs of every preset and depth")
    sub.add_parser("specs", help="the data SPEC syntax")
    return p


def cmd_train(a) -> int:
    from .train import TrainConfig, model_choice, train

    arch, preset, depth, bottleneck = model_choice(a.arch, a.preset, a.depth, a.init, a.bottleneck)
    cfg = TrainConfig(data=a.data, out=a.out, val=a.val, val_fraction=a.val_fraction, arch=arch, preset=preset, depth=depth,
                      bottleneck=bottleneck, objective=a.objective,
                      size=a.size, mode="crop" if a.crop else "resize", eval_size=a.eval_size, epochs=a.epochs,
                      steps_per_epoch=a.steps_per_epoch, batch=a.batch, recipe=a.recipe, lr=a.lr, loss=a.loss, init=a.init,
                      pretrained=a.pretrained, prior=a.prior, precision=a.precision, cache=a.cache, budget_minutes=a.budget_minutes,
                      augment=a.augment, threads=a.threads, device=a.device, seed=a.seed, workers=a.workers, val_limit=a.val_limit,
                      save_every=a.save_every, align=a.align)
    print(f"best checkpoint: {train(cfg)}")
    return 0


def cmd_evaluate(a) -> int:
    from .evaluate import evaluate_checkpoint

    evaluate_checkpoint(a.checkpoint, a.data, size=a.size, threshold=a.threshold, limit=a.limit, device=a.device, path=a.path,
                        json_out=a.json, roc_out=a.roc, align=a.align)
    return 0


def cmd_predict(a) -> int:
    from .predict import predict_files

    predict_files(a.checkpoint, history=a.history, current=a.current, out=a.out, heatmap=a.heatmap, data=a.data,
                  out_dir=a.out_dir, threshold=a.threshold, size=a.size, device=a.device, path=a.path, batch=a.batch,
                  workers=a.workers, align=a.align, lanes=a.lanes)
    return 0


def cmd_inspect(a) -> int:
    from .inspect import InspectConfig, inspect_archive
    from .inspect.run import print_summary

    s = inspect_archive(InspectConfig(data=a.data, out=a.out, checkpoint=a.checkpoint, engine=a.engine, address=a.address,
                                      threshold=a.threshold, size=a.size, device=a.device, path=a.path, align=a.align,
                                      batch=a.batch, workers=a.workers, lanes=a.lanes, cpus=a.cpus, cpus_per_worker=a.cpus_per_worker,
                                      gpus_per_worker=a.gpus_per_worker, limit=a.limit, report_rows=a.report_rows,
                                      to_queue=a.to_queue, top=a.top, rank=a.rank))
    print_summary(s)
    return 0


def cmd_export(a) -> int:
    from .inference.onnx_export import export_checkpoints

    export_checkpoints(a.checkpoint, a.out)
    return 0


def cmd_adapt(a) -> int:
    from .adaptation import AdaptConfig, adapt

    if a.command == "retrain":
        print("note: retrain is now adapt (the same command and options).", file=sys.stderr)
    adapt(AdaptConfig(labels=a.labels, out=a.out, init=a.init, budget_minutes=a.budget_minutes, steps=a.steps, folds=a.folds,
                      size=a.size, lr=a.lr, encoder_lr=a.encoder_lr, frozen_norm=a.frozen_norm, replay_share=a.replay_share, replay_pairs=a.replay_pairs, check_old=a.check_old, route=a.route,
                      final_share=a.final_share, calibrate_old=a.calibrate_old,
                      align=a.align, labels_policy=a.labels_policy, min_agreement=a.min_agreement,
                      labels_per_pair=a.labels_per_pair, domain=a.domain, name=a.name, force=a.force, device=a.device,
                      threads=a.threads, seed=a.seed))
    return 0


def cmd_models(a) -> int:
    from .models import describe

    print(describe())
    return 0


def cmd_specs(a) -> int:
    from .data import spec_help

    print(spec_help())
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "inspect": cmd_inspect, "export": cmd_export, "adapt": cmd_adapt, "retrain": cmd_adapt,
            "models": cmd_models, "specs": cmd_specs}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
