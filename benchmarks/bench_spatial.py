"""``spatial``: our batched random rotation against the authors' per-sample PIL pipeline.

Ours: a uint8 batch already in memory (as a trial keeps its dataset) converted to float and
rotated by :func:`trainables.spatial.random_spatial`, one ``grid_sample`` call per batch
(bilinear sampling, zero fill).

Theirs (as the authors' scripts do, through torchvision's dataset classes): a ``Dataset`` that
turns each stored uint8 image into a PIL image, applies ``transforms.RandomRotation(theta)``
(PIL's nearest-neighbour sampling, zero fill) and ``transforms.ToTensor()``, batched by a
``DataLoader``. ``num_workers=0`` is the like-for-like figure (one process each);
``num_workers=2`` (persistent workers, so their start-up is not counted) is shown too.

Both produce a float batch in [0, 1] of randomly rotated images; a pass is one sweep over the
same images in batches of 256. Steady state only: the first pass of each (imports, worker
start-up, allocator warm-up) is a warm-up and is not timed.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks._harness import Result, device_sync, ratio_result, time_alternating

THETA = 30.0
BATCH = 256
TARGET = 3.0


class PILRotationDataset(torch.utils.data.Dataset):
    """The authors' path: stored uint8 arrays -> PIL image -> RandomRotation -> ToTensor."""

    def __init__(self, images_u8: np.ndarray, labels: np.ndarray, theta: float) -> None:
        from torchvision import transforms

        # (N, H, W) for grey images, (N, H, W, C) for colour ones, as torchvision stores them.
        self.images = (
            images_u8[:, 0] if images_u8.shape[1] == 1 else images_u8.transpose(0, 2, 3, 1)
        )
        self.labels = labels
        self.transform = transforms.Compose(
            [transforms.RandomRotation(theta), transforms.ToTensor()]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        image = Image.fromarray(self.images[index])
        return self.transform(image), int(self.labels[index])


def _images(kind: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` uint8 images (N, C, H, W) and labels: synthetic digits, or random RGB 32x32."""
    if kind == "28x28x1":
        from trainables.datasets import load_dataset

        data = load_dataset("synthetic-digits", n_train=n, n_test=10, cache=False)
        return data.train_images, data.train_labels
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
    return images, torch.randint(0, 10, (n,), generator=generator)


def run(quick: bool, device: str) -> list[Result]:
    from trainables.spatial import random_spatial

    n = 1024 if quick else 4096
    repeats = 3 if quick else 7
    sync = device_sync(device)
    results = []
    for kind in ("28x28x1", "32x32x3"):
        images, labels = _images(kind, n)
        images_dev = images.to(device)
        generator = torch.Generator(device=device).manual_seed(0)

        def ours(images_dev: torch.Tensor = images_dev, generator: torch.Generator = generator):
            for start in range(0, n, BATCH):
                x = images_dev[start : start + BATCH].float().div_(255)
                random_spatial(x, THETA, generator=generator)

        dataset = PILRotationDataset(images.numpy(), labels.numpy(), THETA)
        workers = (0,) if quick else (0, 2)
        for num_workers in workers:
            loader = torch.utils.data.DataLoader(
                dataset,
                batch_size=BATCH,
                shuffle=False,
                num_workers=num_workers,
                persistent_workers=num_workers > 0,
            )

            def theirs(loader: torch.utils.data.DataLoader = loader) -> None:
                for x, _ in loader:
                    x.to(device)

            timing = time_alternating(ours, theirs, repeats=repeats, warmup=1, sync=sync)
            per_image_ours = timing.ours_median / n
            per_image_theirs = timing.baseline_median / n
            results.append(
                ratio_result(
                    f"spatial {kind} workers={num_workers}",
                    timing,
                    min_ratio=TARGET if num_workers == 0 else None,
                    cpu_note=num_workers == 0 and device == "cpu",
                    note=(
                        f"{n} images in batches of {BATCH}, rotation U[-{THETA:g}, {THETA:g}] deg; "
                        f"ours {1 / per_image_ours:,.0f} img/s (bilinear, {device}), theirs "
                        f"{1 / per_image_theirs:,.0f} img/s (PIL nearest, DataLoader "
                        f"num_workers={num_workers})"
                    ),
                )
            )
            del loader
    return results
