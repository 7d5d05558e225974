from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

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
def tiny_moasha() -> dict[str, object]:
    """Overrides of the quickstart job for a 6-trial MO-ASHA search of seconds (rungs at epochs
    1 and 2 of 4, so some trials are stopped early)."""
    return {
        "scheduler.kind": "moasha",
        "scheduler.grace_epochs": 1,
        "scheduler.reduction_factor": 2,
        "training.epochs": 4,
        "training.train_pgd_steps": 1,
        "search.trials": 6,
        "dataset.train_size": 128,
        "dataset.test_size": 60,
        "evaluation.subset": 20,
        "evaluation.pgd_steps": 1,
        "evaluation.profiles": False,
        "model_width": 0.25,
    }


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


HEAD_SCRIPT = """
import sys
from ray.cluster_utils import Cluster
port, agent_port = int(sys.argv[1]), int(sys.argv[2])
cluster = Cluster(initialize_head=True, head_node_args={
    "num_cpus": 2, "include_dashboard": True, "dashboard_host": "127.0.0.1",
    "dashboard_port": port, "dashboard_agent_listen_port": agent_port})
print("ready", flush=True)
sys.stdin.read()  # runs until the test closes stdin
cluster.shutdown()
"""


@pytest.fixture
def head_with_job_server():
    """A head with a job server, in a process of its own (no Ray state of this test process)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    head = subprocess.Popen(
        # Its own agent port: another Ray on this machine may hold the default (52365).
        [sys.executable, "-c", HEAD_SCRIPT, str(port), str(_free_port())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    address = f"http://127.0.0.1:{port}"
    try:
        assert head.stdout.readline().strip() == "ready"
        _wait_for_job_agent(address)
        yield address
    finally:
        head.stdin.close()  # the script shuts down the cluster it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()


def _wait_for_job_agent(address: str, timeout: float = 60) -> None:
    """A fresh head accepts jobs only once its job agent is up: submit no-ops until one runs."""
    from ray.job_submission import JobSubmissionClient

    deadline = time.monotonic() + timeout
    while True:
        try:
            JobSubmissionClient(address).submit_job(entrypoint="true")
            return
        except (RuntimeError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
