"""``python -m anodfdnet adapt``: a checkpoint adapted to one domain's labelled pairs, checked on held-out ones.

1. The labelled pairs (``targets``) are split into folds (leave-one-pair-out up to ``folds`` pairs).
2. For each fold, the checkpoint is fine-tuned (``train``, one run folder each) on the other folds' pairs
   mixed with a replay share of its own training mix (``replay``): native-resolution crops, half of them
   over a labelled anomaly, the eight symmetries of the square, the photometric and viewpoint nuisance;
   the encoder frozen by default (``encoder_lr``), so backpropagation stops at the differences. The fold's
   model then predicts the held-out fold.
3. The same fine-tuning on every labelled pair gives the adapted model.
4. ``choice`` scores the candidates (``before``, ``threshold``, ``adapted``) on held-out pairs by
   cross-fitting, fits the adapted model's threshold on all held-out maps, and chooses.

5. The old domains' threshold (``generic``) is fitted again for the adapted model on training pairs of the old
   domains that replay did not use (``calibration_pool``): adaptation shifts the probabilities the old
   threshold was fitted to.

The CPU-time budget covers the training of all runs: the final run takes ``final_share`` of it (half by
default) and the folds share the rest equally, so the served model trains longest and the held-out scores come
from shorter fold runs (a conservative estimate of it); the run folder resumes (each run from its ``resume.pt``) when the same command is run again. Outputs in ``out``:
``adapted.safetensors`` (the fine-tuned model, its threshold and per-domain thresholds in the metadata),
``threshold.safetensors`` (the old weights with the domain's threshold), ``report.json`` and, unless the
old checkpoint was kept, ``best.safetensors``: the chosen one. ``name`` installs the chosen one where the
app finds it; when ``before`` wins nothing is installed (the old checkpoint stays the default) unless
``force``.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..checkpoint import ENV_DIR, SHIPPED_DIR, load_checkpoint, read_info, resolve, save_checkpoint
from ..data.pair_cache import cached
from ..device import pick_device
from ..errors import UserError
from ..evaluate import accumulate
from ..inference.runtime import build_runtime
from ..metrics import PixelMetrics
from ..train import TrainConfig, train
from .choice import CANDIDATES, MIN_GAIN, HeldOut, choose, cross_fitted, fitted_threshold, pooled
from .replay import Mixture, calibration_pool, old_domains, replay_pool
from .routing import routed_model, routing_accuracy
from .targets import labelled_pairs, make_folds, subset, target_spec

STEPS_PER_EPOCH = 50  # steps between the saves a run resumes from


@dataclass
class AdaptConfig:
    labels: str  # a label dataset (folder or Hub id) or any data SPEC with masks
    out: str
    init: str = "effnet-d2"
    budget_minutes: float = 5.0  # CPU time for all the training (folds + 1 runs)
    steps: int | None = None  # cap on optimizer steps per run (None: the budget decides)
    folds: int = 3
    size: int = 128  # crop side, at native resolution
    batch: int = 4
    lr: float = 3e-4
    encoder_lr: float = 0.0  # the encoder's rate as a share of lr; 0 = frozen
    frozen_norm: bool = False  # True: BatchNorm statistics kept from the checkpoint (train.keep_norm_statistics);
    #                           by default they follow the adaptation mix (measured better: benchmarks/ADAPT.md)
    replay_share: float = 0.3
    replay_pairs: int = 128
    final_share: float = 0.5  # of the budget, for the final run when there are folds (the folds share the rest)
    calibrate_old: int = 20  # training pairs of each old domain, unused by replay, that refit the generic threshold (0: keep it)
    check_old: int = 20  # validation pairs of each old domain on which forgetting is reported (0: none)
    route: bool = True  # serve the adapted head only for pairs like the labelled ones, the old head otherwise (routing.py)
    align: str = "auto"  # alignment when the held-out pairs are predicted (as served)
    labels_policy: str = "latest"
    min_agreement: float | None = None
    labels_per_pair: int | None = None
    domain: str | None = None  # the name the domain's threshold is recorded under (default: from labels)
    name: str | None = None  # install the chosen checkpoint as anodfdnet-NAME.safetensors
    force: bool = False  # install the adapted model even when it did not win
    min_gain: float = MIN_GAIN
    device: str = "auto"
    threads: int | None = None
    seed: int = 0
    progress: bool = True
    extra_meta: dict = field(default_factory=dict)


def domain_name(labels: str) -> str:
    """A short name for the domain: the label folder's, dataset's or data folder's name."""
    where = labels.split("?", 1)[0]
    scheme, colon, rest = where.partition(":")
    if colon and "/" not in scheme:
        where = rest or scheme
    name = Path(where.rstrip("/")).name or "domain"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name.split("@")[0]).strip("-.") or "domain"
    return name[:48]


