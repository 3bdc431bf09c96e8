"""The public home of ``Predictor``: ``from anodfdnet.predict import Predictor`` (it lives in ``anodfdnet.inference``)."""
from .inference.predictor import MAX_SIDE, Prediction, Predictor, iter_predictions, model_input_shape, prepare_pair  # noqa: F401
