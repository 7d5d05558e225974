"""``layout``: one PGD-AT epoch with the model stored ``channels_last`` against contiguous (NCHW).

The evidence behind ``channels_last: true`` being the default for every registered model: for
each model, two copies of the same weights, one laid out by
:func:`trainables.acceleration.accelerate` with ``channels_last=True`` (ours, what a ``Trial``
does) and one with ``channels_last=False`` (the baseline), each train one epoch of
:func:`trainables.training.train_epoch` on the same random images: rotation +-30 deg, PGD at
eps 0.3 (3 steps), batch 64. ``--quick`` times stdcnn and gcnn-c4 on 64 images; the full run
every registered model on 128 images (vgg16, resnet18 and gcnn-resnet18 at 32x32x3, the others at
28x28x1; gcnn-resnet18 only on a GPU).
"""

from __future__ import annotations

import copy

import torch

from benchmarks._harness import Result, device_sync, ratio_result, time_alternating

QUICK_MODELS = ("stdcnn", "gcnn-c4")
CIFAR_ONLY = ("vgg16", "resnet18", "gcnn-resnet18")
# About 11 minutes on 2 CPU cores, for a model registered without channels_last (e2cnn).
GPU_ONLY = ("gcnn-resnet18",)


def run(quick: bool, device: str) -> list[Result]:
    from trainables.acceleration import accelerate
    from trainables.models import build_model, list_models
    from trainables.training import AttackSettings, train_epoch

    n = 64 if quick else 128
    names = QUICK_MODELS if quick else tuple(list_models())
    if device == "cpu":
        names = tuple(name for name in names if name not in GPU_ONLY)
    results = []
    for name in names:
        channels, size = (3, 32) if name in CIFAR_ONLY else (1, 28)
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (n, channels, size, size), generator=generator)
        images = images.to(torch.uint8).to(device)
        labels = torch.randint(0, 10, (n,), generator=generator).to(device)
        torch.manual_seed(0)
        model = build_model(
            name, channels, 10, size, mean=(0.5,) * channels, std=(0.25,) * channels
        )

        def epoch_of(channels_last: bool, model=model, images=images, labels=labels):
            net = accelerate(
                copy.deepcopy(model), torch.device(device), channels_last=channels_last
            )
            optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
            rng = torch.Generator(device=device).manual_seed(0)
            settings = AttackSettings(steps=3, step_size=0.1)

            def epoch() -> None:
                train_epoch(
                    net,
                    optimizer,
                    images,
                    labels,
                    theta_deg=30.0,
                    translate_px=0.0,
                    eps=0.3,
                    method="pgd",
                    attack=settings,
                    batch_size=64,
                    generator=rng,
                )

            return epoch

        timing = time_alternating(
            epoch_of(True), epoch_of(False), repeats=3, warmup=1, sync=device_sync(device)
        )
        note = (
            f"{name} on {n} random {size}x{size}x{channels} images, batch 64, rotation +-30 deg, "
            "PGD eps 0.3 (3 x 0.1); ours channels_last, baseline contiguous"
        )
        results.append(
            ratio_result(f"layout {name} ({device})", timing, note=note, cpu_note=device == "cpu")
        )
    return results
