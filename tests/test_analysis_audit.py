"""Audit of the analysis side as a paper's author uses it: figures whose labels stay inside their
axes and state the attack, comparisons that say when two searches were not measured alike,
exported models evaluated again with a stronger attack, and bad paths that say what to pass.

Experiments are fake directories in the files Ray Tune writes (no Ray): ``job.yaml``,
``params.json`` and ``result.json`` lines per trial, checkpoints where a model is needed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import analysis.plots
from analysis import compare, evaluate_exported, export_front, load_experiment, write_report
from analysis.plots import metric_label, plot_front, plot_profiles
from analysis.report import NOT_ALIKE
from trainables.config import TrialConfig
from trainables.datasets import load_dataset
from trainables.errors import UserError
from trainables.evaluation import (
    EvalSettings,
    evaluate,
    worst_case_combined_accuracy,
    worst_case_spatial_accuracy,
)
from trainables.trial import Trial
from tune_jobs.cli import main
from tune_jobs.spec import load_job

METRICS = ("clean_acc", "spatial_acc", "adv_acc", "combined_acc", "invariance_rate")
LONG_CURRICULA = (
    {"theta_schedule": "cosine", "theta_max": 132.0, "eps_schedule": "exponential"},
    {"theta_schedule": "linear", "theta_max": 92.5, "eps_schedule": "linear"},
)


def _job(path: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``path/job.yaml`` (the quickstart job with ``overrides``); return its trial
    config."""
    spec = load_job(
        "quickstart", {"name": path.name, "storage": str(path.parent), **(overrides or {})}
    )
    path.mkdir(parents=True)
    (path / "job.yaml").write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    return spec.trial_config()


def _trial(path: Path, trial_id: str, config: dict[str, Any], **metrics: float) -> Path:
    """A completed one-epoch trial with ``metrics`` in its final result."""
    trial_dir = path / f"trial_{trial_id}"
    trial_dir.mkdir()
    (trial_dir / "params.json").write_text(json.dumps(config))
    result = {"epoch": 1, "final": True, "trial_id": trial_id, "timestamp": 1000, **metrics}
    (trial_dir / "result.json").write_text(json.dumps(result) + "\n")
    return trial_dir


def _experiment(root: Path, name: str, overrides: dict[str, Any] | None = None) -> Path:
    """Two front trials at the corners of the plot, with long curriculum labels."""
    path = root / name
    base = _job(path, overrides)
    for i, curriculum in enumerate(LONG_CURRICULA):
        config = {**base, "curriculum": "custom", "method": "trades", "order": "joint"}
        config.update(curriculum, eps_max=0.157, eps_start_frac=0.6, theta_start_frac=0.4)
        spatial, adv = (0.9, 0.05) if i == 0 else (0.2, 0.6)
        _trial(path, f"{i:08x}", config, spatial_acc=spatial, adv_acc=adv, clean_acc=0.95)
    return path


# ---------------------------------------------------------------------------------------------
# Figures


def test_front_labels_stay_inside_the_axes(tmp_path, monkeypatch):
    """The label of the front point with the best spatial accuracy (right edge) used to run
    past the axes' right side, over the frame; every label now lies within the axes."""
    boxes: list[tuple[Any, list[Any]]] = []
    save = analysis.plots._save

    def measuring(fig, path):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        labels = [t.get_window_extent(renderer) for t in ax.texts if hasattr(t, "xyann")]
        boxes.append((ax.get_window_extent(renderer), labels))
        return save(fig, path)

    monkeypatch.setattr(analysis.plots, "_save", measuring)
    experiment = load_experiment(_experiment(tmp_path, "corners"))
    plot_front(experiment, tmp_path / "front.png")
    frame, labels = boxes[0]
    assert len(labels) == 2
    for box in labels:
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1, (box, frame)
        assert frame.y0 <= box.y0 and box.y1 <= frame.y1, (box, frame)


