"""`cusp-tune submit` against a real Ray head's job server on 127.0.0.1."""

from __future__ import annotations

import time

from tune_jobs.cli import main


def test_submitted_search_runs_to_completion(head_with_job_server, tmp_path, capsys, monkeypatch):
    from ray.job_submission import JobStatus, JobSubmissionClient

    # a plugin in the current directory travels with the job: every trial imports it first
    (tmp_path / "lab_marker_plugin.py").write_text("SHIPPED = True\n")
    monkeypatch.chdir(tmp_path)
    address = head_with_job_server
    sets = {
        "plugins": "[lab_marker_plugin]",
        "name": "submitted",
        "storage": str(tmp_path),
        "dataset.train_size": 128,
        "dataset.test_size": 50,
        "model_width": 0.25,
        "training.epochs": 1,
        "training.train_pgd_steps": 1,
        "evaluation.subset": 20,
        "evaluation.pgd_steps": 1,
        "evaluation.profiles": "false",
        "search.trials": 2,
    }
    args = ["submit", "quickstart", "--address", address]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    job_id = out.split("submitted Ray job ")[1].split()[0]
    assert f"ray job logs --address {address} --follow {job_id}" in out

    client = JobSubmissionClient(address)
    deadline = time.monotonic() + 300
    while client.get_job_status(job_id) not in {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.STOPPED,
    }:
        assert time.monotonic() < deadline, "the submitted job did not finish in time"
        time.sleep(1)
    logs = client.get_job_logs(job_id)
    assert client.get_job_status(job_id) == JobStatus.SUCCEEDED, logs
    assert "2 of 2 trials completed" in logs
    assert (tmp_path / "submitted" / "job.yaml").is_file()


def test_submit_validates_the_job_before_contacting_the_cluster(capsys):
    assert (
        main(
            ["submit", "quickstart", "--address", "http://127.0.0.1:9", "--set", "search.trials=0"]
        )
        == 2
    )
    assert "trials" in capsys.readouterr().err


def test_submit_pins_a_name_taken_from_the_file_name(tmp_path, monkeypatch):
    # The job file travels as job.yaml, so without the pin the search would be named "job".
    from ray import job_submission

    from tune_jobs.spec import JOBS_DIR

    text = (JOBS_DIR / "quickstart.yaml").read_text()
    job = tmp_path / "myjob.yaml"
    job.write_text("\n".join(line for line in text.splitlines() if not line.startswith("name:")))
    submitted = {}

    class Client:
        def __init__(self, address):
            pass

        def submit_job(self, entrypoint, runtime_env):
            submitted["entrypoint"] = entrypoint
            return "raysubmit_1"

    monkeypatch.setattr(job_submission, "JobSubmissionClient", Client)
    assert main(["submit", str(job), "--address", "http://127.0.0.1:9"]) == 0
    assert submitted["entrypoint"] == "cusp-tune launch job.yaml --set name=myjob"


def test_submit_wants_the_job_servers_http_address(capsys):
    # a bare host:port was taken for a GCS address and timed out after 44 s with a traceback
    assert main(["submit", "quickstart", "--address", "127.0.0.1:8265"]) == 2
    err = capsys.readouterr().err.strip()
    assert "give the head's job server as http://HEAD:8265" in err and "\n" not in err


def test_a_job_the_server_refuses_is_one_line(monkeypatch, capsys):
    from ray import job_submission

    class Client:
        def __init__(self, address):
            pass

        def submit_job(self, entrypoint, runtime_env):
            raise RuntimeError(
                "Request failed with status code 500: No available agent to submit job"
            )

    monkeypatch.setattr(job_submission, "JobSubmissionClient", Client)
    assert main(["submit", "quickstart", "--address", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "cusp-tune: error: the Ray job server at http://127.0.0.1:9 took no job: Request failed "
        "with status code 500: No available agent to submit job"
    )
