from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from tune_jobs.cli import main

FAST = [
    "--set",
    "train_size=256",
    "--set",
    "test_size=100",
    "--set",
    "epochs=2",
    "--set",
    "model_width=0.5",
    "--set",
    "train_pgd_steps=2",
    "--set",
    "eval_pgd_steps=2",
    "--set",
    "eval_subset=50",
    "--set",
    "final_profiles=false",
]


def test_train_prints_epochs_and_final_metrics_and_writes_checkpoint(tmp_path, capsys):
    config = tmp_path / "trial.yaml"
    config.write_text("method: pgd\ncurriculum: cusp\n")
    out = tmp_path / "run"
    assert main(["train", str(config), *FAST, "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "epoch   1/2" in stdout and "epoch   2/2" in stdout
    assert "adv_acc" in stdout and "spatial_acc" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epoch"] == 2 and metrics["final"] is True
    assert (out / "trial.pt").is_file()


def test_train_takes_a_job_specs_fixed_settings(capsys):
    sets = [
        "--set",
        "train_size=128",
        "--set",
        "test_size=50",
        "--set",
        "epochs=1",
        "--set",
        "eval_subset=20",
        "--set",
        "final_profiles=false",
        "--set",
        "theta_schedule=constant",
        "--set",
        "theta_max=30",
    ]
    assert main(["train", "quickstart", *sets]) == 0
    stdout = capsys.readouterr().out
    assert "training stdcnn on synthetic-digits (128 images) for 1 epochs" in stdout
    assert "theta  30.0" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--set", "epochs=0"], "epochs must be at least 1"),
        (["train", "--set", "dataset=mnst"], "did you mean 'mnist'"),
        (["train", "--set", "nonsense"], "--set takes key=value"),
        (["train", "missing.yaml"], "no such file"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_malformed_yaml_is_a_user_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1, 2\n")
    assert main(["train", str(bad)]) == 2
    assert "malformed YAML at line" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"name: a\ntraining:\n  epochs: 7\ntraining:\n  lr: 0.01\n",
            "key 'training' is given twice",
        ),
        (b"", "is empty; write its settings as key: value lines"),
        (b"# nothing but a comment\n", "is empty"),
        (b"\xff\xfe\x00bad", "is not a text (UTF-8) file"),
    ],
    ids=["duplicate-key", "empty", "comment-only", "binary"],
)
@pytest.mark.parametrize("command", ["train", "launch"])
def test_job_and_trial_files_that_yaml_would_misread(tmp_path, command, content, message, capsys):
    # plain yaml.safe_load keeps the last of two keys and reads an empty file as {}: a job
    # would silently lose settings or run every default
    path = tmp_path / "job.yaml"
    path.write_bytes(content)
    extra = ["--storage", str(tmp_path / "runs")] if command == "launch" else []
    assert main([command, str(path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert [p.name for p in tmp_path.iterdir()] == ["job.yaml"]


def test_yaml_merge_keys_still_override(tmp_path):
    from tune_jobs._overrides import load_yaml_mapping

    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {x: 1, y: 1}\nother:\n  <<: *b\n  x: 2\n")
    assert load_yaml_mapping(path)["other"] == {"x": 2, "y": 1}


def test_a_directory_given_as_trial_file(tmp_path, capsys):
    assert main(["train", str(tmp_path)]) == 2
    assert f"{tmp_path} is a directory; give a YAML file" in capsys.readouterr().err


def test_out_directory_that_is_not_empty_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    assert main(["train", *FAST, "--out", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_module_entry_point_matches_console_script():
    result = subprocess.run(
        [sys.executable, "-m", "tune_jobs", "train", "--set", "epochs=-1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("cusp-tune: error: epochs must be at least 1")


TINY_SEARCH = [
    "--set",
    "dataset.train_size=128",
    "--set",
    "dataset.test_size=50",
    "--set",
    "search.trials=2",
]


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """``cusp-tune`` in a fresh process (no Ray of this test session, no RAY_ADDRESS)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run(
        [sys.executable, "-m", "tune_jobs", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _error_line(stderr: str) -> str:
    """The last line, which must be cusp-tune's own one-line error (Ray may warn before it)."""
    assert "Traceback" not in stderr, stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("cusp-tune: error: "), stderr
    return line


@pytest.mark.parametrize("job", ["quickstart", "quickstart.yaml", "cusp-digits"])
def test_train_takes_a_shipped_job_by_name_or_file_name(job, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # found by name from any directory, not only the repository
    sets = ["--set", "train_size=64", "--set", "test_size=20", "--set", "epochs=1"]
    sets += ["--set", "eval_subset=10", "--set", "final_profiles=false"]
    assert main(["train", job, *sets]) == 0
    assert "training stdcnn on synthetic-digits (64 images)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--name", ""], "name must be a non-empty string"),
        (["--storage", ""], "storage must be a non-empty string"),
        (["--name", "a", "--set", "name=b"], "--name and --set name=... both given"),
        (["--storage", "x", "--set", "storage=y"], "--storage and --set storage=... both given"),
    ],
)
def test_launch_options_empty_or_given_twice_are_refused(tmp_path, options, message, capsys):
    storage = [] if "--storage" in options else ["--storage", str(tmp_path)]
    assert main(["launch", "quickstart", *storage, *options, *TINY_SEARCH]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not any(tmp_path.iterdir())


def test_launch_interrupted_before_the_search_starts_leaves_nothing(tmp_path, monkeypatch, capsys):
    from tune_jobs import runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_connect_and_check", lambda spec, address: None)
    monkeypatch.setattr(runner, "build_tuner", interrupted)
    assert main(["launch", "quickstart", "--storage", str(tmp_path), *TINY_SEARCH]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (tmp_path / "quickstart").exists()  # so the same launch can simply be repeated


def test_launch_to_an_address_where_nothing_listens_fails_at_once(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"127.0.0.1:{port}"
    result = _cli("launch", "quickstart", "--storage", str(tmp_path), "--address", address)
    assert result.returncode == 2
    assert f"nothing accepts connections at {address}" in _error_line(result.stderr)
    assert not any(tmp_path.iterdir())


def test_launch_asking_for_more_than_the_local_ray_has_is_refused(tmp_path):
    result = _cli("launch", "quickstart", "--storage", str(tmp_path), "--set", "resources.cpu=4096")
    assert result.returncode == 2
    line = _error_line(result.stderr)
    assert "resources.cpu=4096" in line and "set resources.cpu to at most" in line
    assert not any(tmp_path.iterdir())


def test_output_cut_short_by_its_reader_is_not_an_error():
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `cusp-tune ... | head`: the reader is gone before the output
    sets = ["--set", "train_size=64", "--set", "test_size=20", "--set", "epochs=1"]
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tune_jobs", "train", "quickstart", *sets],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 141 and "Traceback" not in result.stderr, result.stderr


def test_launch_interrupted_before_any_trial_reported_leaves_nothing(tmp_path, monkeypatch, capsys):
    # Ray Tune catches Ctrl-C itself and returns from fit(); with no trial reported yet there
    # is nothing worth resuming, so the launch leaves nothing and can simply be repeated.
    from tune_jobs import runner

    class InterruptedTuner:
        def fit(self):
            (tmp_path / "quickstart" / "tuner.pkl").write_bytes(b"")  # Tune's state, saved
            return []

    monkeypatch.setattr(runner, "_connect_and_check", lambda spec, address: None)
    monkeypatch.setattr(runner, "build_tuner", lambda *args, **kwargs: InterruptedTuner())
    monkeypatch.setattr(runner, "_add_run_callbacks", lambda tuner, callbacks: None)
    assert main(["launch", "quickstart", "--storage", str(tmp_path), *TINY_SEARCH]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (tmp_path / "quickstart").exists()


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("http://127.0.0.1:8265", "is a job server; launch and resume need the cluster's Ray"),
        ("foo", "'foo' is not a Ray address"),
        ("127.0.0.1:", "'127.0.0.1:' is not a Ray address"),
    ],
)
def test_launch_to_an_address_that_is_not_a_ray_address_is_refused(tmp_path, address, message):
    result = _cli("launch", "quickstart", "--storage", str(tmp_path), "--address", address)
    assert result.returncode == 2
    assert message in _error_line(result.stderr)
    assert not any(tmp_path.iterdir())


def test_the_resume_hint_follows_an_interrupt_that_skipped_the_orderly_stop(tmp_path, capsys):
    from tune_jobs.cli import _resume_hint_on_interrupt

    (tmp_path / "tuner.pkl").write_bytes(b"")  # what Tune saved before the second Ctrl-C
    with pytest.raises(KeyboardInterrupt), _resume_hint_on_interrupt(str(tmp_path)):
        raise KeyboardInterrupt
    assert f"cusp-tune resume {tmp_path}" in capsys.readouterr().out
    with pytest.raises(KeyboardInterrupt), _resume_hint_on_interrupt(str(tmp_path / "gone")):
        raise KeyboardInterrupt
    assert "resume" not in capsys.readouterr().out


def test_train_labels_the_curriculum_as_analysis_does(capsys):
    # one label everywhere: the values the epochs train at (analysis.experiment.curriculum_label)
    sets = ["train_size=64", "test_size=20", "epochs=2", "eval_subset=10", "final_profiles=false"]
    sets += ["curriculum=custom", "theta_schedule=linear", "theta_max=90"]
    assert main(["train", *[arg for s in sets for arg in ("--set", s)]]) == 0
    assert "curriculum linear θ0→90\n" in capsys.readouterr().out


def test_train_takes_a_job_file_with_only_a_name_and_plugins_keys(tmp_path, capsys):
    job = tmp_path / "lab.yaml"
    job.write_text("name: lab\nmodel: stdcnn\nmodel_width: 0.25\n")
    sets = ["--set", "train_size=64", "--set", "test_size=20", "--set", "epochs=1"]
    sets += ["--set", "final_profiles=false", "--set", "eval_subset=20"]
    assert main(["train", str(job), *sets]) == 0
    assert "training stdcnn on synthetic-digits" in capsys.readouterr().out


def test_train_with_an_unknown_name_lists_trial_configs_and_jobs(capsys):
    assert main(["train", "cusp-digit"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'cusp-digits'?" in err and "quickstart" in err


def test_list_names_what_a_job_can_use(capsys):
    from trainables.models import list_models
    from tune_jobs.spec import list_jobs

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for header in (
        "jobs (",
        "models (",
        "datasets (",
        "search space presets (",
        "schedule kinds (",
    ):
        assert f"\n{header}" in f"\n{out}", out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert set(list_jobs()) | set(list_models()) <= set(rows)
    assert (
        "cifar10, vgg16, gcnn-resnet18: grid of 14 points over model, theta_max, 120 epochs"
        in (rows["cifar10-tradeoff-rotation"])
    )
    assert "8 trials of preset joint (nsga2)" in rows["quickstart"]
    assert "[32 px, 1/3 channels; D4-invariant; options: width]" in rows["gcnn-resnet18"]
    assert "28x28x1, 10 classes, eps scale 0.3" in rows["mnist"]
    assert "<axis>_max" in rows["constant"] and "<axis>_ramp_end" in rows["linear"]


def test_list_one_kind_with_a_plugins_registrations(tmp_path):
    (tmp_path / "listed_lab_plugin.py").write_text(
        "from torch import nn\n"
        "from trainables.models import register_model\n\n"
        "@register_model('lab-linear', image_sizes=(28,), in_channels=(1,))\n"
        "def lab_linear(*, in_channels, num_classes, image_size, normalize, hidden=32):\n"
        "    '''A lab's linear model.'''\n"
        "    return nn.Sequential(normalize, nn.Flatten(), nn.Linear(784, num_classes))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    run = subprocess.run(
        [sys.executable, "-m", "tune_jobs", "list", "models", "--plugins", "listed_lab_plugin"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "  lab-linear  " in run.stdout and "options: hidden]" in run.stdout
    assert run.stdout.startswith("models (") and "jobs (" not in run.stdout
    missing = _cli("list", "--plugins", "no_such_lab_plugin_here")
    assert missing.returncode == 2
    assert "no module named 'no_such_lab_plugin_here'" in _error_line(missing.stderr)
