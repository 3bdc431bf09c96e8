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
    # the same figures as from recentred(), the definition, on maps of every kind
    rng = np.random.default_rng(0)
    for prob in (rng.random((64, 64)), rng.random((64, 64)) ** 8, np.zeros((8, 8)), np.ones((8, 8))):
        for thr in (0.05, 0.2821, 0.5, 0.9):
            q = recentred(prob, thr)
            near = np.mean((q >= 0.2) & (q <= 0.8))
            qc = np.clip(q, 1e-6, 1 - 1e-6)
            entropy = np.mean(-(qc * np.log2(qc) + (1 - qc) * np.log2(1 - qc)))
            assert uncertainty(prob, thr) == pytest.approx((near, entropy), rel=1e-4, abs=1e-6)


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


def test_the_app_serves_the_least_sure_pairs_first_with_queue_order_uncertain(tmp_path):
    """ANODFDNET_QUEUE_ORDER=uncertain through app.py over raw HTTP: the Label tab's Next pair serves the pairs
    the app's default model is least sure about first, in the order computed here from its maps."""
    import re
    import uuid

    from conftest import served_app
    from test_crowd_app import call, config_fn

    pairs = write_tiny_pairs(tmp_path / "queue", n=5, size=48, seed=7)
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    torch.manual_seed(4)
    model = build_model(ModelConfig.from_preset("lite", 0))
    with torch.no_grad():
        model.decoder.head.weight.mul_(300.0)  # an untrained head gives p = 0.5 everywhere; this spreads the maps
    ckpt = save_checkpoint(ckpts / "only-d0.safetensors", model, {"threshold": 0.5})
    env = {"ANODFDNET_QUEUE": f"pairs:{pairs}", "ANODFDNET_LABELS_PER_PAIR": "1", "ANODFDNET_QUEUE_ORDER": "uncertain"}
    with served_app(tmp_path, ckpts, env) as url:
        # What the queue should serve, computed here from the maps of the app's default model (the shipped
        # effnet-d2 where it is present, else the one saved above) on the app's own path (its shared cache).
        from demo import models

        default = models.default_choice(models.available())
        model_path = models.shared_predictor(str(default.path))
        queue = LabelQueue(LabelStore(tmp_path / "scratch"), f"pairs:{pairs}", k=1)
        ranked = sorted((tuple(-v for v in uncertainty(model_path.predict(h, c), default.threshold)), i)
                        for i, h, c in ((i, *queue.pair_at(i)[1:]) for i in range(len(queue))))
        expected = [queue.source[i].name for _, i in ranked]
        assert expected[0] != sorted(expected)[0], "the seed must put another pair than the queue's first first"
        next_fn = config_fn(url, "load_next")

        def served(session: str) -> str:
            ok, out = call(url, next_fn, ["annotator " + session[:6], None], session)
            assert ok, out
            m = re.search(r"Pair `([^`]+)` loaded", str(out[-1]))
            assert m, out[-1]
            return m.group(1)

        first = uuid.uuid4().hex  # its first call starts the scoring; the same session asks again until it is done
        deadline = time.monotonic() + 120
        while served(first) != expected[0] and time.monotonic() < deadline:
            time.sleep(0.2)
        got = [served(first)] + [served(uuid.uuid4().hex) for _ in expected[1:]]  # each new session holds one more
    assert got == expected


def test_an_unknown_queue_order_is_refused_by_name(monkeypatch):
    from anodfdnet.errors import UserError
    from annotate.tab import queue_order

    monkeypatch.setenv("ANODFDNET_QUEUE_ORDER", "random")
    with pytest.raises(UserError, match="ANODFDNET_QUEUE_ORDER must be one of queue, uncertain"):
        queue_order()
    monkeypatch.delenv("ANODFDNET_QUEUE_ORDER")
    assert queue_order() == "queue"
