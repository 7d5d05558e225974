from __future__ import annotations

import pytest

from trainables.config import TrialConfig
from trainables.errors import UserError


def test_defaults_are_valid_and_round_trip():
    config = TrialConfig()
    assert TrialConfig.from_dict(config.to_dict()) == config


def test_curriculum_keys_are_gathered_and_trial_keys_win():
    config = TrialConfig.from_dict(
        {"curriculum": "cusp", "theta_eval": 90, "eps_eval": 0.1, "epochs": 4}
    )
    assert config.curriculum == {"curriculum": "cusp"}
    assert config.theta_eval == 90.0 and isinstance(config.theta_eval, float)
    assert config.build_curriculum().at(4).theta_deg == 180.0


def test_overrides_merge():
    config = TrialConfig.from_dict({"theta_schedule": "constant", "theta_max": 30})
    changed = config.with_overrides({"theta_max": 60, "epochs": 2})
    assert changed.curriculum == {"theta_schedule": "constant", "theta_max": 60}
    assert changed.epochs == 2


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epocs": 3}, "did you mean 'epochs'"),
        ({"training.epochs": 3}, "did you mean 'epochs'"),  # a job's dotted path
        ({"lr_schedule": "cosine", "lr_milestones": [2]}, "lr_milestones is not used by"),
        ({"lr_schedule": "constant", "lr_gamma": 0.5}, "lr_gamma is not used by"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"epochs": "three"}, "epochs must be int"),
        ({"lr": -1}, "lr must be in"),
        ({"method": "pdg"}, "did you mean 'pgd'"),
        ({"theta_eval": 200}, "theta_eval must be in [0, 180]"),
        ({"eps_eval": -0.1}, "eps_eval must be in [0, 1]"),
        ({"dataset": "mnst"}, "did you mean 'mnist'"),
        ({"model": "vgg16"}, "does not take"),
        ({"model": "lenet", "model_width": 2}, "takes no model_width"),
        ({"theta_schedule": "linear", "theta_max": 270}, "theta_max must be in [0, 180]"),
        ({"theta_maxx": 10}, "theta_max"),
        ({"download": "yes"}, "download must be bool"),
    ],
)
def test_bad_settings_raise_user_errors_naming_the_key(values, message):
    with pytest.raises(UserError) as info:
        TrialConfig.from_dict(values)
    assert message in str(info.value)


def test_a_relative_data_dir_is_made_absolute_where_the_config_is_made(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert TrialConfig(data_dir="data").data_dir == str(tmp_path / "data")
    assert TrialConfig(data_dir="~/d").data_dir == str(tmp_path / "home" / "d")
    assert TrialConfig(data_dir="/abs/d").data_dir == "/abs/d"
    assert TrialConfig().data_dir is None  # the default directory of the machine that loads it
    # made elsewhere from the saved (absolute) value, it still names the same folder
    saved = TrialConfig(data_dir="data").to_dict()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert TrialConfig.from_dict(saved).data_dir == str(tmp_path / "data")


def test_the_dataset_is_kept_under_its_registered_name():
    assert TrialConfig(dataset="fashion_mnist").dataset == "fashion-mnist"
