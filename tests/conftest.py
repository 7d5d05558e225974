from __future__ import annotations

import os

import pytest
import torch

from trainables.datasets import ImageDataset, iterate_batches, load_dataset
from trainables.models import build_model


@pytest.fixture(scope="session", autouse=True)
def data_dir(tmp_path_factory) -> str:
    """Datasets of every test (and of the CLI they run) are cached in a temporary directory."""
    path = str(tmp_path_factory.mktemp("data"))
    os.environ["CUSP_TUNE_DATA"] = path
    return path


@pytest.fixture(scope="session")
def digits(data_dir) -> ImageDataset:
    """A small synthetic-digits set, generated once per test session."""
    return load_dataset("synthetic-digits", data_dir, n_train=3000, n_test=500, seed=0)


@pytest.fixture(scope="session")
def trained_model(digits) -> torch.nn.Module:
    """A stdcnn trained for two epochs with plain training: accurate, not robust."""
    torch.manual_seed(0)
    info = digits.info
    model = build_model(
        "stdcnn", info.channels, info.num_classes, info.image_size, mean=info.mean, std=info.std
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(2):
        for x, y in iterate_batches(
            digits.train_images, digits.train_labels, 64, shuffle=True, generator=generator
        ):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@pytest.fixture
def test_batch(digits) -> tuple[torch.Tensor, torch.Tensor]:
    return digits.test_images[:200].float() / 255.0, digits.test_labels[:200]


@pytest.fixture(scope="session")
def local_ray():
    """A local Ray instance for the tests that need one, shut down at the end of the session."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    yield ray
    ray.shutdown()
