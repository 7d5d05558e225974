"""The standard CIFAR-10 forms of VGG16 (with BN) and ResNet18 (as in kuangliu/pytorch-cifar)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainables.models._common import Normalize
from trainables.models._registry import register_model

_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip


class VGG(nn.Module):
    """VGG with BN for 32x32 inputs: five conv stages down to 1x1x512, then one linear layer."""

    def __init__(
        self,
        cfg: tuple[int | str, ...],
        *,
        in_channels: int,
        num_classes: int,
        normalize: Normalize,
    ) -> None:
        super().__init__()
        self.normalize = normalize
        layers: list[nn.Module] = []
        channels = in_channels
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                assert isinstance(item, int)
                layers += [
                    nn.Conv2d(channels, item, 3, padding=1),
                    nn.BatchNorm2d(item),
                    nn.ReLU(inplace=True),
                ]
                channels = item
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.features(self.normalize(x))
        return self.classifier(out.flatten(1))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet: 3x3 stem (no max-pool), four BasicBlock stages, global average pool, linear."""

    def __init__(
        self,
        num_blocks: tuple[int, int, int, int],
        *,
        in_channels: int,
        num_classes: int,
        normalize: Normalize,
    ) -> None:
        super().__init__()
        self.normalize = normalize
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        planes = 64
        stages = []
        for i, (width, blocks) in enumerate(zip((64, 128, 256, 512), num_blocks, strict=True)):
            stride = 1 if i == 0 else 2
            layer = []
            for s in [stride] + [1] * (blocks - 1):
                layer.append(BasicBlock(planes, width, s))
                planes = width
            stages.append(nn.Sequential(*layer))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(self.normalize(x))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


@register_model("vgg16", image_sizes=(32,), in_channels=(1, 3))
def vgg16(
    *, in_channels: int, num_classes: int, image_size: int, normalize: Normalize
) -> nn.Module:
    """VGG16 with BN, CIFAR-10 form (32x32 inputs, 512 -> num_classes classifier)."""
    del image_size  # only 32 is registered
    return VGG(_VGG16_CFG, in_channels=in_channels, num_classes=num_classes, normalize=normalize)


@register_model("resnet18", image_sizes=(28, 32), in_channels=(1, 3))
def resnet18(
    *, in_channels: int, num_classes: int, image_size: int, normalize: Normalize
) -> nn.Module:
    """ResNet18, CIFAR-10 form (3x3 stem, no max-pool, BasicBlocks [2, 2, 2, 2])."""
    del image_size  # global average pooling makes the network size-agnostic
    return ResNet(
        (2, 2, 2, 2), in_channels=in_channels, num_classes=num_classes, normalize=normalize
    )
