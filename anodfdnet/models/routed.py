"""A domain-routed model: an adapted head for pairs like the ones a user labelled, the old head for the rest.

Adaptation (``python -m anodfdnet adapt``) trains the bottleneck and decoder with the encoder frozen, so the
adapted model and the model it came from share their encoder exactly. :class:`RoutedModel` keeps both heads on
that one encoder: each pair is encoded once, its *domain embedding* (the current image's deepest encoder
features, averaged over the image and L2-normalised) is compared with stored reference embeddings (the labelled
target pairs, and pairs of the old domains), and the pair goes through the head of its nearest reference
(cosine similarity, one nearest neighbour). The old head's logits are shifted by a constant so that the adapted
model's threshold means, on old-domain pairs, exactly what the old checkpoint's threshold meant: one threshold
serves both routes, and a pair routed to the old head gets the old model's mask (forgetting is then only the
routing's mistakes).

The checkpoint is an ordinary single file: the adapted model's tensors (``adapted.*``), the old head's
(``base.*``, no encoder), the references (``references``, ``reference_is_target``) and the shift
(``base_shift``); its metadata says ``routing`` (see :func:`anodfdnet.checkpoint.load_checkpoint`).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .anodfdnet import AnoDFDNet
from .config import check_input

__all__ = ["RoutedModel", "domain_embedding"]


def domain_embedding(taps: list[torch.Tensor]) -> torch.Tensor:
    """B x C: the currents' deepest tap (the second half of the encoded batch), averaged and L2-normalised."""
    deepest = taps[-1]
    b = deepest.shape[0] // 2
    return F.normalize(deepest[b:].float().mean(dim=(2, 3)), dim=1)


class RoutedModel(nn.Module):
    """``adapted`` and ``base`` (same config, same encoder weights) behind one ``forward(history, current)``;
    ``references``: R x C embeddings, ``is_target``: R booleans (True: route to ``adapted``); ``base_shift``:
    added to ``base``'s logits."""

    def __init__(self, adapted: AnoDFDNet, base: AnoDFDNet, references: torch.Tensor, is_target: torch.Tensor,
                 base_shift: float = 0.0):
        super().__init__()
        if not isinstance(adapted, AnoDFDNet) or not isinstance(base, AnoDFDNet):
            raise TypeError("routing needs two AnoDFDNet models")
        self.config = adapted.config
        self.adapted = adapted
        base.encoder = None  # the adapted model's encoder serves both heads
        self.base = base
        self.register_buffer("references", references.float().clone())
        self.register_buffer("reference_is_target", is_target.bool().clone())
        self.register_buffer("base_shift", torch.tensor(float(base_shift)))

    @property
    def encoder(self) -> nn.Module:
        return self.adapted.encoder

    def route(self, taps: list[torch.Tensor]) -> torch.Tensor:
        """B booleans: True where the pair goes to the adapted head."""
        emb = domain_embedding(taps)
        with torch.autocast(emb.device.type, enabled=False):  # in fp32 under the bf16 paths too: close calls stay right
            sim = emb.float() @ self.references.float().T
        return self.reference_is_target[sim.argmax(dim=1)]

    def forward(self, history: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        check_input(history, current)
        taps = self.adapted.encoder(torch.cat([history, current], 0))
        to_adapted = self.route(taps)
        size = history.shape[-2:]
        # float32 logits (the shift added in float32, also under bf16 autocast)
        if bool(to_adapted.all()):
            return self.adapted.head(taps, size).float()
        if not bool(to_adapted.any()):
            return self.base.head(taps, size).float() + self.base_shift
        b = history.shape[0]
        out = torch.empty(b, 1, *size, dtype=torch.float32, device=history.device)
        for use, head, shift in ((to_adapted, self.adapted, 0.0), (~to_adapted, self.base, self.base_shift)):
            idx = use.nonzero().flatten()
            sub = [torch.cat([t[idx], t[b + idx]], 0) for t in taps]
            out[idx] = head.head(sub, size).float() + shift
        return out
