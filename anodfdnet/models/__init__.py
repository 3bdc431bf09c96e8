"""The architectures, in rooms that follow the paper: the config every model is built from (``config``),
the method itself (``anodfdnet``, reading top to bottom like the paper's figure), the comparison models
(``baselines``) and the one registry that builds any of them (``registry``).

``from anodfdnet.models import ModelConfig, build_model`` is the usual entry.
"""
from .config import DEPTHS, PRESETS, ModelConfig, check_input
from .registry import ARCHS, build_model, count_flops, count_parameters, describe

__all__ = ["ARCHS", "DEPTHS", "PRESETS", "ModelConfig", "build_model", "check_input", "count_flops", "count_parameters", "describe"]
