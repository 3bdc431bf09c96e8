"""The domain-routed checkpoint (anodfdnet/models/routed.py, anodfdnet/adaptation/routing.py): each pair goes
to the head of its nearest reference, the old head's map cuts at the adapted threshold where the old one cut,
and the routed model survives the single-file checkpoint."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from anodfdnet.adaptation.routing import logit, routed_model, routing_accuracy, similarities
from anodfdnet.checkpoint import load_checkpoint, read_info, save_checkpoint
from anodfdnet.data import Pair
from anodfdnet.errors import UserError
from anodfdnet.models import ModelConfig, build_model
from anodfdnet.models.routed import RoutedModel


class Pairs:
    """A minimal source: ``source[i]`` is a Pair, ``len(source)``."""

    def __init__(self, pairs):
        self.pairs = pairs

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        return self.pairs[i]


def _domain(kind: str, n: int, seed: int) -> list[Pair]:
    """Two looks no encoder confuses: bright fine noise ("a") and dark smooth gradients ("b")."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        if kind == "a":
            img = rng.integers(150, 256, (64, 64, 3), dtype=np.uint8)
        else:
            ramp = np.linspace(0, 60, 64, dtype=np.float32)
            img = (ramp[None, :, None] + ramp[:, None, None] * 0.5 + rng.normal(0, 2, (64, 64, 3))).clip(0, 255).astype(np.uint8)
        cur = img.copy()
        cur[20:30, 20:30] = 255 - cur[20:30, 20:30]
        out.append(Pair("x", img, cur, np.zeros((64, 64), bool)))
    return out


def _two_models(tmp_path, same_encoder=True):
    torch.manual_seed(0)
    base = build_model(ModelConfig.from_preset("lite", 0))
    torch.manual_seed(1)
    adapted = build_model(ModelConfig.from_preset("lite", 0))
    if same_encoder:
        adapted.encoder.load_state_dict(base.encoder.state_dict())
    meta = {"eval_size": 64, "threshold": 0.4}
    return (save_checkpoint(tmp_path / "adapted.safetensors", adapted, meta),
            save_checkpoint(tmp_path / "base.safetensors", base, meta), adapted.eval(), base.eval())


def _tensors(pair: Pair):
    from anodfdnet.inference.pipeline import prepare_pair

    h, c, _, _ = prepare_pair(pair.history, pair.current, 64, "off")
    return h[None], c[None]


def test_each_pair_goes_to_the_head_of_its_nearest_reference_and_the_old_head_is_shifted(tmp_path):
    a_path, b_path, adapted, base = _two_models(tmp_path)
    target, old = Pairs(_domain("a", 3, 0)), Pairs(_domain("b", 4, 1))
    t_adapted, t_old = 0.3, 0.6
    routed = routed_model(a_path, b_path, target, range(3), old, t_adapted, t_old, "off")
    assert isinstance(routed, RoutedModel) and routed.references.shape[0] == 7
    assert float(routed.base_shift) == pytest.approx(logit(t_adapted) - logit(t_old), abs=1e-5)
    new_a, new_b = _domain("a", 2, 7), _domain("b", 2, 8)  # pairs no reference was made from
    with torch.inference_mode():
        for pair in new_a:
            h, c = _tensors(pair)
            assert torch.allclose(routed(h, c), adapted(h, c), atol=1e-5)
        for pair in new_b:
            h, c = _tensors(pair)
            old_logits = base(h, c)
            got = routed(h, c)
            assert torch.allclose(got, old_logits + routed.base_shift, atol=1e-5)
            # the adapted threshold on the routed map cuts exactly where the old threshold cut the old map
            assert torch.equal(torch.sigmoid(got) > t_adapted, torch.sigmoid(old_logits) > t_old)
        # a mixed batch: each item as if alone
        (h1, c1), (h2, c2) = _tensors(new_b[0]), _tensors(new_a[0])
        both = routed(torch.cat([h1, h2]), torch.cat([c1, c2]))
        assert torch.allclose(both[0:1], routed(h1, c1), atol=1e-5) and torch.allclose(both[1:2], routed(h2, c2), atol=1e-5)
    assert routing_accuracy(routed, Pairs(new_a), range(2), True, "off", 64) == 1.0
    assert routing_accuracy(routed, Pairs(new_b), range(2), False, "off", 64) == 1.0
    assert routing_accuracy(routed, target, range(3), True, "off", 64, leave_one_out=True) == 1.0
    # the similarities the routing compares: a labelled pair is its own reference (cosine 1)
    sim = similarities(routed, target, range(3), 64, "off")
    assert sim.shape == (3, 7)
    assert torch.allclose(sim[torch.arange(3), torch.arange(3)], torch.ones(3), atol=1e-4)
    sim_b = similarities(routed, Pairs(new_b), range(2), 64, "off")
    assert bool((sim_b[:, ~routed.reference_is_target].max(1).values > sim_b[:, routed.reference_is_target].max(1).values).all())


