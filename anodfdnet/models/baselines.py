"""The comparison models of the AnoDFDNet paper, with AnoDFDNet's interface.

Every model here is built from a ``ModelConfig`` (through ``anodfdnet.models.registry.build_model``), takes
``forward(history, current)`` with B x 3 x H x W tensors in [-1, 1] (H and W multiples of 16) and returns
B x 1 x H x W logits. Widths follow ``cfg.ndf``, so the ``lite`` and ``paper`` presets scale them as they
scale AnoDFDNet (at ``paper``, ndf=64, the widths are the originals').

- ``unet-cat``: early fusion, the two images stacked into 6 channels, a plain U-Net (Ronneberger et al.
  2015): four 2x downsamplings, two conv-BN-ReLU per stage, widths ndf..16ndf, skips by concatenation.
- ``deeplabv3plus-cat``: early fusion into a DeepLabV3+ (Chen et al. 2018) with a ResNet-18-style
  backbone written here (no torchvision, no pretrained weights), output stride 16 (last stage dilated),
  ASPP with rates 6/12/18 and image pooling, and the decoder that fuses the stride-4 feature.
- ``fc-siam-diff``: FC-Siam-diff (Daudt, Le Saux, Boulch, ICIP 2018): a siamese encoder with shared
  weights, whose decoder takes the absolute differences of the two images' skips.

One deliberate change to FC-Siam-diff: the original decoder starts from the *second* image's pooled
deepest feature, which makes it asymmetric in its inputs. Here it starts from the absolute difference
of the two images' pooled deepest features, so the model is symmetric like every other difference
model in the package (and a swapped pair gives the same map in evaluation mode).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig, check_input


def _kaiming_init(module: nn.Module) -> None:
    """He initialisation for ReLU networks (U-Net, ResNet/DeepLab): conv weights, BN at identity."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _init_head(head: nn.Conv2d) -> None:
    """Logit heads get Xavier weights and a zero bias (as segmentation_models_pytorch), not He's gain."""
    nn.init.xavier_uniform_(head.weight)
    nn.init.zeros_(head.bias)


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (k - 1) // 2
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad, dilation, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


# ---------------------------------------------------------------------------------------------------
# U-Net on the concatenated pair
# ---------------------------------------------------------------------------------------------------
def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout))


