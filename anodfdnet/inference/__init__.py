"""Inference: from a checkpoint and a pair of images to a probability map.

- ``pipeline``: the one path from a pair to a map (prepare the pair, run the model, upsample), used by
  prediction, evaluation and training's validation;
- ``predictor``: ``Predictor`` (a checkpoint loaded once, any image size, thread-safe) and
  ``iter_predictions`` (every pair of a source, batched, decoded in threads);
- ``runtime``: the inference paths (eager, channels-last, bf16, compile, ONNX Runtime) and ``auto``;
- ``onnx_export``: the ONNX export of a checkpoint, and finding and opening the export of a checkpoint.

``Predictor`` is also importable as ``anodfdnet.predict.Predictor``.
"""
from .predictor import Prediction, Predictor, iter_predictions

__all__ = ["Prediction", "Predictor", "iter_predictions"]