def test_a_routed_checkpoint_round_trips_as_one_file(tmp_path):
    a_path, b_path, _, _ = _two_models(tmp_path)
    routed = routed_model(a_path, b_path, Pairs(_domain("a", 2, 0)), range(2), Pairs(_domain("b", 2, 1)), 0.3, 0.5, "off")
    meta = {"eval_size": 64, "threshold": 0.3, "routing": {"references": 4, "dim": int(routed.references.shape[1])}}
    path = save_checkpoint(tmp_path / "routed.safetensors", routed, meta)
    loaded, info = load_checkpoint(path)
    assert isinstance(loaded, RoutedModel) and info.routing and "routed by domain" in info.model_summary
    assert not any(k.startswith("base.encoder") for k in loaded.state_dict())  # one encoder in the file
    h, c = _tensors(_domain("b", 1, 5)[0])
    with torch.inference_mode():
        assert torch.allclose(loaded(h, c), routed(h, c), atol=1e-6)
    from anodfdnet.predict import Predictor

    prob = Predictor(path, device="cpu").predict(_domain("a", 1, 9)[0].history, _domain("a", 1, 9)[0].current)
    assert prob.shape == (64, 64) and np.isfinite(prob).all()
    assert read_info(path).threshold == 0.3


def test_routing_is_refused_when_the_encoder_trained_or_no_old_pairs_are_readable(tmp_path):
    a_path, b_path, _, _ = _two_models(tmp_path, same_encoder=False)
    target, old = Pairs(_domain("a", 2, 0)), Pairs(_domain("b", 2, 1))
    with pytest.raises(UserError, match="old encoder unchanged"):
        routed_model(a_path, b_path, target, range(2), old, 0.3, 0.5, "off")
    a_path, b_path, _, _ = _two_models(tmp_path)
    with pytest.raises(UserError, match="pairs of the old domains"):
        routed_model(a_path, b_path, target, range(2), None, 0.3, 0.5, "off")


def test_close_calls_are_routed_in_float32_under_bf16_autocast(tmp_path):
    """The served CPU path runs under bf16 autocast; a similarity computed in bf16 (resolution ~0.004 near 1)
    sent old-domain pairs to the adapted head (measured: a DeepPCB pair's logits off by 11). Two references whose
    similarities to a pair differ by 0.0005: the nearer one wins under autocast as in float32."""
    _, _, adapted, base = _two_models(tmp_path)
    c = adapted.encoder.channels[-1]
    v = torch.zeros(c)
    v[0] = 1.0
    near, far = torch.zeros(c), torch.zeros(c)
    near[0], near[1] = 0.9990, (1 - 0.9990 ** 2) ** 0.5  # cosine 0.9990 to v
    far[0], far[1] = 0.9985, -(1 - 0.9985 ** 2) ** 0.5  # cosine 0.9985
    taps = [torch.zeros(2, 1, 1, 1)] * 5 + [torch.stack([v, v])[:, :, None, None]]
    for near_is_target in (True, False):
        for refs, is_target in (((near, far), (near_is_target, not near_is_target)),  # either order: a tie in
                                ((far, near), (not near_is_target, near_is_target))):  # bf16 would pick the first
            routed = RoutedModel(adapted, base, torch.stack(refs), torch.tensor(is_target))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                assert routed.route(taps).tolist() == [near_is_target], (refs[0][0].item(), is_target)


def test_a_crafted_routing_claim_allocates_nothing_and_is_refused(tmp_path):
    """A checkpoint whose metadata claims routing with 10^12 references must not size an allocation from that
    claim: the shapes are read from the file, and a file without references is refused with a sentence."""
    a_path, _, adapted, _ = _two_models(tmp_path)
    liar = save_checkpoint(tmp_path / "liar.safetensors", adapted,
                           {"eval_size": 64, "routing": {"references": 10**12, "dim": 10**6}})
    with pytest.raises(UserError, match="holds no references"):
        load_checkpoint(liar)
