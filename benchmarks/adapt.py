"""Adaptation to a domain the model never saw (``python -m anodfdnet adapt``), leave-one-domain-out.

    python -m benchmarks adapt --run [--targets tunnel levir] [--k 1 3 5 10] [--budgets 2 5 10] [--seeds 0 1 2]
                               [--variants default] [--jobs 2] [--work ~/runs/adapt-bench] [--base-tunnel CKPT]
    python -m benchmarks adapt             # writes benchmarks/ADAPT.md and benchmarks/adapt.json from what has run
    python -m benchmarks adapt --interpolate levir/default/k5-b10-s0 [--alphas 1 0.5 0.3]

Targets (the pairs of ``../shared/data``):

- ``tunnel``: the tunnel-lining pairs (``ba:``) for a model that never saw a tunnel: ``--base-tunnel``, an
  effnet-d2 trained like the shipped one on DeepPCB and generated pairs only (``checkpoints/train.sh`` without
  the tunnel data; the command is in ADAPT.md). The k labelled pairs are drawn from the tunnel training side,
  the test is the whole tunnel validation side. Reference: the shipped effnet-d2, which trained on the whole
  tunnel training side (and the rest).
- ``levir``: the 11 LEVIR-CD satellite crops for the shipped effnet-d2, which never saw a satellite image.
  Per seed a permutation of the 11: the first k are labelled (k <= 5), the last 6 are the test. No model
  trained on a LEVIR training set exists here, so there is no reference.

For every (target, k, CPU budget, seed, variant): ``adapt`` with those labels (one thread, the budget in CPU
minutes for all its runs), then on the test pairs the adapted model at its own threshold, the model the guard
chose (``served``: the adapted one, the old weights at the domain's threshold, or the old checkpoint), the old
checkpoint and the reference; and on the old domains (the base's validation sides, first 60 pairs each) the
adapted model at its refitted ``generic`` threshold (and at the old one) against the old model at the old
threshold: forgetting. Maps are made on the default inference path with ``--align auto``,
as ``predict`` and the app make them. Every run's figures go to ``WORK/results.jsonl``; a run already there is
not run again.

``--interpolate RUN`` (a run folder under ``--work``): the adapted model's weights interpolated toward the old
checkpoint's (``alpha`` * adapted + (1 - alpha) * old, BatchNorm statistics too; WiSE-FT), evaluated like a run
(the run's test pairs at the adapted threshold; the old domains, first 60 validation pairs, at the refitted
``generic`` threshold): how much of the target's gain survives for how much of the forgetting.
Appends to ``WORK/interpolate.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ANODFDNET_SHARED_DATA", REPO.parent / "shared" / "data"))
LEVIR_TEST = 6

VARIANTS = {  # AdaptConfig overrides; "default" is the command's defaults
    "default": {},
    "equal-split": {"final_share": 0.25, "calibrate_old": 0},  # the first design: 4 equal runs, old threshold kept
    "lr-1e-3": {"lr": 1e-3},
    "replay-0.15": {"replay_share": 0.15},
    "replay-0.5": {"replay_share": 0.5},
    "frozen-norm": {"frozen_norm": True},
    "frozen-norm-encoder-0.1": {"frozen_norm": True, "encoder_lr": 0.1},
    "frozen-norm-no-replay": {"frozen_norm": True, "replay_share": 0.0},
    "frozen-norm-lr-1e-3": {"frozen_norm": True, "lr": 1e-3},
}

@dataclass(frozen=True)
class Target:
    name: str
    pool: str
    test: str | None  # None: the last LEVIR_TEST pairs of each seed's permutation of the pool
    base: str
    reference: str | None
    old: tuple[str, ...]
    unseen: tuple[str, ...] = ()  # sites neither the old checkpoint nor the adaptation saw (a third site)


def targets(base_tunnel: str) -> dict[str, Target]:
    deeppcb, tunnel = f"deeppcb:{SHARED}/deeppcb/trainval.txt", f"ba:{SHARED}/tunnel_synthetic"
    return {
        "tunnel": Target("tunnel", f"{tunnel}@train", f"{tunnel}@val", base_tunnel, "effnet-d2",
                         (f"{deeppcb}@val", "synth:2000@val"), (f"ab:{SHARED}/levir_samples",)),
        "levir": Target("levir", f"ab:{SHARED}/levir_samples", None, "effnet-d2", None,
                        (f"{deeppcb}@val", f"{tunnel}@val", "synth:2000@val")),
    }


def _permutation(n: int, seed: int) -> list[int]:
    import numpy as np

    return np.random.default_rng(1000 + seed).permutation(n).tolist()


def picks(target: Target, pool_size: int, k: int, seed: int) -> tuple[list[int], list[int] | None]:
    """(labelled pool indices, test pool indices or None when the test is its own SPEC); nested in k."""
    order = _permutation(pool_size, seed)
    if target.test is None:
        if k > pool_size - LEVIR_TEST:
            raise ValueError(f"{target.name}: k={k} leaves fewer than {LEVIR_TEST} test pairs")
        return sorted(order[:k]), sorted(order[-LEVIR_TEST:])
    return sorted(order[:k]), None


def _metrics(checkpoint, source, limit=None):
    """(PixelMetrics, threshold) of a checkpoint on a source: default path, align auto, its eval size."""
    import torch

    from anodfdnet.checkpoint import load_checkpoint
    from anodfdnet.evaluate import accumulate
    from anodfdnet.inference.runtime import build_runtime

    dev = torch.device("cpu")
    model, info = load_checkpoint(checkpoint, dev)
    acc = accumulate(model, source, info.eval_size, dev, limit=limit, progress=False,
                     forward=build_runtime(model, info.path, dev, "auto"), align="auto")
    return acc, info.threshold


def _at(acc, threshold: float) -> dict:
    m = acc.compute()
    return {"f1": acc.at(threshold)["f1"], "iou": acc.at(threshold)["iou"], "threshold": threshold, "auc": m["auc"],
            "pairs": acc.pairs}


def run_one(job: dict) -> dict:
    """One adaptation and its evaluation (runs in a worker process with one thread)."""
    import torch

    torch.set_num_threads(1)
    from anodfdnet.adaptation import AdaptConfig, adapt
    from anodfdnet.checkpoint import read_info, resolve
    from anodfdnet.data import Subset, parse_spec

    t = Target(**job["target"])
    pool = parse_spec(t.pool)
    labelled, test_idx = picks(t, len(pool), job["k"], job["seed"])
    spec = f"{t.pool}#pick(k={job['k']},seed={job['seed']})"
    source = Subset(pool, labelled, spec)
    test = Subset(pool, test_idx, f"{t.pool}#test(seed={job['seed']})") if test_idx is not None else parse_spec(t.test)
    out = Path(job["out"])
    cfg = AdaptConfig(labels=spec, out=str(out), init=t.base, budget_minutes=job["budget"], seed=job["seed"], threads=1,
                      progress=False, domain=t.name, check_old=0, **VARIANTS[job["variant"]])  # old domains: below, 60 pairs
    t0 = time.process_time()
    report = adapt(cfg, source=source)
    adapt_cpu = time.process_time() - t0
    base = read_info(resolve(t.base))
    served = report["best"] or str(resolve(t.base))
    acc_adapted, th_adapted = _metrics(report["adapted"], test)
    row = {**{k: job[k] for k in ("target", "k", "budget", "seed", "variant")}, "choice": report["choice"],
           "heldout": {k: v["f1"] for k, v in report["heldout"].items()}, "adapt_cpu_minutes": round(adapt_cpu / 60, 2),
           "test_adapted": _at(acc_adapted, th_adapted)}
    row["test_served"] = row["test_adapted"] if report["choice"] == "adapted" else _at(*_metrics(served, test))
    row["old"] = {}
    generic = read_info(report["adapted"]).meta.get("domain_thresholds", {}).get("generic", base.threshold)
    for spec_old in t.old:
        acc, _ = _metrics(report["adapted"], parse_spec(spec_old), limit=60)
        row["old"][spec_old] = {**_at(acc, generic), "f1_at_old_threshold": acc.at(base.threshold)["f1"]}
    row["target"] = t.name
    return row


def baselines(t: Target, seeds: list[int]) -> dict:
    """The old checkpoint and the reference on the test pairs (per seed for LEVIR) and the old one on the old domains."""
    from anodfdnet.data import Subset, parse_spec

    pool = parse_spec(t.pool)
    out = {"test": {}, "old": {}}
    for seed in seeds if t.test is None else [None]:
        test = parse_spec(t.test) if seed is None else Subset(pool, picks(t, len(pool), 1, seed)[1], f"{t.pool}#test(seed={seed})")
        key = "all" if seed is None else str(seed)
        out["test"][key] = {"base": _at(*_metrics(t.base, test))}
        if t.reference:
            out["test"][key]["reference"] = _at(*_metrics(t.reference, test))
    for spec_old in t.old:
        out["old"][spec_old] = _at(*_metrics(t.base, parse_spec(spec_old), limit=60))
    return out


def _finished_run(work: Path, run: str, tg: dict[str, Target], option: str):
    """(folder, target, k, budget, seed, variant, pool, labelled indices, test source) of a finished run folder
    ``TARGET/VARIANT/kK-bB-sS`` under ``work``; a UserError naming ``option`` otherwise."""
    import re

    from anodfdnet.data import Subset, parse_spec
    from anodfdnet.errors import UserError

    m = re.fullmatch(r"(tunnel|levir)/([\w.-]+)/k(\d+)-b([\d.]+)-s(\d+)", run.strip("/"))
    folder = work / run
    if m is None or not (folder / "adapted.safetensors").is_file():
        raise UserError(f"{option} '{run}': expected a finished run folder TARGET/VARIANT/kK-bB-sS under {work}.")
    t, k, seed = tg[m.group(1)], int(m.group(3)), int(m.group(5))
    pool = parse_spec(t.pool)
    labelled, test_idx = picks(t, len(pool), k, seed)
    test = Subset(pool, test_idx, f"{t.pool}#test(seed={seed})") if test_idx is not None else parse_spec(t.test)
    return folder, t, k, float(m.group(4)), seed, m.group(2), pool, labelled, test


def interpolate(work: Path, run: str, alphas: list[float], tg: dict[str, Target]) -> None:
    """WiSE-FT rows for one run folder (``target/variant/kK-bB-sS``): see the module's docstring."""
    from anodfdnet.checkpoint import load_checkpoint, read_info
    from anodfdnet.data import parse_spec

    folder, t, _, _, _, _, _, _, test = _finished_run(work, run, tg, "--interpolate")
    info = read_info(folder / "adapted.safetensors")
    generic = info.meta.get("domain_thresholds", {}).get("generic", info.threshold)
    old_model, _ = load_checkpoint(t.base)
    adapted, _ = load_checkpoint(folder / "adapted.safetensors")
    sa, so = adapted.state_dict(), old_model.state_dict()
    for alpha in alphas:
        mixed = {n: (alpha * sa[n].float() + (1 - alpha) * so[n].float()).to(so[n].dtype) if so[n].is_floating_point()
                 else sa[n] for n in so}
        path = folder / f"interpolated-{alpha:g}.safetensors"
        from anodfdnet.checkpoint import save_checkpoint

        adapted.load_state_dict(mixed)
        save_checkpoint(path, adapted, dict(info.meta))
        row = {"run": run, "alpha": alpha, "test": _at(_metrics(path, test)[0], info.threshold), "old": {}}
        for spec_old in t.old:
            acc, _ = _metrics(path, parse_spec(spec_old), limit=60)
            row["old"][spec_old] = _at(acc, generic)
        path.unlink()
        with open(work / "interpolate.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{run} alpha {alpha:g}: test F1 {100 * row['test']['f1']:.1f}; old "
              + ", ".join(f"{s.split('/')[-1]} {100 * v['f1']:.1f}" for s, v in row["old"].items()), flush=True)


