"""Inference: ``Predictor`` (``predictor``), the inference paths (``runtime``) and the ONNX export."""
