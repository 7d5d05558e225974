"""Models for cusp-tune trials: a name -> builder registry over plain and equivariant CNNs.

Every model takes float images in ``[0, 1]`` (NCHW) and normalises them itself (its first module is
a :class:`Normalize`), so attacks and spatial transforms work in pixel space::

    model = build_model("gcnn-c4", in_channels=1, num_classes=10, image_size=28,
                        mean=(0.1307,), std=(0.3081,))
    fast = export_model(model)  # plain torch, eval mode, same logits

Registered: ``stdcnn``, ``lenet`` (28/32 px), ``vgg16`` (32 px), ``resnet18`` (28/32 px) and the
e2cnn models ``gcnn-c4``, ``gcnn-c8``, ``gcnn-d4`` (28/32 px) and ``gcnn-resnet18`` (the paper's
p4m ResNet18, 32 px), all for 1 or 3 input channels.
"""

from __future__ import annotations

from trainables.models import _cifar, _cnn, _gcnn, _gcnn_resnet  # noqa: F401  (register the builders)
from trainables.models._common import GroupMaxPool, Normalize
from trainables.models._gcnn import EquivariantCNN
from trainables.models._gcnn_resnet import EquivariantResNet
from trainables.models._registry import (
    ModelBuilder,
    ModelSpec,
    build_model,
    export_model,
    get_model_spec,
    list_models,
    register_model,
)

__all__ = [
    "EquivariantCNN",
    "EquivariantResNet",
    "GroupMaxPool",
    "ModelBuilder",
    "ModelSpec",
    "Normalize",
    "build_model",
    "export_model",
    "get_model_spec",
    "list_models",
    "register_model",
]
