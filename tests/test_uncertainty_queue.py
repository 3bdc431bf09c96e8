"""The Label queue's "least sure first" order: scores from a real model's probability maps, checked against the
same maps computed here, and the order the queue serves."""
import time

import numpy as np
import pytest
import torch

from anodfdnet.checkpoint import save_checkpoint
from anodfdnet.models import ModelConfig, build_model
from anodfdnet.predict import Predictor
from annotate.queue import LabelQueue
from annotate.store import LabelStore
from annotate.uncertainty import UncertaintyScores, recentred, uncertainty

from conftest import write_tiny_pairs


def test_uncertainty_is_the_area_near_the_threshold_and_the_entropy():
    t = 0.3
    assert recentred(np.array([t]), t)[0] == pytest.approx(0.5)
    sure = np.array([0.001, 0.999, 0.0005, 0.9995])
    torn = np.array([0.3, 0.31, 0.29, 0.999])  # three pixels at the threshold
    assert uncertainty(sure, t)[0] == 0.0 and uncertainty(torn, t)[0] == pytest.approx(0.75)
    assert uncertainty(torn, t)[1] > uncertainty(sure, t)[1]
    # q within [0.2, 0.8] means odds within a factor 4 of the threshold's
    odds = t / (1 - t)
    inside, outside = odds * 3.9, odds * 4.1
    assert uncertainty(np.array([inside / (1 + inside)]), t)[0] == 1.0
    assert uncertainty(np.array([outside / (1 + outside)]), t)[0] == 0.0


def test_the_queue_serves_the_least_sure_pairs_first(tmp_path):
    pairs = write_tiny_pairs(tmp_path / "queue", n=6, size=48, seed=3)
    torch.manual_seed(1)
    ckpt = save_checkpoint(tmp_path / "m.safetensors", build_model(ModelConfig.from_preset("lite", 0)), {"threshold": 0.5})
    predictor = Predictor(str(ckpt), device="cpu")
    queue = LabelQueue(LabelStore(tmp_path / "labels"), f"pairs:{pairs}", k=1)
    # What the queue should do, computed here from the model's maps: near share first, entropy second.
    expected = []
    for i in range(len(queue)):
        h, hist, cur = queue.pair_at(i)
        q = np.clip(predictor.predict(hist, cur).astype(np.float64), 1e-6, 1 - 1e-6)  # threshold 0.5: q is p itself
        near = float(np.mean((q >= 0.2) & (q <= 0.8)))
        ent = float(np.mean(-(q * np.log2(np.clip(q, 1e-6, 1)) + (1 - q) * np.log2(np.clip(1 - q, 1e-6, 1)))))
        expected.append((-near, -ent, i, h))
    expected = [h for *_, h in sorted(expected)]
    scores = UncertaintyScores(predictor)
    scores.start(len(queue), queue.pair_at)
    deadline = time.monotonic() + 60
    while scores.done < len(queue) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scores.done == len(queue) and not scores.failed
    served = [queue.next_for(f"a{j}", f"holder{j}", uncertainty=scores).content_hash for j in range(len(queue))]
    assert served == expected
    plain = LabelQueue(LabelStore(tmp_path / "labels2"), f"pairs:{pairs}", k=1)
    assert [plain.next_for(f"a{j}", f"h{j}").index for j in range(len(queue))] == list(range(len(queue)))
