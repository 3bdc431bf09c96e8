"""Building the domain-routed checkpoint an adaptation serves (the model: ``anodfdnet/models/routed.py``).

The references are the domain embeddings of the labelled target pairs and of old-domain pairs (the
calibration pool: training pairs of the checkpoint's own domains that replay did not use), each made on the
inference path (the pair prepared at the checkpoint's size with the adaptation's alignment, as ``predict``
and the app prepare it). The old head's logits are shifted by ``logit(t_adapted) - logit(t_old)``, so the
adapted threshold, applied to an old-domain pair, cuts where the old checkpoint's threshold cut.

Routing needs the adapted model's encoder to be the old one's, tensor for tensor (``adapt`` freezes it by
default); :func:`routed_model` says why when it cannot route.
"""
from __future__ import annotations

import math

import torch

from ..checkpoint import load_checkpoint
from ..errors import UserError
from ..inference.pipeline import prepare_pair
from ..models.anodfdnet import AnoDFDNet
from ..models.routed import RoutedModel, domain_embedding

__all__ = ["embeddings", "logit", "routed_model", "routing_accuracy", "similarities"]


def logit(p: float) -> float:
    p = min(max(float(p), 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


@torch.inference_mode()
def embeddings(model: AnoDFDNet, source, indices, size: int | None, align: str) -> torch.Tensor:
    """N x C domain embeddings of ``source``'s pairs ``indices`` (on the model's device)."""
    device = next(model.parameters()).device
    out = []
    for i in indices:
        pair = source[i]
        h, c, _, _ = prepare_pair(pair.history, pair.current, size, align)
        taps = model.encoder(torch.cat([h[None], c[None]], 0).to(device))
        out.append(domain_embedding(taps))
    return torch.cat(out, 0) if out else torch.zeros(0, 1)


def same_encoder(a: AnoDFDNet, b: AnoDFDNet) -> bool:
    sa, sb = a.encoder.state_dict(), b.encoder.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def routed_model(adapted_ref, base_ref, target, target_idx, old, t_adapted: float, t_old: float,
                 align: str) -> RoutedModel:
    """The adapted checkpoint and the old one as a :class:`RoutedModel`: references from ``target``'s pairs
    ``target_idx`` and all of ``old``'s; a UserError saying why where routing is impossible."""
    adapted, info = load_checkpoint(adapted_ref)
    base, base_info = load_checkpoint(base_ref)
    if not isinstance(adapted, AnoDFDNet) or not isinstance(base, AnoDFDNet):
        raise UserError("routing needs two AnoDFDNet checkpoints (one of these is routed already, or a baseline).")
    if info.config.to_dict() != base_info.config.to_dict():
        raise UserError("routing needs the adapted and the old checkpoint to share their architecture.")
    if not same_encoder(adapted, base):
        raise UserError("routing needs the old encoder unchanged (it trained: --encoder-lr > 0).")
    if old is None or len(old) == 0:
        raise UserError("routing needs pairs of the old domains (none of the checkpoint's training data can be read here).")
    size = info.eval_size
    ref_t = embeddings(adapted, target, target_idx, size, align)
    ref_o = embeddings(adapted, old, range(len(old)), size, align)
    refs = torch.cat([ref_t, ref_o], 0).cpu()
    is_target = torch.cat([torch.ones(len(ref_t), dtype=torch.bool), torch.zeros(len(ref_o), dtype=torch.bool)])
    return RoutedModel(adapted, base, refs, is_target, logit(t_adapted) - logit(t_old)).eval()


@torch.inference_mode()
def similarities(model: RoutedModel, source, indices, size: int | None, align: str) -> torch.Tensor:
    """N x R cosine similarities of ``source``'s pairs ``indices`` to the model's references (the routing's inputs)."""
    rows = []
    for i in indices:
        pair = source[i]
        h, c, _, _ = prepare_pair(pair.history, pair.current, size, align)
        emb = domain_embedding(model.encoder(torch.cat([h[None], c[None]], 0).to(model.references.device)))
        rows.append((emb.float() @ model.references.float().T)[0])
    return torch.stack(rows) if rows else torch.zeros(0, len(model.references))


def routing_accuracy(model: RoutedModel, source, indices, to_target: bool, align: str, size: int | None,
                     leave_one_out: bool = False) -> float:
    """Share of ``source``'s pairs ``indices`` routed to the adapted head (``to_target``) or to the old one.
    ``leave_one_out``: each pair's own reference (the nearest at similarity ~1) is not counted, as for the
    labelled pairs the references were made from."""
    if not len(indices):
        return float("nan")
    sim = similarities(model, source, indices, size, align).clone()  # an inference tensor: clone before writing
    if leave_one_out:
        sim[torch.arange(len(sim)), sim.argmax(dim=1)] = -2.0
    routed = model.reference_is_target[sim.argmax(dim=1)]
    return float((routed == to_target).float().mean())
