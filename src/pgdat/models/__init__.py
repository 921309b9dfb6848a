"""Models: every network takes images in [0,1] and normalises them in its first layer, so eps is in pixel units.

Build one with :func:`create_model`. Each architecture registers its builders with ``@MODELS.register`` next to
their code; the import list below is the one list of those modules (importing any ``pgdat.models`` module runs it).
"""

from pgdat.models import lowpass, preact_resnet, resnet, small_cnn, wide_resnet  # noqa: F401  (register models)
from pgdat.models.layers import layer_groups
from pgdat.models.normalize import Normalize, NormalizedModel
from pgdat.models.preact_resnet import PreActBlock, PreActResNet
from pgdat.models.registry import MODELS, create_model, model_names, model_options
from pgdat.models.resnet import BasicBlock, ResNet
from pgdat.models.small_cnn import SmallCNN
from pgdat.models.wide_resnet import WideBasicBlock, WideResNet

__all__ = [
    "MODELS",
    "BasicBlock",
    "Normalize",
    "NormalizedModel",
    "PreActBlock",
    "PreActResNet",
    "ResNet",
    "SmallCNN",
    "WideBasicBlock",
    "WideResNet",
    "create_model",
    "layer_groups",
    "model_names",
    "model_options",
]