def _per_pair(model_ref, source, indices, info_size, device, align) -> dict[int, PixelMetrics]:
    """Each listed pair's pixel metrics under a checkpoint, on the path predict and the app use by default."""
    model, info = load_checkpoint(model_ref, device)
    forward = build_runtime(model, info.path, device, "auto")
    size = info.eval_size if info_size == "checkpoint" else info_size
    return {i: accumulate(model, subset(source, [i], f"pair{i}"), size, device, progress=False, forward=forward, align=align)
            for i in indices}


def _train_run(cfg: AdaptConfig, init_path: Path, source, indices: list[int], replay, folder: Path, minutes: float,
               tag: str, spec: str) -> Path:
    target = subset(source, indices, tag)
    mix = Mixture(target, replay, cfg.replay_share)
    per_epoch = STEPS_PER_EPOCH if cfg.steps is None else max(1, min(STEPS_PER_EPOCH, cfg.steps))
    epochs = 10**6 if cfg.steps is None else math.ceil(cfg.steps / per_epoch)
    tcfg = TrainConfig(data=[f"{spec}#{tag}"], out=str(folder), val=[], init=str(init_path), size=cfg.size, mode="crop",
                       batch=cfg.batch, epochs=epochs, steps_per_epoch=per_epoch, lr=cfg.lr, encoder_lr=cfg.encoder_lr,
                       rot90=True, frozen_norm=cfg.frozen_norm, augment="nuisance", budget_minutes=minutes if minutes > 0 else None, cache=True, workers=0,
                       threads=cfg.threads, device=cfg.device, seed=cfg.seed, progress=cfg.progress, save_every=0,
                       extra_meta={"adaptation_run": tag, "replay_share": round(mix.replay_share, 3)})
    info = read_info(init_path)
    tcfg.arch, tcfg.preset, tcfg.depth = info.config.arch, info.config.preset, info.config.depth
    tcfg.bottleneck = info.config.bottleneck  # the objective is supervised: adaptation learns from the labels
    return train(tcfg, sources=(mix, {}))


def _forgetting(before_ref, after_ref, threshold: float, refit: float, sets: dict, device, align: str,
                routed=None) -> dict:
    """F1 of the old model at the old threshold and of the adapted one at its refitted ``generic`` threshold
    (and at the old one) on each old domain's validation pairs; with ``routed`` (path, threshold), the routed
    checkpoint's F1 at its threshold and the share of these pairs it sent to the old head."""
    out = {}
    routed_model_, routed_size = None, None
    if routed is not None:
        routed_model_, info = load_checkpoint(routed[0], device)
        routed_size = info.eval_size
    for spec, src in sets.items():
        before = pooled(list(_per_pair(before_ref, src, range(len(src)), "checkpoint", device, align).values()))
        after = pooled(list(_per_pair(after_ref, src, range(len(src)), "checkpoint", device, align).values()))
        out[spec] = {"before": before.at(threshold)["f1"], "adapted": after.at(refit)["f1"],
                     "adapted_at_old_threshold": after.at(threshold)["f1"], "pairs": len(src), "threshold": threshold,
                     "refit_threshold": refit}
        if routed is not None:
            path, t = routed
            out[spec]["routed"] = pooled(list(_per_pair(path, src, range(len(src)), "checkpoint", device, align).values())).at(t)["f1"]
            out[spec]["routed_to_old"] = routing_accuracy(routed_model_, src, range(len(src)), False, align, routed_size)
    return out


def _write(model_ref, path: Path, meta_update: dict) -> Path:
    model, info = load_checkpoint(model_ref)
    return save_checkpoint(path, model, {**info.meta, **meta_update})


