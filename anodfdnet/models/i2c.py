"""I2Correlation, FOD's two-branch attention (Yao et al., ICCV 2023, "Focus the Discrepancy: Intra- and
Inter-Correlation Learning for Image Anomaly Detection"), as AnoDFDNet's bottleneck with the history image as
the reference (``ModelConfig.bottleneck = "i2c"``).

    e5(current) --1x1 conv + position--> current tokens x    (the stream: queries of both branches)
    e5(history) --the same conv + position--> history tokens r (the reference: keys and values of inter only)
    each layer:  intra = Attn(x -> x)    inter = Attn(x -> r)
                 each branch has its RBF target over patch positions (a Gaussian of the row and column
                 distance, its widths learned per token and head from the query, rows normalised to 1) and
                 its association discrepancy: symmetric KL between target and learned attention, per token;
                 x <- x + drop(intra - inter)       (FOD's fusion (x + intra) - (x + inter), on the residual)
                 x <- x + drop(MLP(LN x))
    out  = LN(x) + 1x1 conv(|e5(current) - e5(history)|)       (the paper's difference stays in the path)
    maps = log(1 + per-token intra / inter discrepancy), mean over layers: two channels for the decoder
    score (the ``normal`` objective's anomaly score) = patch discrepancy + inter discrepancy, where the patch
           discrepancy compares each current patch's e5 features with their reconstruction from the history's
           e5 features through the last layer's inter attention (normalised squared error + 1 - cosine)

Roles are not symmetric: queries come from the current image only, the history is only looked up, so
swapping the two inputs changes the output. Depth 0 is one attention-only I2Correlation (no MLP), so the
discrepancy maps and the score exist at every depth; depth L > 0 is L full layers.

Losses (weights of FOD's public code, xcyao00/FOD ``main.py``: lambda1 = lambda2 = 0.5, used here unchanged;
no other values were measured), written as one loss with stop-gradients (sg) equal to FOD's two-stage minimax:

    correlation-target loss  LAMBDA_CORR * ( [D(T, sg A) - D(sg T, A)]_intra + [D(sg T, A) - D(T, sg A)]_inter )
    entropy constraint       LAMBDA_ENTROPY * ( H(A_inter) - H(A_intra) )

The learned intra-correlations move away from their local target while its width follows them; the
inter-correlations move toward theirs (a normal patch's counterpart sits at its own position in the
history) while its width moves away; intra attention is kept spread (no collapse onto a few patches) and
inter attention sharp, which widens the normal/abnormal gap of the discrepancy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .tokens import resize_position_embedding

LAMBDA_CORR = 0.5  # FOD's lambda1: the correlation-target (association discrepancy) loss
LAMBDA_ENTROPY = 0.5  # FOD's lambda2: the entropy constraint
EPS = 1e-4  # inside the logarithms, as FOD's


def grid_distances(h: int, w: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared row and column distances between the tokens of an h x w grid (row-major): two N x N tensors."""
    yy = torch.arange(h, device=device, dtype=torch.float32).repeat_interleave(w)
    xx = torch.arange(w, device=device, dtype=torch.float32).repeat(h)
    return (yy[:, None] - yy[None]) ** 2, (xx[:, None] - xx[None]) ** 2