def route(work: Path, run: str, tg: dict[str, Target]) -> dict:
    """The routed checkpoint ``adapt`` now serves, built after the fact from a finished run folder
    (``target/variant/kK-bB-sS``): its adapted model and the old checkpoint behind one encoder, references from
    the run's labelled pairs and the old domains' calibration pairs (as ``adapt`` draws them), evaluated like a
    run: the test pairs, the old domains (first 60 validation pairs) at the adapted threshold, and the share of
    each set routed to the head it belongs to. One row per run in ``WORK/routed.jsonl``."""
    from anodfdnet.adaptation.replay import calibration_pool
    from anodfdnet.adaptation.routing import routed_model, routing_accuracy
    from anodfdnet.checkpoint import read_info, resolve, save_checkpoint
    from anodfdnet.data import Subset, parse_spec

    folder, t, k, budget, seed, variant, pool, labelled, test = _finished_run(work, run, tg, "--route")
    spec = f"{t.pool}#pick(k={k},seed={seed})"
    adapted = folder / "adapted.safetensors"
    info, base = read_info(adapted), read_info(resolve(t.base))
    calibration = calibration_pool(list(base.meta.get("data", [])), 20, 128, seed, {spec})
    routed = routed_model(adapted, resolve(t.base), Subset(pool, labelled, spec), range(k), calibration, info.threshold,
                          base.threshold, "auto")
    path = save_checkpoint(folder / "routed.safetensors", routed, {
        **info.meta, "routing": {"references": int(routed.references.shape[0]), "dim": int(routed.references.shape[1])}})
    size = info.eval_size
    row = {"run": run, "target": t.name, "k": k, "budget": budget, "seed": seed, "variant": variant,
           "references": {"target": k, "old": len(calibration)},
           "test": _at(_metrics(path, test)[0], info.threshold),
           "test_routed_to_target": routing_accuracy(routed, test, range(len(test)), True, "auto", size), "old": {}}
    for spec_old in t.old:
        src = parse_spec(spec_old)
        n = min(60, len(src))
        row["old"][spec_old] = {**_at(_metrics(path, src, limit=60)[0], info.threshold),
                                "routed_to_old": routing_accuracy(routed, src, range(n), False, "auto", size)}
    with open(work / "routed.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"{run} routed: test F1 {100 * row['test']['f1']:.1f} ({100 * row['test_routed_to_target']:.0f} % to the adapted head); old "
          + ", ".join(f"{s.split('/')[-1]} {100 * v['f1']:.1f} ({100 * v['routed_to_old']:.0f} % to the old head)"
                      for s, v in row["old"].items()), flush=True)
    return row