def adapt(cfg: AdaptConfig, source=None) -> dict:
    """Run the adaptation; returns the report (also written to ``out/report.json``). ``source``: the labelled
    pairs as a built :class:`~anodfdnet.data.Source` (a benchmark's pick of k pairs), instead of ``cfg.labels``,
    which then only names them."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if cfg.budget_minutes is not None and cfg.budget_minutes <= 0 and cfg.steps is None:
        raise UserError("--budget-minutes must be positive (or give --steps).")
    if not 0.0 <= cfg.replay_share < 1.0:
        raise UserError(f"--replay-share must lie in [0, 1), got {cfg.replay_share}.")
    if cfg.folds < 2:
        raise UserError(f"--folds must be at least 2, got {cfg.folds}.")
    if not 0.0 < cfg.final_share < 1.0:
        raise UserError(f"--final-share must lie in (0, 1), got {cfg.final_share}.")
    if cfg.size <= 0 or cfg.size % 16:
        raise UserError(f"--size must be a positive multiple of 16, got {cfg.size}.")
    spec = target_spec(cfg.labels, cfg.labels_policy, cfg.min_agreement, cfg.labels_per_pair) if source is None else cfg.labels
    raw = labelled_pairs(spec) if source is None else source
    source = cached(raw)
    selections = raw.selections() if hasattr(raw, "selections") else {}  # a label dataset: what each policy keeps
    init_path = resolve(cfg.init)
    base = read_info(init_path)
    domain = cfg.domain or domain_name(cfg.labels)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)

    n = len(source)
    pair_keys = {source.key(i) for i in range(n)}
    folds = make_folds(source, cfg.folds) if len(pair_keys) >= 2 else []
    runs = len(folds) + 1
    budget = cfg.budget_minutes or 0
    final_minutes = budget * cfg.final_share if folds else budget
    minutes = (budget - final_minutes) / len(folds) if folds else budget  # each fold's
    replay, notes = replay_pool(list(base.meta.get("data", [])), cfg.replay_pairs, cfg.seed, exclude={spec})
    if cfg.replay_share == 0:
        replay, notes = None, ["replay: off (--replay-share 0)"]
    say = print if cfg.progress else (lambda *a, **k: None)
    say(f"adapting {base.name} to '{domain}': {n} labelled pair(s) of {spec}; {len(folds)} fold(s) + the final run, "
        + (f"{minutes:.2f} CPU-minutes each fold, {final_minutes:.2f} the final run" if folds and budget else
           f"{final_minutes:.2f} CPU-minutes" if budget else f"{cfg.steps} steps each")
        + f"; encoder {'frozen' if cfg.encoder_lr == 0 else f'at {cfg.encoder_lr:g}x the rate'}, replay share {cfg.replay_share:g}")
    for sel in selections.values():  # the policy in use is starred
        say(("* " if sel.policy == raw.policy else "  ") + sel.describe())
    for note in notes:
        say("  " + note)

    # Held-out maps: the old checkpoint on every pair (it never trained on them), each fold's model on its fold.
    before = _per_pair(init_path, source, range(n), "checkpoint", device, cfg.align)
    adapted: dict[int, PixelMetrics] = {}
    progress = lambda run, folder: (out / "progress.json").write_text(json.dumps(  # noqa: E731  (read by the app's job view)
        {"run": run, "runs": runs, "folder": folder, "minutes_per_run": minutes if run < runs else final_minutes,
         "steps_per_run": cfg.steps}) + "\n")
    for f, held in enumerate(folds):
        train_idx = [i for g, fold in enumerate(folds) if g != f for i in fold]
        progress(f + 1, f"fold-{f + 1}")
        say(f"run {f + 1}/{runs}: fold {f + 1}, training on {len(train_idx)} pair(s), holding out {len(held)}")
        best = _train_run(cfg, init_path, source, train_idx, replay, out / f"fold-{f + 1}", minutes, f"fold{f + 1}", spec)
        adapted.update(_per_pair(best, source, held, "checkpoint", device, cfg.align))
    progress(runs, "final")
    say(f"run {runs}/{runs}: the final model, training on all {n} pair(s)")
    final = _train_run(cfg, init_path, source, list(range(n)), replay, out / "final", final_minutes, "final", spec)

    results: dict[str, HeldOut] = {}
    if folds:
        by_fold = lambda d: [[d[i] for i in fold] for fold in folds]  # noqa: E731
        results["before"] = cross_fitted("before", by_fold(before), threshold=base.threshold)
        results["threshold"] = cross_fitted("threshold", by_fold(before))
        results["adapted"] = cross_fitted("adapted", by_fold(adapted))
        choice = choose(results, cfg.min_gain)
        t_domain = fitted_threshold(list(before.values()))
        t_adapted = fitted_threshold(list(adapted.values()))
    else:  # one pair: nothing to hold out, so nothing can show the adapted model is better
        choice, t_domain, t_adapted = "before", base.threshold, 0.5

    thresholds = dict(base.meta.get("domain_thresholds") or {"generic": base.threshold})
    old_specs = list(base.meta.get("data", []))
    calibration = calibration_pool(old_specs, cfg.calibrate_old, cfg.replay_pairs, cfg.seed, {spec})
    t_generic = thresholds.get("generic", base.threshold)
    if calibration is not None:
        say(f"refitting the old domains' threshold on {len(calibration)} of their training pairs not replayed")
        t_generic = fitted_threshold(list(_per_pair(final, calibration, range(len(calibration)), "checkpoint", device,
                                                    cfg.align).values()))
    routed_path, routing = None, None
    if cfg.route:
        try:
            routed = routed_model(final, init_path, source, range(n), calibration, t_adapted, base.threshold, cfg.align)
            routing = {"references": int(routed.references.shape[0]), "dim": int(routed.references.shape[1]),
                       "target_references": n, "old_references": int(routed.references.shape[0]) - n,
                       "base_shift": round(float(routed.base_shift), 4), "old_threshold": base.threshold,
                       "target_routed_right": (routing_accuracy(routed, source, range(n), True, cfg.align,
                                                                read_info(final).eval_size, leave_one_out=True) if n > 1 else None)}
            routed_path = save_checkpoint(out / "routed.safetensors", routed, {**read_info(final).meta, "routing": routing})
            say(f"routing: the adapted head for pairs like the {n} labelled one(s), the old head for pairs like "
                f"{routing['old_references']} of the old domains' (each labelled pair, left out, goes to the adapted head: "
                + (f"{100 * routing['target_routed_right']:.0f} %)" if routing["target_routed_right"] is not None else "not checked with 1 pair)"))
        except UserError as e:
            say(f"routing: not built: {e}")
    forgetting = _forgetting(init_path, final, base.threshold, t_generic, old_domains(old_specs, cfg.check_old, {spec}),
                             device, cfg.align, routed=(routed_path, t_adapted) if routed_path else None)
    summary = {"domain": domain, "from": str(cfg.init), "labels": cfg.labels, "labels_spec": spec,
               "labels_policy": getattr(raw, "policy", None), "pairs": n,
               "folds": len(folds), "choice": choice, "heldout": {k: v.as_dict() for k, v in results.items()},
               "old_domains": forgetting}
    common = {"domain": domain, "adaptation": summary, "retrained_from": str(cfg.init), "labels": cfg.labels, "labels_spec": spec,
              **cfg.extra_meta}
    heldout_metrics = lambda name, t: ({domain: {"f1": results[name].f1, "iou": results[name].iou,  # noqa: E731
                                                 "precision": results[name].precision, "recall": results[name].recall,
                                                 "pairs": n, "threshold": t, "kind": "held-out labelled pairs"}}
                                       if name in results else {})
    adapted_path = _write(final, out / "adapted.safetensors",
                          {**common, "threshold": t_adapted,
                           "domain_thresholds": {**thresholds, "generic": t_generic, domain: t_adapted},
                           "val_metrics": heldout_metrics("adapted", t_adapted), "candidate": "adapted"})
    if routed_path is not None:  # one threshold for both heads: the old head's logits are shifted to it
        routed_path = _write(routed_path, routed_path, {
            **common, "threshold": t_adapted, "routing": routing,
            "domain_thresholds": {**thresholds, "generic": t_adapted, domain: t_adapted},
            "val_metrics": heldout_metrics("adapted", t_adapted), "candidate": "adapted, routed by domain"})
    threshold_path = None
    if folds:
        threshold_path = _write(init_path, out / "threshold.safetensors",
                                {**common, "threshold": t_domain, "domain_thresholds": {**thresholds, domain: t_domain},
                                 "val_metrics": heldout_metrics("threshold", t_domain), "candidate": "threshold"})
    chosen_path = {"adapted": routed_path or adapted_path, "threshold": threshold_path}.get(choice)
    best = out / "best.safetensors"
    if chosen_path is not None:
        shutil.copyfile(chosen_path, best)
    elif best.exists():
        best.unlink()  # a rerun that now keeps the old checkpoint leaves no stale choice behind

    served = None
    install = adapted_path if (cfg.force and chosen_path is None) else chosen_path
    if cfg.name and install is not None:
        folder = Path(os.environ.get(ENV_DIR) or SHIPPED_DIR)
        folder.mkdir(parents=True, exist_ok=True)
        served = folder / f"anodfdnet-{cfg.name}.safetensors"
        tmp = served.with_name(served.name + ".tmp")
        shutil.copyfile(install, tmp)
        os.replace(tmp, served)  # the app lists the folder: it never sees half a file

    report = {**summary, "threshold": {"before": base.threshold, "domain": t_domain, "adapted": t_adapted,
                                       "generic_adapted": t_generic},
              "label_policies": {p: sel.as_dict() for p, sel in selections.items()}, "budget_cpu_minutes": cfg.budget_minutes, "runs": runs, "replay": notes,
              "cpu_minutes": round((time.process_time() - cpu0) / 60, 2), "wall_minutes": round((time.perf_counter() - wall0) / 60, 2),
              "adapted": str(adapted_path), "threshold_only": str(threshold_path) if threshold_path else None,
              "routed": str(routed_path) if routed_path else None, "routing": routing,
              "best": str(best) if chosen_path is not None else None, "installed": str(served) if served else None,
              "config": {k: v for k, v in asdict(cfg).items() if k not in ("progress", "extra_meta")}}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    say(describe(report, base.name))
    return report


def describe(report: dict, base_name: str) -> str:
    """The report as a person reads it: held-out F1 per candidate, the choice, what was installed."""
    lines = []
    held = report["heldout"]
    if held:
        lines.append(f"held-out F1 on {report['pairs']} labelled pair(s) of '{report['domain']}' "
                     f"({report['folds']} folds, cross-fitted; ± the spread over folds):")
        labels = {"before": f"before ({base_name} @ {report['threshold']['before']:.2f})",
                  "threshold": f"threshold only (@ {report['threshold']['domain']:.2f})",
                  "adapted": f"adapted (@ {report['threshold']['adapted']:.2f})"}
        for name in CANDIDATES:
            if name in held:
                h = held[name]
                lines.append(f"  {labels[name]:<36} F1 {100 * h['f1']:5.1f} %  (± {100 * h['fold_f1_std']:.1f})  "
                             f"precision {100 * h['precision']:5.1f}  recall {100 * h['recall']:5.1f}")
    if report.get("old_domains"):
        t = report["threshold"]
        lines.append(f"old domains (forgetting), F1 on their validation pairs, old model @ {t['before']:.2f} -> adapted model "
                     f"@ {t['generic_adapted']:.2f} (its refitted 'generic' threshold; at the old one in brackets):")
        for spec, f in report["old_domains"].items():
            lines.append(f"  {spec}: {100 * f['before']:.1f} % -> {100 * f['adapted']:.1f} % "
                         f"({100 * f['adapted_at_old_threshold']:.1f} %; {f['pairs']} pairs)"
                         + (f"; routed {100 * f['routed']:.1f} % ({100 * f['routed_to_old']:.0f} % of the pairs to the old head)"
                            if "routed" in f else ""))
    choice = report["choice"]
    if not held:
        lines.append(f"1 labelled pair: nothing to hold out, so nothing shows the adapted model is better; {base_name} stays the "
                     f"default. The adapted model is {report['adapted']} (label 2 or more pairs to have it checked).")
    elif choice == "before":
        lines.append(f"the adapted model is not better on held-out pairs: {base_name} stays the default "
                     f"(the adapted model is still written: {report['adapted']}).")
    else:
        gain = 100 * (held[choice]["f1"] - held["before"]["f1"])
        lines.append(f"chosen: {choice} ({gain:+.1f} F1 points over {base_name} on held-out pairs): {report['best']}")
    if report["installed"]:
        lines.append(f"installed as {report['installed']}: the app's model menu lists it (no restart needed); "
                     f"python -m anodfdnet predict --checkpoint {report['installed']} ...")
    elif report["config"]["name"]:
        lines.append("nothing installed: the old checkpoint stays the default (--force installs the adapted model anyway).")
    lines.append(f"CPU time {report['cpu_minutes']:.1f} min, wall {report['wall_minutes']:.1f} min; report: "
                 f"{Path(report['adapted']).parent / 'report.json'}")
    return "\n".join(lines)
