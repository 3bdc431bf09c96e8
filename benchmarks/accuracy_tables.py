"""The tables of the accuracy benchmark: their rows (``Method``) and sections (``ValSet``), the mean and
spread over seeds of each cell (``aggregate``), the issue's targets judged from them (``targets``), and
the Markdown of ``benchmarks/ACCURACY_STEPS.md`` (``render``) from the report the command builds.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

METRICS = ("precision", "recall", "oa", "f1", "iou", "auc", "eer")
METRIC_LABELS = {"precision": "P", "recall": "R", "oa": "OA", "f1": "F1", "iou": "IoU", "auc": "AUC", "eer": "EER"}
F1_TARGET_DEEPPCB = 0.85
FLOPS_SIZE = 256
QUICK_BANNER = "quick run — not for reporting"


@dataclass(frozen=True)
class Method:
    key: str  # run-folder name, e.g. "anodfdnet-lite-d2"
    label: str  # table row label
    arch: str
    preset: str
    depth: int

    @property
    def is_baseline(self) -> bool:
        return self.arch != "anodfdnet"


def anodfdnet_method(preset: str, depth: int) -> Method:
    return Method(f"anodfdnet-{preset}-d{depth}", f"AnoDFDNet {preset} d{depth}", "anodfdnet", preset, depth)


BASELINE_LABELS = {"unet-cat": "Unet-cat", "deeplabv3plus-cat": "DeepLabV3+-cat", "fc-siam-diff": "FC-Siam-diff"}


@dataclass(frozen=True)
class ValSet:
    key: str
    label: str
    spec: str  # the reported set
    select: str  # the set the best epoch is chosen on (the same as spec with --select val)
    resolution: str


_COST: dict = {}


def model_cost(m: Method) -> dict:
    """Parameters and forward GFLOPs for one pair at FLOPS_SIZE (the same for every seed)."""
    if m.key not in _COST:
        from anodfdnet.models import ModelConfig, build_model, count_flops, count_parameters

        model = build_model(ModelConfig.from_preset(m.preset, m.depth, arch=m.arch))
        _COST[m.key] = {"parameters": count_parameters(model), "gflops": count_flops(model, FLOPS_SIZE) / 1e9}
    return _COST[m.key]


# -------------------------------------------------------------------------------------------------
# Aggregation and targets
# -------------------------------------------------------------------------------------------------
def aggregate(records: list[dict], method_key: str, set_key: str, seeds: list[int]) -> dict:
    """{metric: {"mean", "std", "n", "values"}} over the given seeds (NaN values, e.g. an undefined AUC, left out)."""
    out = {}
    rows = [r for r in records if r["method"] == method_key and r["seed"] in seeds and set_key in r["metrics"]]
    for k in METRICS:
        vals = [r["metrics"][set_key][k] for r in rows if r["metrics"][set_key].get(k) is not None]
        out[k] = {"mean": statistics.fmean(vals) if vals else None,
                  "std": statistics.stdev(vals) if len(vals) >= 2 else None, "n": len(vals), "values": vals}
    out["n"] = len(rows)
    return out


def _f1(summary: dict, table: str, method: str, set_key: str) -> dict | None:
    cell = summary.get(table, {}).get(set_key, {}).get(method)
    if not cell or cell["f1"]["mean"] is None:
        return None
    return cell["f1"]


def pct(v: float | None) -> str:
    """A fraction as a percentage with two decimals, or n/a."""
    return "n/a" if v is None else f"{100 * v:.2f}"


def targets(summary: dict, table1: list[Method], table3: list[Method], sets: list[ValSet]) -> list[dict]:
    """Each target: {"target", "measured", "status" (met / missed / n/a), "rule"}."""
    keys = {s.key for s in sets}
    res = []
    lite = anodfdnet_method("lite", 2)

    # 1. lite d2 F1 >= 0.85 on DeepPCB val
    t = {"target": f"AnoDFDNet lite d2 F1 ≥ {F1_TARGET_DEEPPCB:.2f} on DeepPCB val",
         "rule": "the mean F1 over the Table 1 seeds reaches the threshold"}
    f1 = _f1(summary, "table1", lite.key, "deeppcb") if "deeppcb" in keys else None
    if f1 is None:
        t.update(status="n/a", measured="DeepPCB val was not evaluated" if "deeppcb" not in keys else "no lite d2 result")
    else:
        t.update(status="met" if f1["mean"] >= F1_TARGET_DEEPPCB else "missed", measured=f"F1 {pct(f1['mean'])} % (n={f1['n']})")
    res.append(t)

    # 2. AnoDFDNet ahead of the best baseline on synth hard by more than the seed spread
    baselines = [m for m in table1 if m.is_baseline]
    for a in [m for m in table1 if not m.is_baseline]:
        t = {"target": f"{a.label} ahead of the best baseline on synth hard by more than the seed spread",
             "rule": "mean F1 margin over the baseline with the highest mean F1 exceeds the larger of the two seed standard deviations"}
        fa = _f1(summary, "table1", a.key, "synth-hard") if "synth-hard" in keys else None
        fb = {m.label: _f1(summary, "table1", m.key, "synth-hard") for m in baselines}
        fb = {k: v for k, v in fb.items() if v is not None}
        if fa is None or not fb:
            t.update(status="n/a", measured="synth hard results missing")
        else:
            best_label, best = max(fb.items(), key=lambda kv: kv[1]["mean"])
            margin = fa["mean"] - best["mean"]
            text = f"F1 {pct(fa['mean'])} vs {best_label} {pct(best['mean'])}: margin {100 * margin:+.2f} points"
            if fa["std"] is None or best["std"] is None:
                t.update(status="n/a", measured=f"{text}; the spread needs at least 2 seeds (n={min(fa['n'], best['n'])})")
            else:
                spread = max(fa["std"], best["std"])
                t.update(status="met" if margin > spread else "missed", measured=f"{text}, spread {100 * spread:.2f} (n={min(fa['n'], best['n'])})")
        res.append(t)

    # 3. depth > 0 ahead of depth 0 on synth hard
    t = {"target": "Transformer depth > 0 ahead of depth 0 on synth hard (Table 3)",
         "rule": "every depth > 0 has a higher mean F1 than depth 0"}
    by_depth = {m.depth: _f1(summary, "table3", m.key, "synth-hard") for m in table3} if "synth-hard" in keys else {}
    by_depth = {d: v for d, v in by_depth.items() if v is not None}
    if 0 not in by_depth or len(by_depth) < 2:
        t.update(status="n/a", measured="depth 0 and at least one depth > 0 are needed on synth hard")
    else:
        f0 = by_depth[0]
        parts, ahead = [], True
        for d, v in sorted(by_depth.items()):
            if d == 0:
                continue
            margin = v["mean"] - f0["mean"]
            ahead &= margin > 0
            spread = max(v["std"], f0["std"]) if v["std"] is not None and f0["std"] is not None else None
            parts.append(f"d{d} {100 * margin:+.2f}" + (f" (spread {100 * spread:.2f})" if spread is not None else ""))
        t.update(status="met" if ahead else "missed", measured=f"d0 F1 {pct(f0['mean'])}; margins: " + ", ".join(parts))
    res.append(t)
    return res


# -------------------------------------------------------------------------------------------------
# The report
# -------------------------------------------------------------------------------------------------
def _cell(stat: dict) -> str:
    if stat["mean"] is None:
        return "n/a"
    std = "n/a" if stat["std"] is None else f"{100 * stat['std']:.2f}"
    return f"{100 * stat['mean']:.2f} ± {std}"


def _table(rows: list[tuple[str, dict | None, dict]]) -> list[str]:
    head = "| method | n | " + " | ".join(f"{METRIC_LABELS[k]} %" for k in METRICS) + f" | params | GFLOPs@{FLOPS_SIZE} |"
    lines = [head, "|---|---:|" + "---:|" * len(METRICS) + "---:|---:|"]
    for label, agg, cost in rows:
        if agg is None or agg["n"] == 0:
            cells = ["0"] + ["—"] * len(METRICS)
        else:
            cells = [str(agg["n"])] + [_cell(agg[k]) for k in METRICS]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {cost['parameters'] / 1e6:.2f}M | {cost['gflops']:.2f} |")
    return lines


def render(report: dict) -> str:
    o, h = report["options"], report["header"]
    sets = [ValSet(**s) for s in report["sets"]]
    lines = ["# Accuracy benchmark", ""]
    if o["quick"]:
        lines += [f"> **{QUICK_BANNER}.** A smoke test of the pipeline: a handful of training steps, synth only; the numbers mean nothing.", ""]
    if report["status"] != "complete":
        lines += [f"> **Incomplete:** {report['status']}. Run the same command again to resume.", ""]
    m = h["machine"]
    sched = (f"{o['total_steps']} optimizer steps per run ({o['epochs']} epochs x {o['steps_per_epoch']} steps), batch {o['batch']}, "
             + (f"{o['size']}x{o['size']} crops at native resolution (half placed over an anomaly)" if o["crop"]
                else f"pairs resized to {o['size']}x{o['size']}")
             + f", loss {o['loss']}, Adam lr 2e-4 betas (0.5, 0.999), joint flip/rot180 augmentation, no pretrained weights")
    selection = ("held-out selection sets (listed below), never the reported sets" if o["select"] == "holdout"
                 else "the reported validation sets themselves (the paper's practice; slightly optimistic)")
    lines += [
        "Generated by `benchmarks/accuracy.py`; every number below is computed by that command, none is typed in"
        + ("; the Discussion at the end is written by hand (`--notes`): read it before the tables." if report.get("discussion") else "."),
        "",
        f"- **Command:** `{h['command']}`",
        f"- **Date:** {h['date']}",
        f"- **Machine:** {m['platform']}; {m['cpu'] or 'unknown CPU'} ({m['cpus']} logical CPUs); Python {m['python']}, torch {m['torch']}"
        + (f"; load average {m['load_average_at_start']} at start" if "load_average_at_start" in m else ""),
        f"- **Device:** {h['device']}",
        f"- **Schedule (the same for every method):** {sched}.",
        f"- **Best epoch:** the one with the best mean F1 on {selection}, first {o['val_limit'] or 'all'} pairs of each.",
        "- **Evaluation:** threshold 0.5, TP/FP/TN/FN summed over every pixel of the set, pixel ROC for AUC and EER; "
        + ("input at each image's native size" if o["crop"] else f"input long side {o['size']}") + "; metrics at the mask's resolution; "
        + (f"first {o['eval_limit']} pairs of each set" if o["eval_limit"] else "every pair of each set") + ".",
        f"- **Seeds:** Table 1 {', '.join(map(str, o['seeds']))}; Table 3 {', '.join(map(str, o['ablation_seeds']))} "
        "(initialisation, batch order and augmentation; the data split is fixed). Cells are mean ± sample std over the seeds, in %.",
        "- **Training data:** " + ", ".join(f"`{s}`" for s in report["train_specs"])
        + " (the mixture of `checkpoints/train.sh`, sampled uniformly by pair).",
        f"- **Baselines:** {o['baseline_preset']} widths (ndf {16 if o['baseline_preset'] == 'lite' else 64}); "
        "compact implementations in `anodfdnet/models/baselines.py`.",
        f"- **Wall time of this invocation:** {h['wall_seconds']:.0f} s"
        + (f"; training {h['train_seconds']:.0f} s for {h['steps_trained']} steps ({h['seconds_per_step'] * 1000:.0f} ms/step, "
           "including data generation and the per-epoch selection evaluations)" if h.get("seconds_per_step") else "")
        + ".",
        "",
        "| set | reported on | best epoch chosen on | pairs | input |",
        "|---|---|---|---:|---|",
    ]
    for s in sets:
        lines.append(f"| {s.label} | `{s.spec}` | `{s.select}` | {report['set_pairs'].get(s.key, '?')} | {s.resolution} |")
    if report["notes"]:
        lines += [""] + [f"- {note}" for note in report["notes"]]
    lines.append("")

    for title, table_key, meths, seeds in (
        ("Table 1 analogue: methods", "table1", report["table1"], o["seeds"]),
        ("Table 3 analogue: Transformer depth of AnoDFDNet lite", "table3", report["table3"], o["ablation_seeds"]),
    ):
        lines += [f"## {title}", "", f"Mean ± std over seeds {', '.join(map(str, seeds))}; n is the number of runs.", ""]
        for s in sets:
            lines += [f"### {s.label}", ""]
            rows = [(mm["label"], report["summary"][table_key].get(s.key, {}).get(mm["key"]), report["cost"][mm["key"]]) for mm in meths]
            lines += _table(rows) + [""]

    lines += ["## Targets", "", "| target | rule | measured | status |", "|---|---|---|---|"]
    for t in report["targets"]:
        lines.append(f"| {t['target']} | {t['rule']} | {t['measured']} | **{t['status']}** |")
    lines.append("")
    if report.get("discussion"):
        lines += ["## Discussion", "", report["discussion"].strip(), ""]
    lines += [f"Raw per-seed results: `{Path(o['json']).name}` beside this file.", ""]
    return "\n".join(lines)
