"""Searches on a real two- and three-node Ray cluster on 127.0.0.1, started and stopped here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY = {
    "dataset.train_size": 256,
    "dataset.test_size": 80,
    "model_width": 0.25,
    "training.train_pgd_steps": 1,
    "evaluation.subset": 40,
    "evaluation.pgd_steps": 2,
    "evaluation.profiles": "false",
    "search.max_concurrent": 2,
}


def _launch(
    address: str, storage: Path, name: str, cwd: Path | None = None, **sets
) -> subprocess.Popen:
    args = [
        sys.executable,
        "-m",
        "tune_jobs",
        "launch",
        "quickstart",
        "--address",
        address,
        "--storage",
        str(storage),
        "--name",
        name,
    ]
    for key, value in {**TINY, **sets}.items():
        args += ["--set", f"{key}={value}"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd
    )


def _results(experiment: Path) -> dict[str, list[dict]]:
    out = {}
    if experiment.is_dir():
        for trial in sorted(experiment.glob("trial_*")):
            result = trial / "result.json"
            lines = result.read_text().splitlines() if result.is_file() else []
            out[trial.name] = [json.loads(line) for line in lines if line.strip()]
    return out


@pytest.fixture
def cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        yield cluster
    finally:
        cluster.shutdown()


def test_search_spreads_over_two_nodes(cluster, tmp_path):
    cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    process = _launch(
        cluster.address, tmp_path, "spread", **{"search.trials": 4, "training.epochs": 1}
    )
    output = process.communicate(timeout=600)[0]
    assert process.returncode == 0, output
    assert "4 of 4 trials completed" in output
    results = _results(tmp_path / "spread")
    nodes = {epoch["node_id"] for trial in results.values() for epoch in trial}
    assert len(results) == 4 and len(nodes) == 2


def test_killed_worker_node_fails_over_from_the_last_checkpoint(cluster, tmp_path):
    workers = [cluster.add_node(num_cpus=1), cluster.add_node(num_cpus=1)]
    cluster.wait_for_nodes()
    # Enough epochs left after the victim is picked that it cannot finish on its node before the
    # node is gone: the driver writes result.json with some lag, more so on a loaded machine.
    epochs = 10
    sets = {"search.trials": 2, "training.epochs": epochs, "failure.max_retries": 2}
    process = _launch(cluster.address, tmp_path, "failover", **sets, **{"dataset.train_size": 512})
    experiment = tmp_path / "failover"
    victim = None
    deadline = time.monotonic() + 300
    try:
        while victim is None:
            assert time.monotonic() < deadline, "no trial reached its first checkpoint"
            assert process.poll() is None, process.stdout.read()
            for name, reports in _results(experiment).items():
                checkpointed = any((experiment / name).glob("checkpoint_*"))
                if reports and reports[-1]["epoch"] <= 2 and checkpointed:
                    victim = (name, reports[-1]["node_id"])
                    break
            time.sleep(0.1)
        node = next(w for w in workers if w.node_id == victim[1])
        cluster.remove_node(node, allow_graceful=False)
        output = process.communicate(timeout=600)[0]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "2 of 2 trials completed" in output
    reports = _results(experiment)[victim[0]]
    epochs_reported = [r["epoch"] for r in reports]
    assert epochs_reported[-1] == epochs
    assert epochs_reported.count(1) == 1, epochs_reported  # continued from its checkpoint
    assert len({r["node_id"] for r in reports}) == 2  # moved to the surviving node


def test_launch_with_an_address_ships_the_plugins_of_the_current_directory(cluster, tmp_path):
    """The cluster's other machines lack the user's folder: its plugins travel with the
    connection. (Here every node shares this machine's disk, so the trial workers could also
    import the plugin from the driver's folder; what is checked is that the shipped copy is on
    their path as well.)"""
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    lab = tmp_path / "lab"
    lab.mkdir()
    log = tmp_path / "imports.jsonl"
    (lab / "shipext.py").write_text(
        "import json, os, sys\n"
        f"with open({str(log)!r}, 'a') as out:\n"
        "    out.write(json.dumps({'pid': os.getpid(), 'path': sys.path}) + '\\n')\n"
    )
    sets = {"search.trials": 2, "training.epochs": 1, "plugins": "[shipext]"}
    process = _launch(cluster.address, tmp_path / "results", "shipped", cwd=lab, **sets)
    output = process.communicate(timeout=600)[0]
    assert process.returncode == 0, output
    assert "2 of 2 trials completed" in output
    imports = [json.loads(line) for line in log.read_text().splitlines()]
    workers = [entry for entry in imports if entry["pid"] != process.pid]
    assert workers, imports
    for entry in workers:
        shipped = [
            Path(folder)
            for folder in entry["path"]
            if "py_modules_files" in folder and (Path(folder) / "shipext.py").is_file()
        ]
        assert shipped and all(folder != lab for folder in shipped), entry["path"]
