"""Small plain-torch building blocks shared by the model families."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """Per-channel affine normalisation ``(x - mean) / std`` of NCHW images.

    ``mean`` and ``std`` are buffers of shape ``(1, C, 1, 1)``: they move with ``.to(device)``,
    follow ``.double()``/``.half()``, and are saved in (and restored from) the ``state_dict``, so a
    checkpoint carries the normalisation it was trained with. Every model built by
    :func:`trainables.models.build_model` applies one of these first, so the model consumes raw
    images in ``[0, 1]`` and attacks can work in pixel space.

    Args:
        mean: one value per input channel.
        std: one value per input channel, each > 0.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} values but std has {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std values must be > 0; got {tuple(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    @classmethod
    def identity(cls, channels: int) -> Normalize:
        """A ``Normalize`` with mean 0 and std 1 on ``channels`` channels (a no-op)."""
        return cls((0.0,) * channels, (1.0,) * channels)

    @property
    def channels(self) -> int:
        """The number of channels this normalisation expects."""
        return int(self.mean.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        mean = tuple(round(v, 4) for v in self.mean.flatten().tolist())
        std = tuple(round(v, 4) for v in self.std.flatten().tolist())
        return f"mean={mean}, std={std}"


class GroupMaxPool(nn.Module):
    """Max over blocks of ``group_order`` consecutive channels: ``(N, F*G, H, W) -> (N, F, H, W)``.

    The plain-torch equivalent of e2cnn's ``GroupPooling`` on regular-representation fields (whose
    own export, ``MaxPoolChannels``, is an e2cnn class).
    """

    def __init__(self, group_order: int) -> None:
        super().__init__()
        if group_order < 1:
            raise ValueError(f"group_order must be >= 1; got {group_order}")
        self.group_order = group_order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.reshape(n, c // self.group_order, self.group_order, h, w).amax(dim=2)

    def extra_repr(self) -> str:
        return f"group_order={self.group_order}"
