"""Inference-time rewrites of a model that keep its function: BatchNorm folding, then one oneDNN call per
convolution and the activation after it.

In evaluation a BatchNorm is a per-channel affine map with fixed statistics, so ``conv -> BN`` equals one
convolution with rescaled weights and a bias. Folding removes every BatchNorm call (a fifth of the CPU time
of the EfficientNet-Lite0 encoder, which has 33 of them at full resolution) without changing the function
beyond float rounding.

On a CPU the activation after each convolution is a pass of its own over the output (an in-place ReLU6
over the EfficientNet's widest map cost twice the 1x1 convolution that made it). oneDNN applies it inside
the convolution instead (``torch.ops.mkldnn._convolution_pointwise``, the call ``torch.compile``'s CPU
backend makes): ``fuse_activations`` replaces each ``conv [-> folded BN] [-> ReLU / ReLU6 / LeakyReLU]``
run by one ``FusedConv``. The function is unchanged: on the shipped effnet-d2 the logits were bit-identical
in fp32 and under bf16 autocast (ReLU and ReLU6 commute with rounding to bf16; LeakyReLU's slope may move a
bf16 result by an ulp); ``tests/test_runtime.py`` checks both. Measured here (Xeon, 2 threads, 256x256, bf16
autocast, model only): effnet d2 16.2 -> 14.1 ms, lite d2 7.7 -> 7.2 ms, Unet-cat 10.5 -> 9.3 ms.
Only for inference: the rewritten copy has no BatchNorm to train and no autograd formula.

oneDNN runs these calls in bf16 only on CPUs with AVX-512 BW/VL/DQ or AVX-NE-CONVERT (in fp16 with AVX-512 FP16
or AMX FP16); elsewhere it raises (found on an AVX2-only AMD EPYC). There, under autocast, a ``FusedConv``
computes what it replaced, the convolution and then the activation (``onednn_supports``).
"""
from __future__ import annotations

import copy
import functools

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..models.efficientnet_lite import Conv2dSame

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with each ``conv -> BatchNorm2d`` pair inside an ``nn.Sequential``
    fused into one convolution (the BatchNorm replaced by ``nn.Identity``); ``model`` is not changed."""
    folded = copy.deepcopy(model).eval()
    for seq in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if isinstance(conv, _CONVS) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                seq._modules[a] = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
                seq._modules[b] = nn.Identity()
    return folded


def onednn_fusion_available() -> bool:
    """Whether this torch build has oneDNN's fused convolution calls (CPU builds with mkldnn do)."""
    try:
        return torch.backends.mkldnn.is_available() and all(
            hasattr(torch.ops.mkldnn, op) for op in ("_convolution_pointwise", "_convolution_transpose_pointwise"))
    except (AttributeError, RuntimeError):
        return False


# torch's own checks for oneDNN's low-precision convolutions on this CPU
_LOWP_CHECKS = {torch.bfloat16: "_is_mkldnn_bf16_supported", torch.float16: "_is_mkldnn_fp16_supported"}


@functools.lru_cache(maxsize=None)
def onednn_supports(dtype: torch.dtype) -> bool:
    """Whether oneDNN's fused convolutions run in ``dtype`` on this CPU (float32: always where oneDNN is)."""
    if dtype == torch.float32:
        return True
    try:
        return bool(getattr(torch.ops.mkldnn, _LOWP_CHECKS[dtype])())
    except (AttributeError, KeyError, RuntimeError):
        return False


def _post_op(act: nn.Module | None) -> tuple[str, list[float]] | None:
    """oneDNN's name and scalars for an activation module; None where it has no exact equivalent."""
    if act is None:
        return "none", []
    if isinstance(act, nn.ReLU):
        return "relu", []
    if isinstance(act, nn.Hardtanh):  # ReLU6 is Hardtanh(0, 6)
        return "hardtanh", [float(act.min_val), float(act.max_val)]
    if isinstance(act, nn.LeakyReLU):
        return "leaky_relu", [float(act.negative_slope)]
    return None