def unseen(work: Path, run: str, tg: dict[str, Target]) -> dict:
    """A third site through a routed run (``--route`` first): pairs of a site neither the old checkpoint nor the
    adaptation saw (the tunnel runs: LEVIR), through the routed checkpoint, the adapted one and the old one, each at
    its own threshold; where they were routed and how near the nearest reference of each head was, beside the
    same similarities for the run's own test pairs and the old domains. One row per run in ``WORK/unseen.jsonl``."""
    from anodfdnet.adaptation.routing import similarities
    from anodfdnet.checkpoint import load_checkpoint, read_info, resolve
    from anodfdnet.data import parse_spec
    from anodfdnet.errors import UserError

    folder, t, k, budget, seed, variant, pool, labelled, test = _finished_run(work, run, tg, "--unseen")
    routed_path = folder / "routed.safetensors"
    if not routed_path.is_file():
        raise UserError(f"--unseen '{run}': no routed checkpoint there yet: run --route {run} first.")
    if not t.unseen:
        raise UserError(f"--unseen '{run}': no site in ../shared is unseen by both heads of a {t.name} run.")
    routed, info = load_checkpoint(routed_path)
    adapted, base = folder / "adapted.safetensors", resolve(t.base)
    t_adapted, t_old = read_info(adapted).threshold, read_info(base).threshold
    size = info.eval_size

    def nearest(src, n) -> dict:
        sim = similarities(routed, src, range(n), size, "auto")
        tgt = sim[:, routed.reference_is_target].max(dim=1).values
        old = sim[:, ~routed.reference_is_target].max(dim=1).values
        return {"to_target": float((tgt > old).float().mean()), "best_target": tgt.tolist(), "best_old": old.tolist()}

    row = {"run": run, "target": t.name, "k": k, "budget": budget, "seed": seed, "variant": variant, "sites": {},
           "own_test": nearest(test, min(30, len(test))),
           "old": {s: nearest(src, min(30, len(src))) for s, src in ((s, parse_spec(s)) for s in t.old)}}
    for spec in t.unseen:
        src = parse_spec(spec)
        row["sites"][spec] = {"routed": _at(_metrics(routed_path, src)[0], t_adapted),
                              "adapted": _at(_metrics(adapted, src)[0], t_adapted),
                              "old": _at(_metrics(base, src)[0], t_old), **nearest(src, len(src))}
    with open(work / "unseen.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    for spec, v in row["sites"].items():
        print(f"{run} on {spec.split('/')[-1]}: routed F1 {100 * v['routed']['f1']:.1f} ({100 * v['to_target']:.0f} % to the adapted "
              f"head), adapted {100 * v['adapted']['f1']:.1f}, old {100 * v['old']['f1']:.1f}", flush=True)
    return row


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", action="store_true", help="run the adaptations that are missing (else only write the report)")
    p.add_argument("--targets", nargs="+", default=["tunnel", "levir"], choices=["tunnel", "levir"])
    p.add_argument("--k", nargs="+", type=int, default=[1, 3, 5, 10], help="labelled target pairs (LEVIR: at most 5)")
    p.add_argument("--budgets", nargs="+", type=float, default=[2, 5, 10], help="CPU minutes of adaptation")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=["default"], choices=sorted(VARIANTS))
    p.add_argument("--jobs", type=int, default=1, help="adaptations at once, one thread each")
    p.add_argument("--work", default=str(Path.home() / "runs" / "adapt-bench"), help="run folders and results.jsonl")
    p.add_argument("--base-tunnel", default=str(Path.home() / "runs" / "adapt" / "generic-notunnel-d2" / "best.safetensors"),
                   help="the effnet-d2 trained without tunnel pairs")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "ADAPT.md"))
    p.add_argument("--interpolate", metavar="RUN", help="a run folder under --work (TARGET/VARIANT/kK-bB-sS): its adapted "
                   "weights interpolated toward the old checkpoint's at each --alphas (WiSE-FT), evaluated like a run")
    p.add_argument("--alphas", nargs="+", type=float, default=[1.0, 0.5, 0.3], help="weights of the adapted model")
    p.add_argument("--route", nargs="+", metavar="RUN", help="run folders under --work (TARGET/VARIANT/kK-bB-sS) made before "
                   "adapt routed by domain: each one's routed checkpoint, evaluated like a run (WORK/routed.jsonl)")
    p.add_argument("--unseen", nargs="+", metavar="RUN", help="routed run folders (after --route): a site neither head saw "
                   "(LEVIR for the tunnel runs) through the routed, adapted and old checkpoints (WORK/unseen.jsonl)")
    p.add_argument("--design-work", default=str(Path.home() / "runs" / "adapt-design"),
                   help="the design ablation's work folder (run with --variants and --base-tunnel set to the early snapshot)")
    p.add_argument("--design-base", default="generic-notunnel-d2, step 2,400", help="what the design runs started from")


