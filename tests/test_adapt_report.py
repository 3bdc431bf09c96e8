"""The adaptation benchmark's report: the targets table says met or missed from the figures it is given."""
from benchmarks.adapt_report import _short, targets_section, write_report

OLD = "deeppcb:/x/deeppcb/trainval.txt@val"


def _row(seed: int, served: float, old: float, k: int = 5, budget: float = 10, choice: str = "adapted") -> dict:
    fig = {"f1": served, "iou": 0.0, "threshold": 0.3, "auc": 0.9, "pairs": 17}
    return {"target": "tunnel", "k": k, "budget": budget, "seed": seed, "variant": "default", "choice": choice,
            "heldout": {}, "adapt_cpu_minutes": budget, "test_adapted": fig, "test_served": fig,
            "old": {OLD: {"f1": old, "iou": 0.0, "threshold": 0.3, "auc": 0.9, "pairs": 60, "f1_at_old_threshold": old - 0.1}}}


BASE = {"tunnel": {"test": {"all": {"base": {"f1": 0.20}, "reference": {"f1": 0.46}}}, "old": {OLD: {"f1": 0.80}}}}


def test_targets_met_and_missed_follow_the_figures():
    met = "\n".join(targets_section([_row(s, 0.40, 0.79) for s in range(3)], BASE))
    assert "| tunnel | 10 min | 3 | 20.0 | 40.0 | +20.0 (met) | 46.0 | 6.0 (met) | -1.0 DeepPCB@val (met) | never below in 3 runs (met) |" in met
    # A smaller gain, a larger gap, forgetting and one served model below the unadapted one: every column missed.
    rows = [_row(0, 0.30, 0.70), _row(1, 0.30, 0.70), _row(2, 0.15, 0.70, choice="before")]
    missed = "\n".join(targets_section(rows, BASE))
    assert "+5.0 (missed)" in missed and "21.0 (missed)" in missed and "-10.0 DeepPCB@val (missed)" in missed
    assert "below in 1 of 3 runs (missed)" in missed
    # The largest budget <= 10 decides; k other than 5 and budgets above 10 do not count.
    mixed = [_row(0, 0.9, 0.8, k=3), _row(0, 0.9, 0.8, budget=20), _row(0, 0.25, 0.8, budget=5)]
    assert "| tunnel | 5 min | 1 | 20.0 | 25.0 | +5.0 (missed)" in "\n".join(targets_section(mixed, BASE))


def test_report_names_old_sets_and_shows_both_thresholds(tmp_path):
    out = tmp_path / "ADAPT.md"
    write_report([_row(s, 0.40, 0.79) for s in range(3)], BASE, out, "base.safetensors")
    text = out.read_text()
    assert _short(OLD) == "DeepPCB@val" and _short("synth:2000@val") == "synth:2000@val"
    assert "| DeepPCB@val | 80.0 | -1.0 (-11.0) |" in text
    assert (tmp_path / "adapt.json").exists() and "## Targets" in text


def test_interpolation_rows_show_the_change_against_the_unadapted_model(tmp_path):
    from benchmarks.adapt_report import interpolation_section

    fig = lambda f1: {"f1": f1, "iou": 0.0, "threshold": 0.3, "auc": 0.9, "pairs": 6}  # noqa: E731
    rows = [{"run": "tunnel/default/k5-b10-s0", "alpha": 0.5, "test": fig(0.30), "old": {OLD: fig(0.75)}}]
    text = "\n".join(interpolation_section(rows, BASE))
    assert "| tunnel/default/k5-b10-s0 | 0.5 | 30.0 (+10.0) | 75.0 (-5.0) |" in text


def test_third_site_rows_compare_the_routed_model_with_the_old_one():
    from benchmarks.adapt_report import unseen_section

    fig = lambda f1: {"f1": f1, "iou": 0.0, "threshold": 0.3, "auc": 0.9, "pairs": 11}  # noqa: E731
    near = lambda t, o: {"to_target": 0.0, "best_target": t, "best_old": o}  # noqa: E731
    site = "ab:/x/levir_samples"

    def row(seed, routed, adapted, old):
        return {"run": f"tunnel/default/k5-b10-s{seed}", "own_test": near([0.99999], [0.9997]),
                "old": {OLD: near([0.999], [0.99998])},
                "sites": {site: {"routed": fig(routed), "adapted": fig(adapted), "old": fig(old), **near([0.9992, 0.9994], [0.9998])}}}

    text = "\n".join(unseen_section([row(0, 0.136, 0.089, 0.136), row(1, 0.10, 0.30, 0.136)]))
    assert "| tunnel/default/k5-b10-s0 | levir_samples | 13.6 | 0 % | 8.9 | 13.6 |" in text
    assert "1 of 2 runs at least as good (worst change -3.6 points)" in text
    assert "the adapted head alone would have been below the old checkpoint in 1 of 2" in text
    # distances 1 - cos in units of 10^-3: mean (range)
    assert "| tunnel/default/k5-b10-s0 | third site: levir_samples | 0.70 (0.60–0.80) | 0.20 (0.20–0.20) |" in text
    assert unseen_section([]) == []


def test_the_targets_name_what_is_served_by_default_the_routed_model():
    fig = lambda f1: {"f1": f1, "iou": 0.0, "threshold": 0.3, "auc": 0.9, "pairs": 17}  # noqa: E731
    routed = [{"run": f"tunnel/default/k5-b10-s{s}", "target": "tunnel", "seed": s, "test": fig(0.40),
               "test_routed_to_target": 1.0, "old": {OLD: {**fig(0.80 - 0.01 * s), "routed_to_old": 1.0}}} for s in range(3)]
    text = "\n".join(targets_section([_row(s, 0.40, 0.70) for s in range(3)], BASE, routed))
    assert "-10.0 DeepPCB@val (missed)" in text  # the adapted model alone forgets
    assert "- tunnel, served by default (routed, 3 runs): target gain +20.0 points (met: >= +15); worst old-domain change -2.0 points (met: >= -2)" in text
    routed[0]["old"][OLD]["f1"] = 0.70
    assert "worst old-domain change -10.0 points (missed: >= -2)" in "\n".join(targets_section([_row(0, 0.40, 0.70)], BASE, routed))