def rbf_target(raw_sigma: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The RBF target correlations: ``raw_sigma`` (B x N x 2 heads, from the queries) -> B x heads x N x N.

    Row i is a Gaussian of the row and column distance to token i with widths sigma = 3^(sigmoid(5 s)) - 1
    tokens (FOD's mapping, between ~0 and 2 tokens), normalised to sum to 1; it peaks at token i itself."""
    b, n, two_h = raw_sigma.shape
    sig = torch.pow(3.0, torch.sigmoid(raw_sigma.float() * 5) + 1e-5) - 1  # B x N x 2heads
    sig = sig.view(b, n, two_h // 2, 2).permute(0, 2, 1, 3)  # B x heads x N x 2
    dy2, dx2 = grid_distances(h, w, raw_sigma.device)
    logits = -dy2 / (2 * sig[..., 0:1] ** 2) - dx2 / (2 * sig[..., 1:2] ** 2)
    return torch.softmax(logits, dim=-1)  # the Gaussian's constant cancels in the normalisation


def kl_rows(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) of each row, mean over heads: B x heads x N x M -> B x N."""
    return (p * (torch.log(p + EPS) - torch.log(q + EPS))).sum(-1).mean(1)


def association_discrepancy(target: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
    """Symmetric KL between target and learned attention per token (B x N): the association discrepancy."""
    return kl_rows(target, attn) + kl_rows(attn, target)


def entropy_rows(p: torch.Tensor) -> torch.Tensor:
    """Entropy of each attention row, mean over heads: B x heads x N x M -> B x N."""
    return -(p * torch.log(p + EPS)).sum(-1).mean(1)


class Correlation(nn.Module):
    """One branch: multi-head attention from query tokens to key/value tokens, with each query's RBF target."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.sigma = nn.Linear(dim, 2 * heads)  # the target's row and column widths, per query and head
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, ref: torch.Tensor, h: int, w: int):
        """x: B x N x D queries, ref: B x N x D keys/values -> (B x N x D output, attention, target)."""
        b, n, d = x.shape
        split = lambda t: t.view(b, -1, self.heads, d // self.heads).transpose(1, 2).float()  # noqa: E731
        q, k, v = split(self.q(x)), split(self.k(ref)), split(self.v(ref))
        attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), dim=-1)  # B x heads x N x N
        out = (self.drop(attn) @ v).transpose(1, 2).reshape(b, n, d).to(x.dtype)
        return self.proj(out), attn, rbf_target(self.sigma(x), h, w)


class I2CLayer(nn.Module):
    """Intra branch over the current tokens, inter branch from them to the history's, fused; then an MLP
    (none in the attention-only layer of depth 0)."""

    def __init__(self, dim: int, heads: int, mlp: int | None, dropout: float):
        super().__init__()
        self.ln1, self.ln_ref = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.intra, self.inter = Correlation(dim, heads, dropout), Correlation(dim, heads, dropout)
        self.drop = nn.Dropout(dropout)
        self.mlp = None
        if mlp:
            self.ln2 = nn.LayerNorm(dim, eps=1e-6)
            self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp, dim))

    def forward(self, x: torch.Tensor, ref: torch.Tensor, h: int, w: int):
        xn, rn = self.ln1(x), self.ln_ref(ref)
        intra, a_intra, t_intra = self.intra(xn, xn, h, w)
        inter, a_inter, t_inter = self.inter(xn, rn, h, w)
        x = x + self.drop(intra - inter)
        if self.mlp is not None:
            x = x + self.drop(self.mlp(self.ln2(x)))
        return x, (a_intra, t_intra), (a_inter, t_inter)


@dataclass
class I2COutput:
    features: torch.Tensor  # B x hidden x h x w, to the decoder
    maps: torch.Tensor  # B x 2 x h x w: log(1 + intra, inter discrepancy), to the decoder beside the taps
    score: torch.Tensor  # B x N: patch discrepancy + inter discrepancy (the normal objective's anomaly score)
    patch: torch.Tensor  # B x N: the patch discrepancy (the normal objective's reconstruction loss)
    intra: list = field(default_factory=list)  # per layer (attention, target), B x heads x N x N each
    inter: list = field(default_factory=list)