def main(args) -> int:
    from anodfdnet.errors import UserError

    work = Path(args.work).expanduser()
    work.mkdir(parents=True, exist_ok=True)
    tg = targets(args.base_tunnel)
    if args.interpolate:
        interpolate(work, args.interpolate, args.alphas, tg)
    for run in args.route or []:
        route(work, run, tg)
    for run in args.unseen or []:
        unseen(work, run, tg)
    if args.run:
        if "tunnel" in args.targets and not Path(args.base_tunnel).expanduser().is_file():
            raise UserError(f"--base-tunnel '{args.base_tunnel}' is not a file: train it first (the command is in ADAPT.md).")
        _run(args, work, tg)
    results = [json.loads(line) for line in (work / "results.jsonl").read_text().splitlines()] if (work / "results.jsonl").exists() else []
    base_figs = json.loads((work / "baselines.json").read_text()) if (work / "baselines.json").exists() else {}
    from .adapt_report import write_report

    design = None
    if args.design_work and (Path(args.design_work).expanduser() / "results.jsonl").exists():
        d = Path(args.design_work).expanduser()
        design = ([json.loads(line) for line in (d / "results.jsonl").read_text().splitlines()],
                  json.loads((d / "baselines.json").read_text()), args.design_base)
    interp = [json.loads(line) for line in (work / "interpolate.jsonl").read_text().splitlines()] if (work / "interpolate.jsonl").exists() else []
    routed = [json.loads(line) for line in (work / "routed.jsonl").read_text().splitlines()] if (work / "routed.jsonl").exists() else []
    unseen_rows = [json.loads(line) for line in (work / "unseen.jsonl").read_text().splitlines()] if (work / "unseen.jsonl").exists() else []
    write_report(results, base_figs, Path(args.out), args.base_tunnel, design, interp, routed, unseen_rows)
    return 0


