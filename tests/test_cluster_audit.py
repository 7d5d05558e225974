"""Connecting to a Ray cluster as a new user does: addresses that are not the cluster's Ray.

Everything listens on 127.0.0.1 only, and what a test starts it stops.
"""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from trainables.errors import UserError
from tune_jobs import runner


@pytest.fixture
def web_server():
    """A plain HTTP server on 127.0.0.1, as a dashboard is to someone who forgets http://."""
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def silent_server():
    """A port that accepts connections and never says anything (like a TLS server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def test_a_web_servers_port_as_the_address_is_refused_before_ray_waits_on_it(
    web_server, monkeypatch
):
    # Ray's ray.init(address=<the dashboard's host:port>) waited over 10 minutes for a GCS.
    import ray

    def never(**kwargs):
        raise AssertionError("ray.init was called with a web server's address")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", never)
    for address in (web_server, f"ray://{web_server}"):
        with pytest.raises(UserError, match="is a web server") as caught:
            runner.connect(address)
        assert f"cusp-tune submit --address http://{web_server}" in str(caught.value)
        assert "\n" not in str(caught.value)


def test_a_silent_server_is_left_to_ray(silent_server):
    runner._check_reachable(silent_server, timeout_s=5)  # neither refused nor a web server


def test_a_real_gcs_is_not_taken_for_a_web_server():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        runner._check_reachable(cluster.address)
    finally:
        cluster.shutdown()


def test_launch_given_the_dashboard_port_without_http_is_one_line(
    head_with_job_server,  # noqa: F811 (the imported fixture)
    tmp_path,
):
    dashboard = head_with_job_server.removeprefix("http://")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    args = [sys.executable, "-m", "tune_jobs", "launch", "quickstart", "--address", dashboard]
    args += ["--storage", str(tmp_path), "--name", "web", "--set", "search.trials=1"]
    try:
        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    except subprocess.TimeoutExpired:  # run() has killed it
        pytest.fail(f"cusp-tune launch --address {dashboard} waited on the dashboard")
    assert done.returncode == 2, done.stderr
    error = done.stderr.strip()
    assert error.startswith("cusp-tune: error: ") and "\n" not in error, done.stderr
    assert f"{dashboard} is a web server" in error
    assert f"cusp-tune submit --address {head_with_job_server}" in error
    assert not Path(tmp_path / "web").exists()


@pytest.mark.parametrize(
    ("reason", "hinted"),
    [
        ("Could not find any running Ray instance. Please specify the one to connect to.", False),
        ("Failed to connect to GCS within 60 seconds.", True),
    ],
)
def test_the_token_hint_is_given_only_where_a_cluster_was_found(reason, hinted, monkeypatch):
    import ray

    def refuse(**kwargs):
        raise ConnectionError(reason)

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(UserError, match="cannot connect to the Ray cluster at auto") as caught:
        runner.connect("auto")
    assert ("RAY_AUTH_MODE=token" in str(caught.value)) == hinted