class FusedConv(nn.Module):
    """One convolution (or transposed convolution) and the activation after it, as one oneDNN call on
    the CPU. Follows autocast like the convolution it replaces: under CPU autocast the input and weights
    are cast to its dtype (the weights once, then cached) and the output has that dtype."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d, attr: str, scalars: list[float], act: nn.Module | None = None):
        super().__init__()
        self.act = act if act is not None else nn.Identity()  # what ``attr`` stands for, for ``_unfused``
        self.transpose = isinstance(conv, nn.ConvTranspose2d)
        self.register_buffer("weight", conv.weight.detach().clone())
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())
        self.stride, self.dilation, self.groups = list(conv.stride), list(conv.dilation), conv.groups
        self.padding = list(conv.padding)
        self.output_padding = list(getattr(conv, "output_padding", (0, 0)))
        self.crop = conv.crop if isinstance(conv, Conv2dSame) else None  # Conv2dSame's inference form
        if self.crop is not None:
            self.padding = [conv.inference_padding] * 2
        self.attr, self.scalars = attr, scalars
        self._cast: dict[torch.dtype, tuple] = {}

    def _params(self, dtype: torch.dtype):
        if dtype == self.weight.dtype:
            return self.weight, self.bias
        if dtype not in self._cast:  # benign race: two threads would store the same tensors
            w = self.weight.to(dtype).contiguous(memory_format=torch.channels_last)
            self._cast[dtype] = (w, None if self.bias is None else self.bias.to(dtype))
        return self._cast[dtype]

    def _apply(self, fn, recurse=True):
        self._cast = {}  # device or format moves invalidate the cast copies
        return super()._apply(fn, recurse)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled("cpu"):
            x = x.to(torch.get_autocast_dtype("cpu"))
        w, b = self._params(x.dtype)
        if not onednn_supports(x.dtype):
            return self._unfused(x, w, b)
        if self.transpose:
            y = torch.ops.mkldnn._convolution_transpose_pointwise(
                x, w, b, self.padding, self.output_padding, self.stride, self.dilation, self.groups, self.attr, self.scalars, "")
        else:
            y = torch.ops.mkldnn._convolution_pointwise(
                x, w, b, self.padding, self.stride, self.dilation, self.groups, self.attr, self.scalars, "")
        return y if self.crop is None else self.crop(y)

    def _unfused(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        """The convolution and then the activation module, as the modules this one replaced compute them."""
        if self.transpose:
            y = F.conv_transpose2d(x, w, b, self.stride, self.padding, self.output_padding, self.groups, self.dilation)
        else:
            y = F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)
        y = self.act(y)
        return y if self.crop is None else self.crop(y)


def _fusable(conv: nn.Module) -> bool:
    return (isinstance(conv, _CONVS) and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
            and conv.weight.dim() == 4 and conv.weight.device.type == "cpu")  # oneDNN's calls are CPU-only


def fuse_activations(model: nn.Module) -> nn.Module:
    """Replace, inside every ``nn.Sequential`` of a BatchNorm-folded model (``fold_batchnorm``), each
    convolution, the Identity folding left and the activation after it by one ``FusedConv`` (in place;
    returns ``model``). Leaves the model alone where this torch has no oneDNN (``onednn_fusion_available``)."""
    if not onednn_fusion_available():
        return model
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for i, name in enumerate(names):
            conv = seq._modules[name]
            if not _fusable(conv):
                continue
            j = i + 1
            while j < len(names) and isinstance(seq._modules[names[j]], nn.Identity):
                j += 1
            act = seq._modules[names[j]] if j < len(names) else None
            post = _post_op(act)
            if post is None:  # an activation oneDNN has no exact form of: fuse the convolution alone
                post, act = ("none", []), None
            seq._modules[name] = FusedConv(conv, *post, act=act)
            if act is not None:
                seq._modules[names[j]] = nn.Identity()
    return model
