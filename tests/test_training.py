from __future__ import annotations

import math

import pytest
import torch

from trainables.config import TrialConfig
from trainables.training import AttackSettings, TrainingDiverged, build_lr_scheduler, train_epoch
from trainables.trial import Trial, run_trial

SMALL = dict(
    model="stdcnn",
    model_width=0.5,
    train_size=1500,
    test_size=300,
    batch_size=64,
    train_pgd_steps=3,
    eval_pgd_steps=10,
    eps_eval=0.2,
    theta_eval=60.0,
    eval_subset=200,
    final_profiles=False,
)


def test_training_epochs_lower_the_loss(digits):
    trial = Trial(TrialConfig.from_dict({**SMALL, "method": "standard", "epochs": 3}), digits)
    losses = [m["loss"] for m in trial.epochs()]
    assert losses[-1] < losses[0] * 0.5


def test_pgd_training_beats_standard_training_under_attack(digits):
    standard = run_trial(
        TrialConfig.from_dict({**SMALL, "method": "standard", "epochs": 2}), digits
    )
    robust = run_trial(
        TrialConfig.from_dict(
            {**SMALL, "method": "pgd", "epochs": 2, "eps_schedule": "constant", "eps_max": 0.2}
        ),
        digits,
    )
    assert robust["adv_acc"] > standard["adv_acc"] + 0.2


def test_rotation_augmentation_beats_standard_training_under_rotation(digits):
    standard = run_trial(
        TrialConfig.from_dict({**SMALL, "method": "standard", "epochs": 2}), digits
    )
    augmented = run_trial(
        TrialConfig.from_dict(
            {
                **SMALL,
                "method": "standard",
                "epochs": 2,
                "theta_schedule": "constant",
                "theta_max": 60,
            }
        ),
        digits,
    )
    assert augmented["spatial_acc"] > standard["spatial_acc"] + 0.1


def test_trades_runs_and_reports_finite_metrics(digits):
    config = TrialConfig.from_dict(
        {
            **SMALL,
            "method": "trades",
            "epochs": 1,
            "train_size": 256,
            "eps_schedule": "constant",
            "eps_max": 0.1,
        }
    )
    metrics = run_trial(config, digits)
    assert all(math.isfinite(v) for v in metrics.values() if isinstance(v, float))


def test_epoch_reports_its_curriculum_stage_and_all_metrics(digits):
    config = TrialConfig.from_dict(
        {**SMALL, "epochs": 3, "train_size": 256, "curriculum": "cusp", "method": "pgd"}
    )
    trial = Trial(config, digits)
    reports = list(trial.epochs())
    assert [r["epoch"] for r in reports] == [1, 2, 3]
    assert [r["theta"] for r in reports] == [120.0, 150.0, 180.0]
    assert [r["eps"] for r in reports] == pytest.approx([0.075, 0.15, 0.3])
    assert [r["final"] for r in reports] == [False, False, True]
    for report in reports:
        for key in (
            "loss",
            "clean_acc",
            "spatial_acc",
            "adv_acc",
            "combined_acc",
            "invariance_rate",
            "epoch_time_s",
            "lr",
        ):
            assert math.isfinite(report[key])


def test_final_epoch_adds_profiles(digits):
    config = TrialConfig.from_dict(
        {**SMALL, "epochs": 1, "train_size": 128, "final_profiles": True}
    )
    metrics = run_trial(config, digits)
    assert "spatial_acc@180" in metrics and "adv_acc@0.2" in metrics
    assert metrics["spatial_acc@0"] == metrics["clean_acc"]


def test_restored_trial_continues_exactly(digits, tmp_path):
    config = TrialConfig.from_dict(
        {
            **SMALL,
            "epochs": 2,
            "train_size": 256,
            "theta_schedule": "linear",
            "theta_max": 90,
            "eps_schedule": "linear",
            "eps_max": 0.2,
        }
    )
    unbroken = list(Trial(config, digits).epochs())

    first = Trial(config, digits)
    first.run_epoch()
    first.save(tmp_path)
    resumed = Trial(config, digits)
    resumed.restore(tmp_path)
    assert resumed.epoch == 1
    last = resumed.run_epoch()
    for key in ("loss", "clean_acc", "spatial_acc", "adv_acc", "combined_acc", "lr"):
        assert last[key] == unbroken[-1][key], key


def test_non_finite_loss_raises_training_diverged():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.fill_(float("nan"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    images = torch.zeros(8, 1, 2, 2, dtype=torch.uint8)
    with pytest.raises(TrainingDiverged, match="non-finite"):
        train_epoch(
            model,
            optimizer,
            images,
            torch.zeros(8, dtype=torch.long),
            theta_deg=0.0,
            translate_px=0.0,
            eps=0.0,
            method="standard",
            attack=AttackSettings(1, 0.1),
            batch_size=4,
            generator=torch.Generator(),
        )


def test_multistep_lr_drops_at_one_based_milestones():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = build_lr_scheduler(optimizer, "multistep", 120, milestones=(75, 90, 100))
    lrs = {}
    for epoch in range(1, 121):
        lrs[epoch] = optimizer.param_groups[0]["lr"]
        scheduler.step()
    assert lrs[74] == pytest.approx(0.1) and lrs[75] == pytest.approx(0.01)
    assert lrs[89] == pytest.approx(0.01) and lrs[90] == pytest.approx(0.001)
    assert lrs[100] == pytest.approx(0.0001) and lrs[120] == pytest.approx(0.0001)


def test_truncated_checkpoint_is_a_clear_error(digits, tmp_path):
    from trainables.trial import CHECKPOINT_FILE, CorruptCheckpoint

    config = TrialConfig.from_dict({**SMALL, "epochs": 2, "train_size": 64, "method": "standard"})
    trial = Trial(config, digits)
    trial.run_epoch()
    path = trial.save(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptCheckpoint, match=f"{CHECKPOINT_FILE}.*truncated"):
        Trial(config, digits).restore(tmp_path)