class UnetCat(nn.Module):
    """History and current stacked into 6 channels, then a plain U-Net."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        w = [cfg.ndf * 2**i for i in range(5)]  # ndf, 2ndf, 4ndf, 8ndf, 16ndf
        self.inc = double_conv(6, w[0])  # w0 x H
        self.down = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), double_conv(w[i], w[i + 1])) for i in range(4))
        self.up = nn.ModuleList(nn.ConvTranspose2d(w[i + 1], w[i], 2, 2) for i in reversed(range(4)))
        self.dec = nn.ModuleList(double_conv(2 * w[i], w[i]) for i in reversed(range(4)))
        self.head = nn.Conv2d(w[0], 1, 1)
        _kaiming_init(self)
        _init_head(self.head)

    def forward(self, history: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        check_input(history, current)
        x = self.inc(torch.cat([history, current], 1))
        skips = [x]
        for down in self.down:  # H/2 .. H/16
            x = down(x)
            skips.append(x)
        skips.pop()  # the bottleneck is x itself
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([up(x), skips.pop()], 1))
        return self.head(x)


# ---------------------------------------------------------------------------------------------------
# DeepLabV3+ on the concatenated pair
# ---------------------------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs and an identity or 1x1 projection shortcut), optionally dilated."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x), inplace=True)


def res_stage(cin: int, cout: int, stride: int = 1, dilation: int = 1, blocks: int = 2) -> nn.Sequential:
    return nn.Sequential(BasicBlock(cin, cout, stride, dilation), *[BasicBlock(cout, cout, 1, dilation) for _ in range(blocks - 1)])


class ResNetOS16(nn.Module):
    """ResNet-18 layout (widths ndf, 2ndf, 4ndf, 8ndf) with output stride 16: the last stage is dilated."""

    def __init__(self, cin: int, ndf: int):
        super().__init__()
        self.stem = nn.Sequential(conv_bn_relu(cin, ndf, 7, 2), nn.MaxPool2d(3, 2, 1))  # ndf x H/4
        self.layer1 = res_stage(ndf, ndf)  # ndf  x H/4  (the low-level feature)
        self.layer2 = res_stage(ndf, 2 * ndf, stride=2)  # 2ndf x H/8
        self.layer3 = res_stage(2 * ndf, 4 * ndf, stride=2)  # 4ndf x H/16
        self.layer4 = res_stage(4 * ndf, 8 * ndf, dilation=2)  # 8ndf x H/16

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.layer1(self.stem(x))
        return low, self.layer4(self.layer3(self.layer2(low)))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3 (rates 6/12/18) and image pooling."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, ...] = (6, 12, 18), dropout: float = 0.5):
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_relu(cin, cout, 1)] + [conv_bn_relu(cin, cout, 3, dilation=r) for r in rates])
        # The pooled branch has no BatchNorm: over a 1x1 map it would fail on a batch of one in training.
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1), nn.ReLU(True))
        self.project = nn.Sequential(conv_bn_relu((len(rates) + 2) * cout, cout, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        outs.append(self.pool(x).expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(outs, 1))


class DeepLabV3PlusCat(nn.Module):
    """History and current stacked into 6 channels, then DeepLabV3+ (ResNet-18-style backbone, OS 16)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        n = cfg.ndf
        width = 4 * n  # 256 at the paper preset, as in DeepLabV3+
        low = max(8, 3 * n // 4)  # 48 at the paper preset
        self.backbone = ResNetOS16(6, n)
        self.aspp = ASPP(8 * n, width)
        self.low = conv_bn_relu(n, low, 1)
        self.decoder = nn.Sequential(conv_bn_relu(width + low, width), conv_bn_relu(width, width))
        self.head = nn.Conv2d(width, 1, 1)
        _kaiming_init(self)
        _init_head(self.head)

    def forward(self, history: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        check_input(history, current)
        low, deep = self.backbone(torch.cat([history, current], 1))  # n x H/4, 8n x H/16
        x = F.interpolate(self.aspp(deep), size=low.shape[-2:], mode="bilinear", align_corners=False)
        x = self.head(self.decoder(torch.cat([x, self.low(low)], 1)))  # 1 x H/4
        return F.interpolate(x, size=history.shape[-2:], mode="bilinear", align_corners=False)


# ---------------------------------------------------------------------------------------------------
# FC-Siam-diff
# ---------------------------------------------------------------------------------------------------
def _siam_conv(cin: int, cout: int, dropout: float) -> nn.Sequential:
    # Daudt et al.: 3x3 conv (with bias), BN, ReLU, Dropout2d(0.2) after every conv.
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(True), nn.Dropout2d(dropout))


def _siam_stack(chans: list[int], dropout: float) -> nn.Sequential:
    return nn.Sequential(*[_siam_conv(a, b, dropout) for a, b in zip(chans[:-1], chans[1:])])


def _upconv(c: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c, c, 3, stride=2, padding=1, output_padding=1)  # exact 2x upsampling


class FCSiamDiff(nn.Module):
    """FC-Siam-diff: shared encoder on each image, decoder over |skip differences| (see module note)."""

    def __init__(self, cfg: ModelConfig, dropout: float = 0.2):
        super().__init__()
        self.config = cfg
        c = [cfg.ndf * 2**i for i in range(4)]  # 16, 32, 64, 128 at ndf=16 (the original widths)
        self.enc = nn.ModuleList(
            [
                _siam_stack([3, c[0], c[0]], dropout),  # c0 x H
                _siam_stack([c[0], c[1], c[1]], dropout),  # c1 x H/2
                _siam_stack([c[1], c[2], c[2], c[2]], dropout),  # c2 x H/4
                _siam_stack([c[2], c[3], c[3], c[3]], dropout),  # c3 x H/8
            ]
        )
        self.up = nn.ModuleList([_upconv(c[3]), _upconv(c[2]), _upconv(c[1]), _upconv(c[0])])
        self.dec = nn.ModuleList(
            [
                _siam_stack([2 * c[3], c[3], c[3], c[2]], dropout),  # H/8
                _siam_stack([2 * c[2], c[2], c[2], c[1]], dropout),  # H/4
                _siam_stack([2 * c[1], c[1], c[0]], dropout),  # H/2
                _siam_stack([2 * c[0], c[0]], dropout),  # H
            ]
        )
        self.head = nn.Conv2d(c[0], 1, 3, padding=1)
        # PyTorch's default initialisation, as in the original code.

    def forward(self, history: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        check_input(history, current)
        b = history.shape[0]
        # One pass over both images: shared weights and shared BatchNorm statistics.
        x = torch.cat([history, current], 0)
        diffs = []
        for stage in self.enc:
            x = stage(x)
            diffs.append(torch.abs(x[b:] - x[:b]))
            x = F.max_pool2d(x, 2)
        x = torch.abs(x[b:] - x[:b])  # c3 x H/16; the original uses the current image's feature here
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([up(x), diffs.pop()], 1))
        return self.head(x)


ARCHS: dict[str, type[nn.Module]] = {
    "unet-cat": UnetCat,
    "deeplabv3plus-cat": DeepLabV3PlusCat,
    "fc-siam-diff": FCSiamDiff,
}

