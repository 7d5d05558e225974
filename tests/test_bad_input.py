"""Every user mistake: one clear line on stderr, exit code 2, nothing written."""

from __future__ import annotations

import pytest

from tune_jobs.cli import main


def _assert_one_line_error(capsys, message: str) -> None:
    err = capsys.readouterr().err.strip()
    assert err.startswith("cusp-tune: error: "), err
    assert "\n" not in err and "Traceback" not in err, err
    assert message in err, err


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["serch.trials=4"], "did you mean 'search'"),
        (["search.trails=4"], "did you mean 'search.trials'"),
        (["models=[stdcnn]"], "did you mean 'model'"),  # not search.bounds.models
        (["search.trials=four"], "search.trials"),
        (["search.trials=0"], "search.trials"),
        (["training.epochs=0"], "epochs"),
        (["search.bounds.eps_max=[-0.1, 0.2]"], "eps_max"),
        (["search.bounds.eps_max=[0, 0.5]"], "eps_max"),
        (["search.bounds.theta_max=[0, 270]"], "theta_max"),
        (["evaluation.theta_eval=200"], "theta_eval"),
        (["dataset.name=imagenet"], "unknown dataset 'imagenet'"),
        (["model=resnet50"], "resnet50"),
        (["search.sampler=cmaes"], "search.sampler"),
        (["search.preset=everything"], "everything"),
        (["scheduler.kind=pbt"], "scheduler.kind"),
        (["objectives=spatial_acc"], "objectives"),
    ],
)
def test_bad_job_settings(tmp_path, capsys, sets, message):
    args = ["launch", "quickstart", "--storage", str(tmp_path)]
    for item in sets:
        args += ["--set", item]
    assert main(args) == 2
    _assert_one_line_error(capsys, message)
    assert not any(tmp_path.iterdir())


def test_malformed_yaml(tmp_path, capsys):
    job = tmp_path / "job.yaml"
    job.write_text("name: broken\nsearch: {trials: 3\n")
    assert main(["launch", str(job), "--storage", str(tmp_path / "out")]) == 2
    _assert_one_line_error(capsys, "malformed YAML")
    assert not (tmp_path / "out").exists()


def test_unknown_top_level_key_in_a_file(tmp_path, capsys):
    job = tmp_path / "job.yaml"
    job.write_text("name: x\nobjectivs: []\n")
    assert main(["launch", str(job), "--storage", str(tmp_path / "out")]) == 2
    _assert_one_line_error(capsys, "did you mean 'objectives'")


def test_data_directory_without_the_dataset(tmp_path, capsys):
    empty = tmp_path / "data"
    empty.mkdir()
    args = [
        "launch",
        "quickstart",
        "--storage",
        str(tmp_path / "out"),
        "--set",
        "dataset.name=mnist",
        "--set",
        f"dataset.data_dir={empty}",
        "--set",
        "search.bounds.eps_max=[0, 0.3]",
    ]
    assert main(args) == 2
    _assert_one_line_error(capsys, "dataset.download=true in a job spec")
    assert not (tmp_path / "out").exists()


def test_storage_that_cannot_be_written(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert main(["launch", "quickstart", "--storage", str(blocker / "results")]) == 2
    message = f"cannot write to storage {blocker / 'results'}: {blocker} is a file"
    _assert_one_line_error(capsys, message)


def test_train_with_unknown_model(capsys):
    assert main(["train", "--set", "model=resnet50"]) == 2
    _assert_one_line_error(capsys, "resnet50")
