"""Models: every network takes images in [0,1] and normalises them in its first layer, so eps is in pixel units.

Build one with :func:`create_model`; the architecture modules register themselves in :data:`MODELS` on import.
"""

from pgdat.models import lowpass  # noqa: F401  (registers the low-pass wrapper model)
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
