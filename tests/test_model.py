"""The network: shapes for every preset and depth, symmetry, parameter counts, bad inputs."""
import pytest
import torch

from anodfdnet.models import DEPTHS, PRESETS, ModelConfig, build_model, count_flops, count_parameters


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("depth", DEPTHS)
def test_shapes_at_256_and_another_multiple_of_16(preset, depth):
    torch.manual_seed(0)
    model = build_model(ModelConfig.from_preset(preset, depth)).eval()
    # depth 0 has no Transformer module at all
    assert (model.transformer is None) == (depth == 0)
    if depth:
        assert len(model.transformer.blocks) == depth
    sizes = [(256, 256), (96, 160)] if preset == "lite" else [(256, 256), (48, 80)]
    with torch.no_grad():
        for h, w in sizes:
            x = torch.randn(1, 3, h, w)
            assert model(x, torch.randn(1, 3, h, w)).shape == (1, 1, h, w)


def test_paper_widths_follow_the_paper():
    m = build_model(ModelConfig.from_preset("paper", 2))
    e = m.encoder
    assert [e.e1[0].out_channels, e.e_el[0].out_channels, e.e2[0].out_channels, e.e3[0].out_channels,
            e.e4[0].out_channels, e.e5[0].out_channels] == [64, 64, 128, 256, 512, 1024]
    assert all(layer[0].bias is None for layer in (e.e1, e.e_el, e.e2, e.e3, e.e4, e.e5))  # bias-free convs
    assert m.transformer.pos.shape == (1, 256, 1024) and float(m.transformer.pos.detach().abs().sum()) == 0.0
    blk = m.transformer.blocks[0]
    assert blk.heads == 16 and blk.mlp[0].out_features == 2048


@pytest.mark.parametrize("depth", [0, 2])
def test_symmetric_in_history_and_current(depth):
    torch.manual_seed(1)
    model = build_model(ModelConfig.from_preset("lite", depth))
    a, b = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(a, b), model(b, a))
    model.train()  # also with batch statistics: both images go through one encoder pass
    torch.manual_seed(2)
    ab = model(a, b)
    torch.manual_seed(2)
    ba = model(b, a)
    assert torch.allclose(ab, ba, atol=1e-6)


def test_identical_images_give_a_pair_independent_map():
    # |e(x) - e(x)| = 0 at every tap: the map cannot depend on the image content.
    model = build_model(ModelConfig.from_preset("lite", 1)).eval()
    x, y = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x, x), model(y, y))


def test_parameter_counts_and_flops_are_reported():
    counts = {(p, d): count_parameters(build_model(ModelConfig.from_preset(p, d))) for p in PRESETS for d in (0, 2)}
    for (p, d), n in sorted(counts.items()):
        print(f"{p} depth {d}: {n / 1e6:.2f}M parameters")
    assert 30e6 < counts[("paper", 2)] < 40e6  # the paper's widths at L=2: about 36M
    assert counts[("lite", 2)] < counts[("paper", 2)] / 10
    assert counts[("lite", 2)] > counts[("lite", 0)]
    assert count_flops(build_model(ModelConfig.from_preset("lite", 2)), 64) > 0


def test_bad_inputs_are_rejected():
    model = build_model(ModelConfig.from_preset("lite", 0)).eval()
    with pytest.raises(ValueError, match="multiples of 16"):
        model(torch.zeros(1, 3, 40, 40), torch.zeros(1, 3, 40, 40))
    with pytest.raises(ValueError, match="differ in shape"):
        model(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="unknown preset"):
        ModelConfig.from_preset("huge", 2)