def test_labels_and_report_state_the_pgd_attack_the_trials_were_measured_with(
    tmp_path, monkeypatch
):
    """Axis labels said "L∞ PGD, ε = 0.3" without steps, and the profile title "1 steps", or
    nothing when the job left the steps to the dataset (40 of 0.01 for digits)."""
    one = load_experiment(_experiment(tmp_path, "one", {"evaluation.pgd_steps": 1}))
    default = load_experiment(_experiment(tmp_path, "default", {"evaluation.pgd_steps": None}))
    assert metric_label("adv_acc", one).endswith("ε = 0.3, 1 step of 0.4")
    assert "ε = 0.3, 40 steps of 0.01 on rotated" in metric_label("combined_acc", default)
    titles: list[str] = []
    save = analysis.plots._save

    def recording(fig, path):
        titles.extend(ax.get_title() for ax in fig.axes)
        return save(fig, path)

    monkeypatch.setattr(analysis.plots, "_save", recording)
    plot_profiles(one, tmp_path / "profiles.png")
    assert "Robustness profile: accuracy under PGD (1 step of 0.4, random start)" in titles
    text = write_report(default, tmp_path / "report").report.read_text()
    assert "- evaluation: synthetic-digits, 500 test images; rotation ±180°; " in text
    assert "; PGD L∞ ε = 0.3, 40 steps of 0.01\n" in text


# ---------------------------------------------------------------------------------------------
# Comparing searches


def test_comparing_searches_measured_differently_says_so(tmp_path, caplog, monkeypatch):
    """Two searches with different test sets and PGD steps were compared (one table, one
    hypervolume reference, one figure whose axes state the first one's attack) without a word
    that their accuracies are not comparable."""
    a = _experiment(tmp_path, "a", {"evaluation.pgd_steps": 1, "dataset.test_size": 40})
    b = _experiment(tmp_path, "b", {"evaluation.pgd_steps": 10, "dataset.test_size": 500})
    same = _experiment(tmp_path, "same", {"evaluation.pgd_steps": 1, "dataset.test_size": 40})
    table = compare([a, b])
    assert table.attrs["differences"] == [
        "test images: 40 (a); 500 (b)",
        "PGD: L∞ ε = 0.3, 1 step of 0.4 (a); L∞ ε = 0.3, 10 steps of 0.04 (b)",
    ]
    assert table["evaluation"].str.contains("PGD L∞ ε = 0.3").all()
    with caplog.at_level(logging.WARNING, logger="analysis.report"):
        text = write_report([a, b], tmp_path / "ab").report.read_text()
    assert f"**{NOT_ALIKE}**" in text and "- test images: 40 (a); 500 (b)" in text
    assert any(NOT_ALIKE in r.getMessage() for r in caplog.records)
    assert compare([a, same]).attrs["differences"] == []
    assert NOT_ALIKE not in write_report([a, same], tmp_path / "alike").report.read_text()
    titles: list[str] = []
    save = analysis.plots._save

    def recording(fig, path):
        titles.append(fig.axes[0].get_title())
        return save(fig, path)

    monkeypatch.setattr(analysis.plots, "_save", recording)
    plot_front([load_experiment(a), load_experiment(b)], tmp_path / "ab.png")
    plot_front([load_experiment(a), load_experiment(same)], tmp_path / "alike.png")
    assert titles[0].endswith("not evaluated alike (see the report): the axes state a's settings")
    assert "not evaluated alike" not in titles[1]


# ---------------------------------------------------------------------------------------------
# Evaluating an exported model with a stronger attack


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """One trained (1 epoch, 256 digits) stdcnn on a fake experiment's front, exported; the
    trial's evaluation is 1 PGD step on 40 test images."""
    root = tmp_path_factory.mktemp("stronger")
    path = root / "exp"
    base = _job(path, {"evaluation.pgd_steps": 1, "dataset.test_size": 40})
    config = TrialConfig.from_dict(
        {
            **base,
            "curriculum": "custom",
            "method": "pgd",
            "eps_schedule": "constant",
            "eps_max": 0.1,
            "model_width": 0.25,
            "epochs": 1,
            "train_size": 256,
            "train_pgd_steps": 1,
            "eval_subset": 8,
            "final_profiles": False,
            "device": "cpu",
        }
    )
    trial = Trial(config, load_dataset(config.dataset, config.data_dir))
    metrics = {k: v for k, v in trial.run_epoch().items() if k not in ("epoch", "final")}
    trial_dir = _trial(path, "00000001", config.to_dict(), **metrics)
    (trial_dir / "checkpoint_000000").mkdir()
    trial.save(trial_dir / "checkpoint_000000")
    return export_front(path, root / "models").paths[0]