class I2CBottleneck(nn.Module):
    """I2Correlation layers on the deepest features of both images; see the module docstring."""

    MAPS = 2  # channels it adds beside every tap of the decoder

    def __init__(self, cin: int, cfg):
        super().__init__()
        self.grid = cfg.img_size // 16
        self.embed = nn.Conv2d(cin, cfg.hidden, 1)  # shared by current and history
        self.pos = nn.Parameter(torch.zeros(1, self.grid * self.grid, cfg.hidden))  # zero-initialised
        self.drop = nn.Dropout(cfg.embed_dropout)
        n = max(cfg.depth, 1)
        self.layers = nn.ModuleList(I2CLayer(cfg.hidden, cfg.heads, cfg.mlp if cfg.depth > 0 else None, cfg.block_dropout)
                                    for _ in range(n))
        self.ln = nn.LayerNorm(cfg.hidden, eps=1e-6)
        self.diff = nn.Conv2d(cin, cfg.hidden, 1)
        # The normal objective's logits are (score - centre) / scale, set from normal pairs after training
        # (anodfdnet/objective.py: calibrate_score); probability 0.5 at the centre.
        self.register_buffer("score_center", torch.tensor(0.0))
        self.register_buffer("score_scale", torch.tensor(1.0))

    def tokens(self, f: torch.Tensor) -> torch.Tensor:
        x = self.embed(f)
        b, c, h, w = x.shape
        return self.drop(x.flatten(2).transpose(1, 2) + resize_position_embedding(self.pos, self.grid, h, w))

    def forward(self, f_hist: torch.Tensor, f_cur: torch.Tensor, d5: torch.Tensor) -> I2COutput:
        """f_hist, f_cur: B x C x h x w deepest features of history and current; d5 = |f_cur - f_hist|."""
        b, _, h, w = f_cur.shape
        x, ref = self.tokens(f_cur), self.tokens(f_hist)
        intra, inter = [], []
        for layer in self.layers:
            x, i1, i2 = layer(x, ref, h, w)
            intra.append(i1)
            inter.append(i2)
        d_intra = torch.stack([association_discrepancy(t, a) for a, t in intra]).mean(0)  # B x N
        d_inter = torch.stack([association_discrepancy(t, a) for a, t in inter]).mean(0)
        features = self.ln(x).transpose(1, 2).reshape(b, -1, h, w) + self.diff(d5)
        maps = torch.log1p(torch.stack([d_intra, d_inter], 1)).view(b, 2, h, w).to(features.dtype)
        patch = patch_discrepancy(f_cur, f_hist, inter[-1][0])
        return I2COutput(features, maps, patch + d_inter, patch, intra, inter)

    def score_logits(self, score: torch.Tensor, h: int, w: int, size: tuple[int, int]) -> torch.Tensor:
        """The normal objective's B x 1 x H x W logits from the per-token score (B x N)."""
        z = (score - self.score_center) / self.score_scale.clamp_min(1e-6)
        return F.interpolate(z.view(-1, 1, h, w), size=size, mode="bilinear", align_corners=False)


def patch_discrepancy(f_cur: torch.Tensor, f_hist: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
    """How far each current patch's features are from their reconstruction out of the history's features
    through ``attn`` (B x heads x N x N, mean over heads): squared error over the features' mean square plus
    1 - cosine; B x N. With the encoder frozen the features cannot collapse to make this trivially small."""
    c = f_cur.flatten(2).transpose(1, 2).float()  # B x N x C
    r = attn.mean(1) @ f_hist.flatten(2).transpose(1, 2).float()
    mse = ((r - c) ** 2).mean(-1) / (c ** 2).mean((1, 2)).clamp_min(1e-6)[:, None]
    return mse + 1 - F.cosine_similarity(r, c, dim=-1, eps=1e-6)


def correlation_loss(out: I2COutput) -> torch.Tensor:
    """FOD's correlation-target loss and entropy constraint (weights LAMBDA_CORR, LAMBDA_ENTROPY), mean over
    layers and tokens. Its value can be negative: it is a minimax written as one loss."""
    total = out.features.new_zeros((), dtype=torch.float32)
    for (a, t) in out.intra:  # attention away from the target, the target's width after the attention
        total = total + LAMBDA_CORR * (association_discrepancy(t, a.detach()) - association_discrepancy(t.detach(), a)).mean()
        total = total - LAMBDA_ENTROPY * entropy_rows(a).mean()
    for (a, t) in out.inter:  # attention toward the target, the target's width away from the attention
        total = total + LAMBDA_CORR * (association_discrepancy(t.detach(), a) - association_discrepancy(t, a.detach())).mean()
        total = total + LAMBDA_ENTROPY * entropy_rows(a).mean()
    return total / len(out.intra)
