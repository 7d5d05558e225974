"""The fast path of a trial on its device: memory format, cuDNN autotuning and ``torch.compile``.

(bf16 autocast is the ``amp`` flag of :func:`trainables.training.train_epoch`.)

What each choice was measured to do (``benchmarks/README.md``, 1 CPU thread): ``channels_last``
makes a PGD-AT epoch 1.18-1.33x faster for stdcnn, lenet and resnet18 and 1.02x for vgg16; for
the e2cnn models it was within noise either way (0.91-1.09x), so a ``Trial`` uses it for the
models registered with ``channels_last=True`` (the plain CNNs) unless told otherwise.
``torch.compile`` costs a 25-40 s compile per trial process and then ran 1.3-2x *slower* than
eager on the CPU, so it is off by default and meant for CUDA, where compiled kernels pay for the
compile in long trials.
"""

from __future__ import annotations

import torch
from torch import nn


def accelerate(
    model: nn.Module, device: torch.device, *, channels_last: bool = True, compile: bool = False
) -> nn.Module:
    """Move ``model`` to ``device`` in the memory format asked for and compile it, in place.

    ``channels_last`` stores 4-d weights NHWC: the convolutions then run in NHWC (the inputs are
    converted by the first convolution), which the CPU's oneDNN kernels and CUDA's tensor cores
    prefer. ``compile`` uses ``nn.Module.compile``, so the state dict keeps its keys and
    checkpoints load into an uncompiled model. Returns ``model``.
    """
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)
    if compile:
        model.compile()
    return model


def autotune_convolutions(device: torch.device) -> None:
    """On CUDA, let cuDNN benchmark its convolution algorithms for each new input shape.

    A trial sees a handful of shapes (the training batch, its last partial batch, the evaluation
    batch), so the one-off search pays for itself within the first epoch. The chosen algorithms
    may differ between processes, so CUDA runs are not bitwise reproducible; CPU runs are.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


__all__ = ["accelerate", "autotune_convolutions"]
