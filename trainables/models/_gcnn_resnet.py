"""``gcnn-resnet18``: ResNet18 on the p4m group (D4, e2cnn), the paper's GCNN for CIFAR-10.

The layout is the CIFAR ResNet18 of ``resnet18`` (3x3 stem, no max-pool, BasicBlocks [2, 2, 2, 2])
with regular-representation fields in place of channels: 23, 45, 91 and 181 fields a stage, i.e.
64, 128, 256 and 512 divided by sqrt(8), as in the p4m ResNet18 of Cohen & Welling's experiments,
which keeps the parameter count near ResNet18's (each field has 8 channels).

Two choices keep the logits *exactly* invariant to the eight grid symmetries (90-degree rotations
and flips), as for the other ``gcnn-*`` models (see :mod:`trainables.models._gcnn`):

* A stage halves the resolution with a 2x2 average pool *before* its first block (on both the
  residual path and the shortcut, as in ResNet-D), not with stride-2 convolutions: a stride-2
  convolution samples the even pixels, and a rotation of an even-sized image maps those onto
  odd ones. On even sizes (32 -> 16 -> 8 -> 4) the pooling windows tile the image and the
  symmetries map windows onto windows. Hence 32x32 inputs only.
* ``GroupPooling`` (max over each field's 8 channels) before the global average pool and the
  linear layer, where the GrouPy port flattens all 181 x 8 channels into the linear layer.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainables.models._common import GroupMaxPool, Normalize
from trainables.models._gcnn import E2Model, e2cnn_builder, make_gspace
from trainables.models._registry import register_model

# Regular fields per stage at width 1: ResNet18's 64-128-256-512 channels / sqrt(8).
_RESNET18_FIELDS: tuple[int, ...] = (23, 45, 91, 181)
_RESNET18_BLOCKS: tuple[int, ...] = (2, 2, 2, 2)


def _conv(in_type: Any, out_type: Any, kernel_size: int) -> Any:
    """An ``R2Conv`` (stride 1, padding ``k // 2``, no bias) with e2cnn's generalized He init."""
    from e2cnn import nn as enn

    conv = enn.R2Conv(
        in_type, out_type, kernel_size, padding=kernel_size // 2, bias=False, initialize=False
    )
    with torch.no_grad():
        conv.weights.copy_(
            he_init_std(in_type, out_type, kernel_size) * torch.randn_like(conv.weights)
        )
    return conv


def he_init_std(in_type: Any, out_type: Any, kernel_size: int) -> torch.Tensor:
    """The standard deviation e2cnn's ``generalized_he_init`` gives each weight of an ``R2Conv``
    between fields of one representation each, computed from a single field pair.

    e2cnn computes it from a Python dict per weight (40 of the 52 s it takes to build this model
    at width 1). With ``F_in`` copies of one input representation, every block of weights between
    an output and an input field repeats one pair's pattern (the weights are laid out output
    field, input field, basis element), and each count e2cnn divides by grows by ``F_in``.
    """
    from e2cnn import nn as enn
    from e2cnn.nn.init import _generalized_he_init_variances

    reprs = (
        {(r.name, r.size) for r in in_type.representations},
        {(r.name, r.size) for r in out_type.representations},
    )
    if any(len(r) != 1 for r in reprs):
        raise ValueError("he_init_std takes field types of one representation each")
    single_in = enn.FieldType(in_type.gspace, in_type.representations[:1])
    single_out = enn.FieldType(out_type.gspace, out_type.representations[:1])
    pair = enn.R2Conv(
        single_in, single_out, kernel_size, padding=kernel_size // 2, initialize=False
    )
    block = _generalized_he_init_variances(pair.basisexpansion)
    fields_in, fields_out = len(in_type), len(out_type)
    return block.repeat(fields_out * fields_in) / math.sqrt(fields_in)


class EquivariantBasicBlock(nn.Module):
    """Two 3x3 ``R2Conv``-``InnerBatchNorm`` layers with a shortcut, on ``GeometricTensor``s.

    With ``downsample`` the input is first average-pooled 2x2 (both paths); the shortcut is a
    1x1 ``R2Conv``-``InnerBatchNorm`` when the resolution or the field type changes.
    """

    def __init__(self, in_type: Any, out_type: Any, *, downsample: bool) -> None:
        super().__init__()
        from e2cnn import nn as enn

        self.pool = enn.PointwiseAvgPool(in_type, 2) if downsample else None
        self.conv1 = _conv(in_type, out_type, 3)
        self.bn1 = enn.InnerBatchNorm(out_type)
        self.relu1 = enn.ReLU(out_type, inplace=True)
        self.conv2 = _conv(out_type, out_type, 3)
        self.bn2 = enn.InnerBatchNorm(out_type)
        self.shortcut = None
        if downsample or in_type != out_type:
            self.shortcut = enn.SequentialModule(
                _conv(in_type, out_type, 1), enn.InnerBatchNorm(out_type)
            )
        self.relu2 = enn.ReLU(out_type, inplace=True)

    def forward(self, x: Any) -> Any:
        if self.pool is not None:
            x = self.pool(x)
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.relu2(out + skip)

    def export(self) -> _PlainBasicBlock:
        """The plain-torch block (call on a module in eval mode)."""
        return _PlainBasicBlock(
            pool=nn.AvgPool2d(2) if self.pool is not None else nn.Identity(),
            conv1=self.conv1.export(),
            bn1=self.bn1.export(),
            conv2=self.conv2.export(),
            bn2=self.bn2.export(),
            shortcut=self.shortcut.export() if self.shortcut is not None else nn.Identity(),
        )


class _PlainBasicBlock(nn.Module):
    """The exported :class:`EquivariantBasicBlock`: the same computation on plain tensors."""

    def __init__(
        self,
        *,
        pool: nn.Module,
        conv1: nn.Module,
        bn1: nn.Module,
        conv2: nn.Module,
        bn2: nn.Module,
        shortcut: nn.Module,
    ) -> None:
        super().__init__()
        self.pool, self.conv1, self.bn1 = pool, conv1, bn1
        self.conv2, self.bn2, self.shortcut = conv2, bn2, shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class EquivariantResNet(E2Model):
    """A CIFAR ResNet on regular D4 fields with D4-invariant logits (see the module docstring).

    Args:
        in_channels: input channels (trivial-representation fields).
        num_classes: number of logits.
        image_size: the input side; must be divisible by 8 (three exact 2x2 pools).
        normalize: the input normalisation applied first, in plain torch.
        width: multiplier on the fields of every stage (23-45-91-181 at 1).

    ``eval()`` caches the expanded filters; :meth:`export` gives a plain-torch module with the
    same eval-mode logits.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        normalize: Normalize,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        from e2cnn import nn as enn

        self._init_args = dict(
            in_channels=in_channels,
            num_classes=num_classes,
            image_size=image_size,
            width=width,
        )
        if image_size % 8 != 0:
            raise ValueError(f"image_size must be divisible by 8; got {image_size}")
        gspace = make_gspace("D4")
        self.group_order = int(gspace.fibergroup.order())
        self.normalize = normalize
        self.in_type = enn.FieldType(gspace, in_channels * [gspace.trivial_repr])
        fields = [max(1, round(f * width)) for f in _RESNET18_FIELDS]
        field_type = enn.FieldType(gspace, fields[0] * [gspace.regular_repr])
        self.stem = enn.SequentialModule(
            _conv(self.in_type, field_type, 3),
            enn.InnerBatchNorm(field_type),
            enn.ReLU(field_type, inplace=True),
        )
        stages = []
        for stage, (stage_fields, blocks) in enumerate(zip(fields, _RESNET18_BLOCKS, strict=True)):
            out_type = enn.FieldType(gspace, stage_fields * [gspace.regular_repr])
            stage_blocks = []
            for block in range(blocks):
                downsample = stage > 0 and block == 0
                stage_blocks.append(
                    EquivariantBasicBlock(field_type, out_type, downsample=downsample)
                )
                field_type = out_type
            stages.append(nn.Sequential(*stage_blocks))
        self.layers = nn.Sequential(*stages)
        self.gpool = enn.GroupPooling(field_type)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.linear = nn.Linear(fields[-1], num_classes)
        self._finish_init()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from e2cnn import nn as enn

        features = self.layers(self.stem(enn.GeometricTensor(self.normalize(x), self.in_type)))
        return self.linear(self.pool(self.gpool(features).tensor))

    def _plain_parts(self) -> OrderedDict[str, nn.Module]:
        return OrderedDict(
            normalize=self.normalize,
            stem=self.stem.export(),
            layers=nn.Sequential(
                *(nn.Sequential(*(block.export() for block in stage)) for stage in self.layers)
            ),
            gpool=GroupMaxPool(self.group_order),
            pool=self.pool,
            linear=self.linear,
        )


# e2cnn models gain nothing from channels_last (benchmarks/bench_layout.py).
register_model(
    "gcnn-resnet18", image_sizes=(32,), in_channels=(1, 3), group="D4", channels_last=False
)(
    e2cnn_builder(
        "gcnn-resnet18",
        EquivariantResNet,
        "ResNet18 on p4m (D4, e2cnn; 23-45-91-181 regular fields x width), the paper's CIFAR GCNN.",
    )
)