def _direct(model_dir: Path) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The exported model and its 40 test images, loaded without ``evaluate_exported``."""
    from analysis import load_model

    config = TrialConfig.from_dict(json.loads((model_dir / "config.json").read_text()))
    data = load_dataset(config.dataset, config.data_dir).subset(1, 40)
    return load_model(model_dir), data.test_images, data.test_labels


def test_evaluate_takes_more_pgd_steps_and_the_worst_case_grid(exported):
    """The search's cheap attack (1 PGD step) was all `evaluate` could measure; more steps (at
    the dataset's step, 0.01 for digits) and Engstrom's 31 x 5 x 5 grid are what a paper
    reports."""
    model, images, labels = _direct(exported)
    same = evaluate_exported(exported, profile=None, device="cpu", pgd_steps=1, pgd_step_size=0.4)
    default = evaluate_exported(exported, profile=None, device="cpu")
    assert same == default  # the trial's own settings
    strong = evaluate_exported(
        exported, profile=None, device="cpu", pgd_steps=20, worst_case="grid"
    )
    settings = EvalSettings(eps_eval=0.3, pgd_steps=20, pgd_step_size=0.02)  # 40 x 0.01 travel
    assert {k: strong[k] for k in METRICS} == evaluate(model, images, labels, settings)
    more = evaluate_exported(exported, profile="eps", device="cpu", pgd_steps=50)
    direct = evaluate(model, images, labels, EvalSettings(pgd_steps=50, pgd_step_size=0.01))
    assert more["adv_acc"] == direct["adv_acc"] and "adv_acc@0.15" in more
    grid = worst_case_spatial_accuracy(model, images, labels, tries=None, grid=(31, 5, 5))
    assert strong["worst_case_spatial_acc_grid"] == grid
    assert "worst_case_spatial_acc" not in strong and "worst_case_spatial_acc" in default


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pgd_steps": 0}, "pgd_steps must be a positive number, got 0"),
        ({"pgd_steps": 2.5}, "pgd_steps must be a positive whole number, got 2.5"),
        ({"pgd_step_size": -0.1}, "pgd_step_size must be a positive number"),
        ({"worst_case": "worst"}, "unknown worst_case 'worst'; choose one of random, grid"),
    ],
)
def test_evaluate_refuses_bad_attack_settings(exported, change, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        evaluate_exported(exported, device="cpu", **change)


def test_cli_evaluate_with_a_stronger_attack(exported, capsys):
    args = ["evaluate", str(exported), "--device", "cpu", "--profile", "none"]
    assert main([*args, "--pgd-steps", "50", "--worst-case", "grid", "--worst-case-combined"]) == 0
    printed = dict(line.split() for line in capsys.readouterr().out.splitlines())
    strong = evaluate_exported(
        exported,
        profile=None,
        device="cpu",
        pgd_steps=50,
        worst_case="grid",
        worst_case_combined=True,
    )
    model, images, labels = _direct(exported)
    settings = EvalSettings(eps_eval=0.3, pgd_steps=50, pgd_step_size=0.01)
    combined = worst_case_combined_accuracy(model, images, labels, settings)
    assert strong["worst_case_combined_acc"] == combined
    assert {k: float(v) for k, v in printed.items()} == pytest.approx(strong, abs=5e-5)
    for bad in (["--pgd-step-size", "-1"], ["--pgd-steps", "0"], ["--worst-case", "worst"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*args, *bad])
        assert exit_info.value.code == 2
        assert f"argument {bad[0]}" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Bad paths


@pytest.mark.parametrize("command", ["analyze", "export", "status"])
def test_a_trial_or_storage_directory_names_the_experiment_to_pass(tmp_path, capsys, command):
    """A trial directory (or its checkpoint) or the storage directory used to get "pass the
    experiment directory that `cusp-tune launch` printed"; the message now names it."""
    path = _experiment(tmp_path, "exp")
    (path / "trial_00000000" / "checkpoint_000000").mkdir()
    out = ["--out", str(tmp_path / "out")] if command in ("analyze", "export") else []
    cases = {
        path / "trial_00000000": f"pass the experiment it belongs to, {path}",
        path / "trial_00000000" / "checkpoint_000000": f"the experiment it belongs to, {path}",
        tmp_path: f"pass one of the experiments it holds (exp), e.g. {path}",
    }
    for given, hint in cases.items():
        assert main([command, str(given), *out]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and hint in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(UserError, match="it belongs to"):
        load_experiment(path / "trial_00000000")
