from __future__ import annotations

import json
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