def _run(args, work: Path, tg: dict[str, Target]) -> None:
    import multiprocessing as mp
    from dataclasses import asdict

    bl_path = work / "baselines.json"
    base_figs = json.loads(bl_path.read_text()) if bl_path.exists() else {}
    for name in args.targets:
        if name not in base_figs:
            print(f"baselines of {name} ...", flush=True)
            base_figs[name] = baselines(tg[name], [0, 1, 2])
            bl_path.write_text(json.dumps(base_figs, indent=1) + "\n")
    done_path = work / "results.jsonl"
    done = set()
    if done_path.exists():
        for line in done_path.read_text().splitlines():
            r = json.loads(line)
            done.add((r["target"], r["k"], r["budget"], r["seed"], r["variant"]))
    jobs = []
    for variant in args.variants:
        for name in args.targets:
            for k in args.k:
                if name == "levir" and k > 11 - LEVIR_TEST:
                    continue
                for budget in args.budgets:
                    for seed in args.seeds:
                        if (name, k, budget, seed, variant) in done:
                            continue
                        out = work / name / variant / f"k{k}-b{budget:g}-s{seed}"
                        jobs.append({"target": asdict(tg[name]), "k": k, "budget": budget, "seed": seed, "variant": variant, "out": str(out)})
    print(f"{len(jobs)} adaptation(s) to run, {args.jobs} at a time", flush=True)
    ctx = mp.get_context("spawn")
    with ctx.Pool(max(1, args.jobs), maxtasksperchild=1) as pool, open(done_path, "a") as log:
        for row in pool.imap_unordered(run_one, jobs):
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(f"{row['target']} k={row['k']} budget={row['budget']:g} seed={row['seed']} {row['variant']}: "
                  f"adapted F1 {100 * row['test_adapted']['f1']:.1f}, served ({row['choice']}) {100 * row['test_served']['f1']:.1f}",
                  flush=True)


def mean_std(values: list[float]) -> tuple[float, float]:
    return (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
