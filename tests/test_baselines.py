"""The comparison models: shapes, a few training steps that lower the loss, symmetry, the factory's errors."""
import pytest
import torch
import torch.nn.functional as F

from anodfdnet.models.baselines import ARCHS
from anodfdnet.errors import UserError
from anodfdnet.models import ModelConfig, build_model, count_parameters

NAMES = sorted(ARCHS)


def lite(name):
    return build_model(ModelConfig.from_preset("lite", 0, arch=name))


def square_pair(batch=2, size=64, seed=0):
    """Random history; current = history with a square of another texture; mask = that square."""
    g = torch.Generator().manual_seed(seed)
    history = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    current = history.clone()
    mask = torch.zeros(batch, 1, size, size)
    for i in range(batch):
        y, x = torch.randint(0, size - 20, (2,), generator=g).tolist()
        current[i, :, y : y + 16, x : x + 16] = torch.rand(3, 1, 1, generator=g) * 2 - 1
        mask[i, :, y : y + 16, x : x + 16] = 1
    return history, current, mask


@pytest.mark.parametrize("name", NAMES)
def test_output_shape(name):
    torch.manual_seed(0)
    model = lite(name).eval()
    print(f"{name}: {count_parameters(model):,} parameters (lite)")
    with torch.no_grad():
        for h, w in ((64, 64), (96, 128)):
            x = torch.rand(2, 3, h, w) * 2 - 1
            out = model(x, x.flip(-1))
            assert out.shape == (2, 1, h, w) and torch.isfinite(out).all()
    with pytest.raises(ValueError):
        model(torch.zeros(1, 3, 40, 40), torch.zeros(1, 3, 40, 40))


@pytest.mark.parametrize("name", NAMES)
def test_a_few_training_steps_lower_the_loss(name):
    torch.manual_seed(0)
    model = lite(name).train()
    history, current, mask = square_pair()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(12):
        loss = F.binary_cross_entropy_with_logits(model(history, current), mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < 0.8 * losses[0], losses


def test_fc_siam_diff_is_symmetric():
    torch.manual_seed(0)
    model = lite("fc-siam-diff").eval()
    history, current, _ = square_pair(seed=1)
    with torch.no_grad():
        a, b = model(history, current), model(current, history)
    assert torch.allclose(a, b, rtol=0, atol=1e-5), (a - b).abs().max()


def test_width_follows_the_preset():
    for name in NAMES:
        small = count_parameters(lite(name))
        big = count_parameters(build_model(ModelConfig.from_preset("lite", 0, arch=name, ndf=32)))
        assert big > 3 * small


def test_unknown_arch_is_a_user_error():
    with pytest.raises(UserError, match="unet-cat"):
        build_model(ModelConfig.from_preset("lite", 0, arch="segformer"))
