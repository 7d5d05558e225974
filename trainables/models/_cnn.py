"""Small plain CNNs for 28x28 / 32x32 inputs: ``stdcnn`` and the Madry et al. MNIST ``lenet``."""

from __future__ import annotations

import torch
from torch import nn

from trainables.errors import UserError
from trainables.models._common import Normalize
from trainables.models._registry import register_model


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def check_width(name: str, width: float) -> float:
    """Validate a width multiplier option; raise :class:`UserError` if it is not a number > 0."""
    if isinstance(width, bool) or not isinstance(width, int | float) or not width > 0:
        raise UserError(f"{name}: width must be a number > 0 (1.0 is the default); got {width!r}")
    return float(width)


class StdCNN(nn.Module):
    """Plain CNN: 4 conv3x3-BN-ReLU layers (32-32-64-64 x ``width``), 2 max-pools, a 2-layer head.

    ``28x28 -> 14x14 -> 7x7`` (or ``32 -> 16 -> 8``), flattened, then ``Linear -> ReLU -> Linear``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        normalize: Normalize,
        width: float = 1.0,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        c1, c2 = _scaled(32, width), _scaled(64, width)
        self.normalize = normalize
        self.features = nn.Sequential(
            *_conv_bn_relu(in_channels, c1),
            *_conv_bn_relu(c1, c1),
            nn.MaxPool2d(2),
            *_conv_bn_relu(c1, c2),
            *_conv_bn_relu(c2, c2),
            nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * side * side, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.normalize(x)))


class LeNet(nn.Module):
    """The MNIST network of Madry et al. (2018) used for PGD adversarial training.

    conv5x5(32, same)-ReLU-maxpool, conv5x5(64, same)-ReLU-maxpool, fc 1024-ReLU, fc num_classes.
    """

    def __init__(
        self, *, in_channels: int, num_classes: int, image_size: int, normalize: Normalize
    ) -> None:
        super().__init__()
        self.normalize = normalize
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * side * side, 1024),
            nn.ReLU(inplace=True),
            nn.Linear(1024, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.normalize(x)))


@register_model("stdcnn", image_sizes=(28, 32), in_channels=(1, 3))
def stdcnn(
    *,
    in_channels: int,
    num_classes: int,
    image_size: int,
    normalize: Normalize,
    width: float = 1.0,
) -> nn.Module:
    """Plain CNN: conv 32-32-64-64 (x width) with BN, 2 max-pools, fc 128 (the StdCNN role)."""
    return StdCNN(
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        normalize=normalize,
        width=check_width("stdcnn", width),
    )


@register_model("lenet", image_sizes=(28, 32), in_channels=(1, 3))
def lenet(
    *, in_channels: int, num_classes: int, image_size: int, normalize: Normalize
) -> nn.Module:
    """Madry et al. MNIST net: conv 32 5x5, pool, conv 64 5x5, pool, fc 1024, fc classes."""
    return LeNet(
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        normalize=normalize,
    )
