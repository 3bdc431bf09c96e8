"""The checkpoints the app ships: all five load, fit the size budget, and reach the stated minimum on a
small slice of each validation set (the model card has the full-set figures).

The minimums are well below what the files measured when they shipped, so a broken loader, a wrong
preprocessing (say, images not scaled to [-1, 1]) fails, while a retrained, better file still passes."""
import pytest
import torch

from anodfdnet.checkpoint import SHIPPED_DIR, load_checkpoint, read_info
from anodfdnet.data import parse_spec
from anodfdnet.evaluate import evaluate
from anodfdnet.models import DEPTHS

from conftest import REAL_DATA, needs_real_data

FILES = {d: SHIPPED_DIR / f"anodfdnet-effnet-d{d}.safetensors" for d in DEPTHS}

# (SPEC, pairs in the slice, metric, minimum), at threshold 0.5 without alignment. effnet-d2 measured, when
# it shipped: DeepPCB F1 0.91 on these 8 pairs, tunnel F1 0.42 on 16 (the earlier lite files found no crack at
# all: F1 0), synth F1 0.71, synth hard AUC 0.91.
SLICES = {
    "deeppcb": (f"deeppcb:{REAL_DATA}/deeppcb/trainval.txt@val", 8, "f1", 0.6),
    "tunnel": (f"ba:{REAL_DATA}/tunnel_synthetic@val", 16, "f1", 0.2),
    "synth": ("synth:2000@val", 16, "f1", 0.4),
    "synth-hard": ("synth:1000:1:hard@val", 16, "auc", 0.8),
}


def test_all_five_depths_are_shipped_and_fit_100_mb():
    missing = [p.name for p in FILES.values() if not p.is_file()]
    assert not missing, f"missing shipped checkpoints: {missing}"
    total = sum(p.stat().st_size for p in FILES.values())
    assert total <= 100e6, f"the five effnet checkpoints take {total / 1e6:.1f} MB"
    for d, p in FILES.items():
        info = read_info(p)
        assert (info.config.preset, info.config.encoder, info.config.depth) == ("effnet", "efficientnet-lite0", d)
        assert info.eval_size is None  # evaluated at native resolution, as trained (crops)
        assert info.meta["val_metrics"] and info.meta["steps"] > 0 and info.meta["data"]
        assert 0 < info.threshold < 1  # calibrated on its validation pairs


@needs_real_data
@pytest.mark.parametrize("depth", DEPTHS)
def test_reaches_the_stated_minimum_on_a_slice_of_each_validation_set(depth):
    model, info = load_checkpoint(FILES[depth])
    for name, (spec, n, metric, minimum) in SLICES.items():
        m = evaluate(model, parse_spec(spec), info.eval_size, torch.device("cpu"), limit=n, progress=False)
        assert m[metric] >= minimum, f"effnet-d{depth} on {name}: {metric} {m[metric]:.3f} < {minimum}"
