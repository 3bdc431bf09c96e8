"""Command line of the benchmarks: ``python -m benchmarks speed | paths | accuracy | budget | training | slider | align | adapt | i2c | inspect | routes | gil``
(parse and dispatch).

Errors a user can cause print one sentence on stderr and exit with code 2, as in ``python -m anodfdnet``.
"""
from __future__ import annotations

import sys

from anodfdnet.cli import Parser
from anodfdnet.errors import UserError

from . import accuracy, adapt, align, archive_scale, budget, gil_share, i2c, inspect_bench, paths, routes, slider, speed, training


def build_parser() -> Parser:
    p = Parser(prog="python -m benchmarks", description="Measure speed or accuracy against the baselines; write a report under benchmarks/.")
    sub = p.add_subparsers(dest="which", required=True, parser_class=Parser)
    speed.add_arguments(sub.add_parser("speed", help="latency, throughput, memory, matmul rate, app render, label save, predict over a folder"))
    paths.add_arguments(sub.add_parser("paths", help="every inference path's speed and its F1 against fp32 eager on the validation sets"))
    accuracy.add_arguments(sub.add_parser("accuracy", help="the full protocol at an equal number of steps (a GPU's worth): train and evaluate every method over seeds; write benchmarks/ACCURACY_STEPS.md"))
    budget.add_arguments(sub.add_parser("budget", help="methods at an equal CPU budget (the app's default was chosen so); write benchmarks/ACCURACY.md"))
    training.add_arguments(sub.add_parser("training", help="training steps/s and pairs/s before and after the CPU-hour work; write benchmarks/TRAINING.md"))
    slider.add_arguments(sub.add_parser("slider", help="threshold slider latency in a real browser; write benchmarks/SLIDER.md"))
    adapt.add_arguments(sub.add_parser("adapt", help="adaptation to a domain the model never saw (k labels, CPU budgets, seeds, forgetting); write benchmarks/ADAPT.md"))
    i2c.add_arguments(sub.add_parser("i2c", help="FOD's I2Correlation against the Transformer and none, unsupervised against supervised and the classical baseline, under controlled viewpoint changes; write benchmarks/I2C.md"))
    inspect_bench.add_arguments(sub.add_parser("inspect", help="batch inspection: local engine against Ray, RSS, model-only rate, a 10-node estimate; write benchmarks/INSPECT.md"))
    archive_scale.add_arguments(sub.add_parser("archive-scale", help="a large archive outside the model: the results journal, table and ranking at 100,000 and 1,000,000 rows, a 1,000,000-line manifest, Ray over it; write benchmarks/ARCHIVE_SCALE.md"))
    routes.add_arguments(sub.add_parser("routes", help="effnet-d2 against half of Unet-cat's time on the CPU: where its time goes and every remaining route (int8, compile, fp32 depthwise); write benchmarks/ROUTES.md"))
    gil_share.add_arguments(sub.add_parser("gil", help="how much of a pair's CPU steps hold Python's GIL (Linux perf): the local engine's ceiling on many cores; write benchmarks/GIL.md"))
    align.add_arguments(sub.add_parser("align", help="alignment's time, geometry and F1 with --align off against auto; write benchmarks/ALIGN.md"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"speed": speed.main, "paths": paths.main, "accuracy": accuracy.main, "budget": budget.main,
                "training": training.main, "slider": slider.main, "align": align.main, "adapt": adapt.main,
                "i2c": i2c.main, "inspect": inspect_bench.main, "routes": routes.main,
                "archive-scale": archive_scale.main, "gil": gil_share.main}[args.which](args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
