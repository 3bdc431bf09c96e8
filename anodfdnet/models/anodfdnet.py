"""AnoDFDNet: a deep feature difference network for anomaly detection.

Reads top to bottom like the paper's figure:

    history, current --(shared CNN encoder)--> e1, e_el, e2, e3, e4, e5 for each image
    D_k = |e_k(current) - e_k(history)|                      (symmetric in the two inputs)
    D5 --(1x1 conv, tokens + position embedding, L pre-LN Transformer blocks)--> bottleneck
        (or, with ``bottleneck="i2c"``, FOD's I2Correlation on e5(current) with e5(history) as the reference,
        whose per-token discrepancy maps also join every decoder stage: models/i2c.py)
    bottleneck --(U-Net decoder, concatenating D4, D3, D2, D_el, D1)--> one-channel logit map

The model returns logits; probabilities are ``torch.sigmoid(logits)``.

One deliberate difference from the paper's public code: that code computes the attention output
projection and then discards it by mistake. Here each block is a standard pre-LN block that uses the
projection.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ENCODERS, ModelConfig, check_input
from .i2c import I2CBottleneck
from .tokens import resize_position_embedding


def conv_bn_act(cin: int, cout: int, k: int, s: int, act: nn.Module | None, bn: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, padding=(k - 1) // 2 if k % 2 else 1, bias=False)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)


def convT_bn_relu(cin: int, cout: int, k: int, s: int) -> nn.Sequential:
    pad = 1
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, k, s, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


class Encoder(nn.Module):
    """DCGAN-style encoder, trained from scratch. Returns the six taps, finest first."""

    def __init__(self, ndf: int):
        super().__init__()
        self.channels = (ndf, ndf, ndf * 2, ndf * 4, ndf * 8, ndf * 16)
        lrelu = lambda: nn.LeakyReLU(0.2, True)  # noqa: E731
        self.e1 = conv_bn_act(3, ndf, 4, 2, nn.ReLU(True))  # ndf   x H/2
        self.e_el = conv_bn_act(ndf, ndf, 3, 1, lrelu())  # ndf   x H/2
        self.e2 = conv_bn_act(ndf, ndf * 2, 4, 2, lrelu())  # 2ndf  x H/4
        self.e3 = conv_bn_act(ndf * 2, ndf * 4, 4, 2, lrelu())  # 4ndf  x H/8
        self.e4 = conv_bn_act(ndf * 4, ndf * 8, 4, 2, lrelu())  # 8ndf  x H/16
        self.e5 = conv_bn_act(ndf * 8, ndf * 16, 3, 1, None, bn=False)  # 16ndf x H/16

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for layer in (self.e1, self.e_el, self.e2, self.e3, self.e4, self.e5):
            x = layer(x)
            taps.append(x)
        return taps


class Block(nn.Module):
    """Standard pre-LN Transformer block (attention with its output projection, then an MLP)."""

    def __init__(self, dim: int, heads: int, mlp: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp, dim))
        self.drop = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_dropout if self.training else 0.0)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, n, d)))
        return x + self.drop(self.mlp(self.ln2(x)))


class DifferenceTransformer(nn.Module):
    """Tokens from the deepest difference map, L blocks, back to a feature map."""

    def __init__(self, cin: int, cfg: ModelConfig):
        super().__init__()
        self.grid = cfg.img_size // 16
        self.embed = nn.Conv2d(cin, cfg.hidden, 1)
        self.pos = nn.Parameter(torch.zeros(1, self.grid * self.grid, cfg.hidden))  # zero-initialised
        self.drop = nn.Dropout(cfg.embed_dropout)
        self.blocks = nn.Sequential(*[Block(cfg.hidden, cfg.heads, cfg.mlp, cfg.block_dropout) for _ in range(cfg.depth)])
        self.ln = nn.LayerNorm(cfg.hidden, eps=1e-6)

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        return resize_position_embedding(self.pos, self.grid, h, w)

    def forward(self, d5: torch.Tensor) -> torch.Tensor:
        x = self.embed(d5)  # hidden x H/16 x W/16
        b, c, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)  # b x (h w) x hidden
        x = self.drop(x + self.position_embedding(h, w))
        x = self.ln(self.blocks(x))
        return x.transpose(1, 2).reshape(b, c, h, w)


class Decoder(nn.Module):
    """U-Net decoder over the difference taps; each stage concatenates the matching skip and outputs
    the width of the next skip (so with the DCGAN encoder's taps (ndf, ndf, 2ndf, 4ndf, 8ndf, 16ndf)
    the widths are the paper's: 8ndf, 4ndf, 2ndf, ndf, ndf). ``extra`` > 0 channels of bottleneck maps
    (the i2c discrepancy maps) are resized to every stage and concatenated beside its skip."""

    def __init__(self, cin: int, taps: tuple[int, ...], extra: int = 0):
        super().__init__()
        c1, c_el, c2, c3, c4, _ = taps
        self.d5 = convT_bn_relu(cin + extra, c4, 3, 1)  # c4 x H/16
        self.d4 = convT_bn_relu(2 * c4 + extra, c3, 4, 2)  # cat D4 -> c3 x H/8
        self.d3 = convT_bn_relu(2 * c3 + extra, c2, 4, 2)  # cat D3 -> c2 x H/4
        self.d2 = convT_bn_relu(2 * c2 + extra, c_el, 4, 2)  # cat D2 -> c_el x H/2
        self.d_el = conv_bn_act(2 * c_el + extra, c1, 3, 1, nn.ReLU(True))  # cat D_el -> c1 x H/2
        self.head = nn.ConvTranspose2d(2 * c1 + extra, 1, 4, 2, 1)  # cat D1 -> 1 x H (logits)

    def forward(self, x: torch.Tensor, d1, d_el, d2, d3, d4, maps: torch.Tensor | None = None) -> torch.Tensor:
        def cat(*parts):
            if maps is None:
                return torch.cat(parts, 1)
            m = maps if maps.shape[-2:] == parts[0].shape[-2:] else F.interpolate(
                maps, size=parts[0].shape[-2:], mode="bilinear", align_corners=False)
            return torch.cat([*parts, m.to(parts[0].dtype)], 1)

        x = self.d5(cat(x))
        x = self.d4(cat(x, d4))
        x = self.d3(cat(x, d3))
        x = self.d2(cat(x, d2))
        x = self.d_el(cat(x, d_el))
        return self.head(cat(x, d1))


class AnoDFDNet(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.encoder = build_encoder(cfg)
        taps = self.encoder.channels
        self.transformer = self.i2c = None
        if cfg.bottleneck == "i2c":  # FOD's I2Correlation with the history as the reference (models/i2c.py)
            self.i2c = I2CBottleneck(taps[-1], cfg)
            self.decoder = Decoder(cfg.hidden, taps, extra=I2CBottleneck.MAPS)
        else:
            self.transformer = DifferenceTransformer(taps[-1], cfg) if cfg.depth > 0 else None
            self.decoder = Decoder(cfg.hidden if cfg.depth > 0 else taps[-1], taps)
        self.i2c_out = None  # the last training forward's I2COutput (its losses need the correlations)
        self.apply(_init_weights)

    def forward(self, history: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        """history, current: B x 3 x H x W in [-1, 1], H and W multiples of 16. Returns B x 1 x H x W logits."""
        check_input(history, current)
        # One encoder pass over both images: shared weights and shared BatchNorm statistics, so the
        # network is exactly symmetric in its two inputs in training as well as in evaluation.
        return self.head(self.encoder(torch.cat([history, current], 0)), history.shape[-2:])

    def head(self, taps: list[torch.Tensor], size) -> torch.Tensor:
        """Everything after the encoder: ``taps`` of the histories then the currents (2B items each), ``size``
        the input's H x W. Returns B x 1 x H x W logits (``models/routed.py`` runs two heads on one encoding)."""
        b = taps[0].shape[0] // 2
        d1, d_el, d2, d3, d4, d5 = (torch.abs(t[b:] - t[:b]) for t in taps)
        if self.i2c is None:
            x = self.transformer(d5) if self.transformer is not None else d5
            return self.decoder(x, d1, d_el, d2, d3, d4)
        # I2Correlation: current tokens attend to themselves and to the history's (not symmetric).
        out = self.i2c(taps[-1][:b], taps[-1][b:], d5)
        self.i2c_out = out if self.training else None
        if self.config.objective == "normal":  # the anomaly map is the discrepancy score
            return self.i2c.score_logits(out.score, *d5.shape[-2:], size)
        return self.decoder(out.features, d1, d_el, d2, d3, d4, maps=out.maps)


def build_encoder(cfg: ModelConfig) -> nn.Module:
    """The shared encoder a config names; every encoder returns six taps and says their ``channels``."""
    if cfg.encoder == "dcgan":
        return Encoder(cfg.ndf)
    if cfg.encoder in ENCODERS and cfg.encoder.startswith("efficientnet-lite"):  # a known Lite variant only
        from .efficientnet_lite import EfficientNetLite0Encoder

        return EfficientNetLite0Encoder(cfg.encoder)
    raise ValueError(f"unknown encoder {cfg.encoder!r}; choose one of {ENCODERS}")



def _init_weights(m: nn.Module) -> None:
    # DCGAN initialisation for convolutions and BatchNorm, truncated-normal-ish for linears.
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        nn.init.normal_(m.bias, std=1e-6)
