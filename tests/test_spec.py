from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from trainables.config import TrialConfig
from trainables.errors import UserError
from tune_jobs._overrides import parse_overrides
from tune_jobs.spec import (
    DEFAULT_OBJECTIVES,
    JOBS_DIR,
    JobSpec,
    Objective,
    apply_overrides,
    find_job,
    list_jobs,
    load_job,
)

SHIPPED = sorted(JOBS_DIR.glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------------
# Shipped jobs


def test_every_required_job_is_shipped():
    expected = {
        "quickstart",
        "mnist-cusp",
        "cifar10-cusp",
        "digits-cusp",
        "digits-augment-only",
        "digits-adversarial-only",
        "digits-joint",
    }
    assert expected <= set(list_jobs())


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_job_loads_and_round_trips(path):
    job = load_job(path)
    assert job.name == path.stem
    TrialConfig.from_dict(job.trial_config())
    for model in job.models:
        TrialConfig.from_dict({**job.trial_config(), "model": model})
    again = JobSpec.from_dict(yaml.safe_load(yaml.safe_dump(job.to_dict())), source="job.yaml")
    assert again == job
    assert again.to_dict() == job.to_dict()
    if job.search.grid:  # a trade-off study: every grid point is a valid trial config
        assert job.search.trials == len(job.grid_points()) > 1
        for point in job.grid_points():
            TrialConfig.from_dict({**job.trial_config(), **point})
        return
    space = job.make_space()
    searched = set(space.config_keys()) - {"model"}
    assert not searched & set(job.trial_config())


def test_each_preset_has_a_digits_job():
    presets = {load_job(f"digits-{p}").search.preset for p in ("cusp", "joint")}
    presets |= {load_job(f"digits-{p}").search.preset for p in ("augment-only", "adversarial-only")}
    assert presets == {"cusp", "joint", "augment-only", "adversarial-only"}


def test_quickstart_settings():
    job = load_job("quickstart")
    trial = job.trial_config()
    assert trial["dataset"] == "synthetic-digits" and trial["download"] is False
    assert trial["model"] == "stdcnn" and trial["model_width"] == 0.5
    assert trial["epochs"] == 3 and trial["eval_pgd_steps"] == 10 and trial["eval_subset"] == 300
    assert job.search.preset == "joint" and job.search.trials == 8
    assert job.search.max_concurrent == 2
    assert job.resources.cpu == 1 and job.resources.gpu == 0
    assert job.storage == os.path.expanduser("~/cusp-tune-results")
    bounds = job.search_bounds()
    assert bounds.theta_max == (0.0, 180.0) and bounds.eps_max == (0.0, 0.3)


def test_paper_jobs_search_over_models():
    mnist, cifar = load_job("mnist-cusp"), load_job("cifar10-cusp")
    assert mnist.models == ("gcnn-c4", "stdcnn") and cifar.models == ("vgg16", "resnet18")
    assert cifar.search_bounds().models == ("vgg16", "resnet18")
    assert mnist.epochs == 100 and cifar.epochs == 120
    assert mnist.resources.gpu == 0.25 and cifar.resources.gpu == 0.5
    assert cifar.trial_config()["eps_eval"] == pytest.approx(8 / 255, abs=1e-5)
    assert mnist.trial_config()["download"] is False


# --------------------------------------------------------------------------------------------------
# Defaults, paths, names


def test_defaults_are_filled(tmp_path):
    job = load_job(write(tmp_path, "{}\n", "tiny.yaml"))
    assert job.name == "tiny"
    assert job.objectives == DEFAULT_OBJECTIVES
    assert job.metrics == ["spatial_acc", "adv_acc"] and job.modes == ["max", "max"]
    assert job.models == ("stdcnn",)
    trial = job.trial_config()
    assert trial["dataset"] == "synthetic-digits" and trial["model"] == "stdcnn"
    assert trial["epochs"] == TrialConfig().epochs and trial["checkpoint_every"] == 1
    assert job.search.preset == "cusp" and job.search.sampler == "tpe"
    assert job.search.trials >= 1 and job.search.max_concurrent >= 1 and job.search.seed == 0
    assert job.resources.cpu == 1.0 and job.resources.gpu == 0.0
    assert job.storage == os.path.abspath(os.path.expanduser("~/cusp-tune-results"))
    assert job.checkpoint.every == 1 and job.checkpoint.keep >= 1
    assert job.failure.max_retries >= 0
    assert job.scheduler.kind == "none"
    assert job.experiment_path == os.path.join(job.storage, "tiny")


def test_dataset_shorthand_and_canonical_name(tmp_path):
    job = load_job(write(tmp_path, "dataset: Fashion_MNIST\nmodel: lenet\n"))
    assert job.dataset == "fashion-mnist"
    assert job.to_dict()["dataset"] == {"name": "fashion-mnist"}


def test_section_keys_map_to_flat_trial_keys(tmp_path):
    text = """
    dataset: {name: mnist, train_size: 100}
    evaluation: {pgd_steps: 7, subset: 50, profiles: false, batch_size: 64, pgd_step_size: 0.02}
    checkpoint: {every: 2, keep: 3}
    training: {weight_decay: 5e-4, lr_milestones: [2, 3], epochs: 4}
    """
    trial = load_job(write(tmp_path, text)).trial_config()
    assert trial["dataset"] == "mnist" and trial["train_size"] == 100
    assert trial["eval_pgd_steps"] == 7 and trial["eval_subset"] == 50
    assert trial["final_profiles"] is False and trial["eval_batch_size"] == 64
    assert trial["eval_pgd_step_size"] == 0.02 and trial["checkpoint_every"] == 2
    assert trial["weight_decay"] == 0.0005  # YAML 1.1 reads 5e-4 as a string
    assert trial["lr_milestones"] == [2, 3]
    TrialConfig.from_dict(trial)


def test_storage_uris_kept_and_relative_paths_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "name: s\n")
    assert load_job(path, {"storage": "s3://bucket/runs"}).storage == "s3://bucket/runs"
    job = load_job(path, {"storage": "gs://b/r/"})
    assert job.experiment_path == "gs://b/r/s"
    # a file:// URI is a local directory: checked and journalled like one
    assert load_job(path, {"storage": "file:///x/y"}).storage == "/x/y"
    assert load_job(path, {"storage": "results"}).storage == str(tmp_path / "results")


def test_find_job_by_name_and_path(tmp_path):
    assert find_job("quickstart") == JOBS_DIR / "quickstart.yaml"
    assert find_job("quickstart.yaml") == JOBS_DIR / "quickstart.yaml"
    path = write(tmp_path, "name: x\n")
    assert find_job(str(path)) == path
    with pytest.raises(UserError, match="did you mean 'quickstart'"):
        find_job("quickstrat")
    with pytest.raises(UserError, match="no such job file"):
        find_job(str(tmp_path / "missing.yaml"))


def test_scheduler_defaults_metric_for_asha():
    job = load_job("quickstart", {"scheduler.kind": "asha", "scheduler.grace_epochs": 2})
    assert job.scheduler.metric == "spatial_acc" and job.scheduler.grace_epochs == 2
    other = load_job("quickstart", {"scheduler": {"kind": "asha", "metric": "adv_acc"}})
    assert other.scheduler.metric == "adv_acc"
    assert load_job("quickstart", {"scheduler.kind": "moasha"}).scheduler.metric is None


PROFILE_OBJECTIVES = [{"metric": "spatial_acc@30"}, {"metric": "adv_acc@0.15", "mode": "max"}]


def test_profile_objectives_in_a_grid_job_or_a_one_epoch_search():
    job = load_job("digits-tradeoff-eps", {"objectives": PROFILE_OBJECTIVES})
    assert job.metrics == ["spatial_acc@30", "adv_acc@0.15"]
    assert all(o.is_profile for o in job.objectives)
    one_epoch = load_job("quickstart", {"objectives": PROFILE_OBJECTIVES, "training.epochs": 1})
    assert one_epoch.metrics == ["spatial_acc@30", "adv_acc@0.15"]


def test_profile_objectives_are_refused_where_trials_are_ranked_every_epoch():
    # they come only with the last epoch's result; Ray Tune fails an Optuna search without them
    objectives = [{"metric": "spatial_acc@90"}, {"metric": "adv_acc"}]
    with pytest.raises(
        UserError,
        match=r"objectives\[0\]\.metric: spatial_acc@90 is measured only after the last epoch, "
        r"but an Optuna search .* use spatial_acc with evaluation\.theta_eval: 90",
    ):
        load_job("quickstart", {"objectives": objectives})
    grid_asha = {"objectives": [{"metric": "adv_acc"}, {"metric": "adv_acc@0.15"}]}
    grid_asha["scheduler"] = {"kind": "asha", "metric": "adv_acc"}
    with pytest.raises(UserError, match=r"objectives\[1\].*scheduler.kind asha.*eps_eval: 0.15"):
        load_job("digits-tradeoff-eps", grid_asha)


def test_sampler_is_built_with_seed_and_options():
    job = load_job("quickstart", {"search.seed": 3})
    sampler = job.search.make_sampler()
    assert type(sampler).__name__ == "NSGAIISampler"
    random = load_job("quickstart", {"search.sampler": "random", "search.sampler_options": {}})
    assert type(random.search.make_sampler()).__name__ == "RandomSampler"


# --------------------------------------------------------------------------------------------------
# Overrides


def test_dotted_overrides():
    overrides = parse_overrides(
        [
            "search.trials=4",
            "training.epochs=2",
            "dataset.name=mnist",
            "name=foo",
            "search.bounds.theta_max=[0, 90]",
            "resources.gpu=0.25",
            "model=[stdcnn, gcnn-c4]",
        ]
    )
    job = load_job("quickstart", overrides)
    assert job.search.trials == 4 and job.epochs == 2 and job.dataset == "mnist"
    assert job.name == "foo" and job.resources.gpu == 0.25
    assert job.search_bounds().theta_max == (0.0, 90.0)
    assert job.models == ("stdcnn", "gcnn-c4")
    assert job.search_bounds().models == ("stdcnn", "gcnn-c4")


def test_overrides_leave_the_raw_mapping_alone():
    raw = {"dataset": "mnist", "search": {"trials": 3}}
    out = apply_overrides(raw, {"dataset.train_size": 10, "search.bounds.eps_max": [0, 0.1]})
    assert raw == {"dataset": "mnist", "search": {"trials": 3}}
    assert out["dataset"] == {"name": "mnist", "train_size": 10}
    assert out["search"] == {"trials": 3, "bounds": {"eps_max": [0, 0.1]}}


def test_with_overrides_revalidates():
    job = load_job("quickstart")
    assert job.with_overrides({"search.trials": 5}).search.trials == 5
    with pytest.raises(UserError, match="search.trials"):
        job.with_overrides({"search.trials": 0})


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("serch.trials", "'search'"),
        ("search.trails", "'search.trials'"),
        ("epochs", "'training.epochs'"),
        ("trials", "'search.trials'"),
        ("training.epocs", "'training.epochs'"),
        ("training.eval_subset", "'evaluation.subset'"),
        ("search.bounds.thetamax", "'search.bounds.theta_max'"),
        ("resources.gpus", "'resources.gpu'"),
    ],
)
def test_unknown_override_paths_suggest(key, suggestion):
    with pytest.raises(UserError) as info:
        load_job("quickstart", {key: 1})
    message = str(info.value)
    assert message.startswith("unknown key '") and f"in --set {key};" in message
    assert f"did you mean {suggestion}" in message


def test_override_below_a_leaf_is_an_error():
    with pytest.raises(UserError, match=r"search\.bounds\.eps_max takes a whole value"):
        load_job("quickstart", {"search.bounds.eps_max.low": 0})
    with pytest.raises(UserError, match="name is not a section"):
        load_job("quickstart", {"name.x": 1})


# --------------------------------------------------------------------------------------------------
# Bad input: each gives one UserError line naming the key


def test_malformed_yaml(tmp_path):
    with pytest.raises(UserError, match=r"job\.yaml: malformed YAML at line \d+"):
        load_job(write(tmp_path, "name: x\nsearch: {trials: 3\n"))


def test_top_level_not_a_mapping(tmp_path):
    with pytest.raises(UserError, match="expected a mapping"):
        load_job(write(tmp_path, "- name: x\n"))
    with pytest.raises(UserError, match="must be a mapping"):
        JobSpec.from_dict(["name"], source="x")  # type: ignore[arg-type]


def test_unknown_top_level_key_in_file(tmp_path):
    with pytest.raises(UserError) as info:
        load_job(write(tmp_path, "serch: {trials: 3}\n", "quickstart2.yaml"))
    assert str(info.value) == "unknown key 'serch' in quickstart2.yaml; did you mean 'search'?"


def test_unknown_nested_key_in_file(tmp_path):
    with pytest.raises(UserError) as info:
        load_job(write(tmp_path, "search: {smapler: tpe}\n"))
    assert (
        str(info.value)
        == "unknown key 'search.smapler' in job.yaml; did you mean 'search.sampler'?"
    )


def test_missing_name_in_from_dict():
    with pytest.raises(UserError, match="name is missing"):
        JobSpec.from_dict({}, source="x")


BAD = [
    # (overrides, words the message must contain)
    ({"search.trials": "four"}, ["search.trials", "integer"]),
    ({"search.trials": 0}, ["search.trials", "at least 1"]),
    ({"search.trials": -3}, ["search.trials"]),
    ({"search.max_concurrent": 0}, ["search.max_concurrent"]),
    ({"search.seed": "x"}, ["search.seed", "integer"]),
    ({"training.epochs": 0}, ["training.epochs must be at least 1, got 0"]),
    ({"training.epochs": "three"}, ["training.epochs", "int"]),
    ({"training.lr": -1}, ["training.lr"]),
    ({"training.lr_schedule": "cosin"}, ["training.lr_schedule", "did you mean 'cosine'"]),
    ({"training": 5}, ["training", "mapping"]),
    ({"training.theta_mx": 3}, ["training.theta_mx", "did you mean 'training.theta_max'"]),
    ({"training.method": "pgd"}, ["training.method", "searched", "search.bounds.methods"]),
    ({"training.curriculum": "cusp"}, ["training.curriculum", "searched"]),
    ({"training.device": "cuda"}, ["training.device", "resources.gpu"]),
    ({"evaluation.subset": 0}, ["evaluation.subset"]),
    ({"evaluation.theta_eval": 200}, ["evaluation.theta_eval"]),
    ({"evaluation.eps_eval": 2}, ["evaluation.eps_eval"]),
    ({"objectives": "spatial_acc"}, ["objectives", "list"]),
    ({"objectives": []}, ["objectives", "at least one"]),
    ({"objectives": ["spatial_acc"]}, ["objectives[0]", "mapping"]),
    ({"objectives": [{"metric": "spatal_acc"}]}, ["objectives[0].metric", "'spatial_acc'"]),
    ({"objectives": [{"mode": "max"}]}, ["objectives[0].metric", "missing"]),
    ({"objectives": [{"metric": "adv_acc", "mode": "maximize"}]}, ["objectives[0].mode"]),
    ({"objectives": [{"metric": "adv_acc", "mod": "max"}]}, ["objectives[0].mod", "mode"]),
    (
        {"objectives": [{"metric": "adv_acc"}, {"metric": "adv_acc", "mode": "min"}]},
        ["objectives[1].metric", "twice"],
    ),
    ({"objectives": [{"metric": "adv_acc@0.2"}]}, ["objectives[0].metric", "adv_acc@0.15"]),
    ({"objectives": [{"metric": "spatial_acc@x"}]}, ["objectives[0].metric", "number"]),
    (
        {"evaluation.profiles": False, "objectives": [{"metric": "spatial_acc@30"}]},
        ["objectives[0].metric", "evaluation.profiles"],
    ),
    ({"search.bounds.eps_max": [0, 0.5]}, ["search.bounds.eps_max", "limit 0.3"]),
    ({"search.bounds.eps_max": [-0.1, 0.2]}, ["search.bounds.eps_max"]),
    ({"search.bounds.eps_max": "big"}, ["search.bounds.eps_max", "pair"]),
    ({"dataset.name": "cifar10", "model": "vgg16", "model_width": None}, ["search.bounds.eps_max"]),
    ({"search.bounds.theta_max": [0, 270]}, ["search.bounds.theta_max", "180"]),
    ({"search.bounds.theta_max": [-5, 90]}, ["search.bounds.theta_max"]),
    ({"search.bounds": {"theta_max": [0, 0]}, "search.preset": "augment-only"}, ["theta_max"]),
    ({"search.bounds": [0, 1]}, ["search.bounds", "mapping"]),
    ({"search.bounds.models": ["stdcnn"]}, ["search.bounds.models", "model: [a, b]"]),
    ({"dataset.name": "mnst"}, ["dataset.name", "did you mean 'mnist'"]),
    ({"dataset.name": 3}, ["dataset.name", "string"]),
    ({"dataset.train_size": -5}, ["dataset.train_size"]),
    ({"dataset.download": "maybe"}, ["dataset.download", "bool"]),
    ({"model": "resnet"}, ["model", "unknown model 'resnet'"]),
    ({"model": ["stdcnn", "foo"]}, ["model[1]", "unknown model 'foo'"]),
    ({"model": ["stdcnn", "stdcnn"]}, ["model[1]", "twice"]),
    ({"model": 3}, ["model", "model name"]),
    ({"model": "vgg16"}, ["model", "model_width"]),
    ({"model_width": -1}, ["model_width"]),
    ({"search.sampler": "nsga"}, ["search.sampler", "tpe, nsga2"]),
    ({"search.sampler": 3}, ["search.sampler"]),
    ({"search.preset": "jiont"}, ["search.preset", "did you mean 'joint'"]),
    ({"search.sampler_options.populaton_size": 3}, ["search.sampler_options.populaton_size"]),
    ({"search.sampler_options.population_size": 1}, ["search.sampler_options"]),
    ({"search.sampler_options.seed": 1}, ["search.sampler_options.seed", "search.seed"]),
    (
        {"search.sampler_options.population_size": "four"},
        ["search.sampler_options.population_size must be an integer", "'four' (str)"],
    ),
    ({"search.sampler_options.crossover_prob": True}, ["search.sampler_options.crossover_prob"]),
    ({"search.trials": "1.5e0"}, ["search.trials must be an integer, got 1.5"]),
    ({"scheduler.kind": "hyperband"}, ["scheduler.kind", "none, asha, moasha"]),
    ({"scheduler": {"kind": "asha", "grace_epochs": 5}}, ["scheduler.grace_epochs"]),
    (
        {"scheduler": {"kind": "moasha", "grace_epochs": 2}, "training.epochs": 2},
        ["scheduler.grace_epochs (2) must be below training.epochs (2)", "first rung"],
    ),
    ({"scheduler": {"kind": "asha", "grace_epochs": 3}}, ["must be below training.epochs (3)"]),
    (
        {"scheduler": {"kind": "moasha", "metric": "adv_acc"}},
        ["scheduler.metric is not used by scheduler.kind moasha"],
    ),
    (
        {"scheduler": {"kind": "none", "metric": "bogus"}},
        ["scheduler.metric is not used by scheduler.kind none"],
    ),
    ({"scheduler": {"grace_epochs": 2}}, ["scheduler.grace_epochs is not used", "kind none"]),
    (
        {"scheduler": {"kind": "none", "reduction_factor": 3}},
        ["scheduler.reduction_factor is not used", "asha or moasha"],
    ),
    ({"scheduler": {"kind": "asha", "grace_epochs": 0}}, ["scheduler.grace_epochs"]),
    ({"scheduler": {"kind": "asha", "reduction_factor": 1}}, ["scheduler.reduction_factor"]),
    ({"scheduler": {"kind": "asha", "metric": "clean_acc"}}, ["scheduler.metric", "objectives"]),
    (
        {
            "scheduler": {"kind": "asha", "metric": "spatial_acc@30"},
            "objectives": [{"metric": "spatial_acc@30"}],
        },
        ["scheduler.metric", "last epoch"],
    ),
    ({"resources.gpu": -1}, ["resources.gpu"]),
    ({"resources.gpu": 1.5}, ["resources.gpu", "whole"]),
    ({"resources.cpu": 0}, ["resources.cpu"]),
    ({"resources.cpu": "two"}, ["resources.cpu", "number"]),
    ({"storage": "hdfs://x/y"}, ["storage", "s3://"]),
    ({"storage": ""}, ["storage"]),
    ({"name": "a b"}, ["name"]),
    ({"name": "../escape"}, ["name"]),
    ({"checkpoint.every": 0}, ["checkpoint.every"]),
    ({"checkpoint.keep": 0}, ["checkpoint.keep"]),
    ({"failure.max_retries": -1}, ["failure.max_retries"]),
    ({"failure.max_retries": 1.5}, ["failure.max_retries", "integer"]),
]


@pytest.mark.parametrize(("overrides", "words"), BAD, ids=[str(o) for o, _ in BAD])
def test_bad_input_names_the_key(overrides, words):
    with pytest.raises(UserError) as info:
        load_job("quickstart", overrides)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_integers_may_be_written_in_exponent_form():
    # the module docstring promises that 5e-4-style numbers (strings to YAML 1.1) are numbers
    overrides = parse_overrides(["search.trials=1e1", "search.max_concurrent=2E0"])
    job = load_job("quickstart", overrides)
    assert job.search.trials == 10 and job.search.max_concurrent == 2


def test_scheduler_keys_a_kind_ignores_are_left_out_of_to_dict():
    assert load_job("quickstart").to_dict()["scheduler"] == {"kind": "none"}
    moasha = load_job("quickstart", {"scheduler": {"kind": "moasha", "grace_epochs": 1}})
    assert "metric" not in moasha.to_dict()["scheduler"]
    assert JobSpec.from_dict(moasha.to_dict()) == moasha
    assert "grid" not in load_job("quickstart").to_dict()["search"]


def test_a_saved_job_of_an_earlier_version_with_every_scheduler_key_still_loads():
    # earlier versions wrote every scheduler key, and an empty search.grid, into job.yaml
    saved = load_job("quickstart").to_dict()
    saved["scheduler"] = {
        "kind": "none",
        "grace_epochs": 1,
        "reduction_factor": 4.0,
        "metric": None,
    }
    saved["search"]["grid"] = {}
    assert JobSpec.from_saved(saved) == load_job("quickstart")


# --------------------------------------------------------------------------------------------------
# Grid jobs

GRID_BAD = [
    # (job, overrides, words the message must contain)
    (
        "digits-tradeoff-eps",
        {"model": ["stdcnn", "gcnn-c4"]},
        ["model lists 2 models", "search.grid.model: [stdcnn, gcnn-c4]"],
    ),
    (
        "digits-tradeoff-eps",
        {"search.grid.dataset": ["synthetic-digits", "mnist"]},
        ["search.grid.dataset", "one dataset", "one job per dataset"],
    ),
    ("digits-tradeoff-eps", {"search.grid.data_dir": ["/a", "/b"]}, ["search.grid.data_dir"]),
    ("digits-tradeoff-eps", {"search.grid.download": [True, False]}, ["search.grid.download"]),
    ("quickstart", {"search": {"grid": {}}}, ["search.grid must list at least one key"]),
    (
        "digits-tradeoff-eps",
        {"search": {"grid": {}, "max_concurrent": 2}},
        ["search.grid must list at least one key"],
    ),
    (
        "digits-tradeoff-rotation",
        {"training.theta_max": 30, "search.grid.theta_max": [0, 90]},
        ["training.theta_max is searched by search.grid.theta_max"],
    ),
    (
        "digits-tradeoff-rotation",
        {"search.grid.epochs": [1, 2]},  # the job fixes training.epochs: 3
        ["training.epochs is searched by search.grid.epochs"],
    ),
    (
        "digits-tradeoff-rotation",
        {"dataset.train_size": 100, "search.grid.train_size": [100, 200]},
        ["dataset.train_size is searched by search.grid.train_size"],
    ),
    (
        "digits-tradeoff-eps",
        {"search.grid.eps_max": [0.1, 0.9]},
        ["search.grid.eps_max value 0.9 is above the dataset's eps limit 0.3"],
    ),
    (
        "digits-tradeoff-eps",
        {"dataset.name": "fashion-mnist", "model_width": None},
        ["search.grid.eps_max value 0.15 is above the dataset's eps limit 0.1"],
    ),
]


@pytest.mark.parametrize(
    ("job", "overrides", "words"), GRID_BAD, ids=[str(o) for _, o, _ in GRID_BAD]
)
def test_bad_grid_names_the_key(job, overrides, words):
    with pytest.raises(UserError) as info:
        load_job(job, overrides)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_grids_over_sizes_and_epochs_load_and_round_trip():
    sizes = load_job(
        "digits-tradeoff-rotation",
        {"dataset.train_size": None, "search.grid.train_size": [100, 200]},
    )
    assert sizes.search.trials == 28
    epochs = load_job(
        "digits-tradeoff-rotation", {"training.epochs": None, "search.grid.epochs": [1, 2]}
    )
    assert "epochs" not in epochs.trial_config()  # the grid sets it, so it is not fixed
    again = JobSpec.from_dict(yaml.safe_load(yaml.safe_dump(epochs.to_dict())))
    assert again == epochs


def test_errors_name_the_file(tmp_path):
    path = write(tmp_path, "search: {trials: 0}\n", "mine.yaml")
    with pytest.raises(UserError, match=r"^mine\.yaml: search\.trials must be at least 1"):
        load_job(path)


# --------------------------------------------------------------------------------------------------
# Round trip and direct construction


def test_to_dict_from_dict_round_trip_with_everything_set():
    job = load_job(
        "quickstart",
        {
            "model": ["stdcnn", "gcnn-c4"],
            "objectives": [{"metric": "combined_acc"}, {"metric": "loss", "mode": "min"}],
            "scheduler": {"kind": "asha", "grace_epochs": 2, "reduction_factor": 3},
            "search.bounds.lr": [0.01, 0.1],
            "training.lr": None,  # null: not fixed (searched here)
            "storage": "s3://bucket/prefix",
        },
    )
    data = job.to_dict()
    assert yaml.safe_load(yaml.safe_dump(data)) == data
    again = JobSpec.from_dict(data, source="job.yaml")
    assert again == job and again.to_dict() == data
    assert data["model"] == ["stdcnn", "gcnn-c4"]
    assert data["search"]["bounds"]["lr"] == [0.01, 0.1]
    assert "lr" not in data["training"] and "lr" not in job.trial_config()


def test_trial_config_is_a_copy():
    job = load_job("quickstart")
    trial = job.trial_config()
    trial["epochs"] = 99
    assert job.trial_config()["epochs"] == 3


def test_direct_construction_validates():
    job = JobSpec(name="direct", trial={"epochs": 2}, models=("stdcnn",))
    trial = job.trial_config()
    assert trial["dataset"] == "synthetic-digits" and trial["model"] == "stdcnn"
    assert trial["epochs"] == 2 and trial["checkpoint_every"] == 1
    with pytest.raises(UserError, match="training.epochs"):
        JobSpec(name="direct", trial={"epochs": 0}, models=("stdcnn",))
    with pytest.raises(UserError, match="mode"):
        Objective("adv_acc", "up")


@pytest.mark.parametrize("key", ["preset", "sampler", "seed", "bounds.theta_max"])
def test_a_grid_job_refuses_the_optuna_settings_it_would_ignore(key):
    value = {"preset": "joint", "sampler": "nsga2", "seed": 3, "bounds.theta_max": [0, 90]}[key]
    with pytest.raises(UserError, match=r"is not used by a grid job"):
        load_job("digits-tradeoff-eps", {f"search.{key}": value})


def test_a_saved_grid_job_of_an_earlier_version_still_loads():
    # earlier versions wrote a grid job's unused preset and sampler into job.yaml
    saved = load_job("digits-tradeoff-eps").to_dict()
    saved["search"].update(preset="cusp", sampler="tpe", seed=0, sampler_options={}, bounds={})
    assert JobSpec.from_saved(saved) == load_job("digits-tradeoff-eps")


def _typo_preset(trial, bounds, epochs):
    return {"methd": "pgd", "theta_max": trial.suggest_float("theta_max", 0.0, 400.0)}


def _wide_preset(trial, bounds, epochs):
    return {"theta_schedule": "constant", "theta_max": trial.suggest_float("theta_max", 0, 400)}


@pytest.mark.parametrize(
    ("sample", "message"),
    [(_typo_preset, "'methd'"), (_wide_preset, "theta_max")],
)
def test_a_preset_that_samples_configs_trials_refuse_is_caught_at_load(
    sample, message, monkeypatch
):
    from search_spaces import _presets

    monkeypatch.setitem(_presets._PRESETS, "lab", _presets.Preset("lab", "a lab's", sample))
    with pytest.raises(
        UserError, match=f"search.preset 'lab' samples trials that would fail: .*{message}"
    ):
        load_job("quickstart", {"search.preset": "lab"})


def test_a_relative_data_dir_is_saved_absolute_so_resume_elsewhere_reads_the_same_data(
    tmp_path, monkeypatch
):
    """job.yaml is what resume reads, and resume may run from another directory."""
    launched_from = tmp_path / "proj"
    launched_from.mkdir()
    monkeypatch.chdir(launched_from)
    spec = load_job("quickstart", {"dataset.data_dir": "data"})
    assert spec.to_dict()["dataset"]["data_dir"] == str(launched_from / "data")
    saved = yaml.safe_load(yaml.safe_dump(spec.to_dict()))
    monkeypatch.chdir(tmp_path)
    assert JobSpec.from_saved(saved).trial["data_dir"] == str(launched_from / "data")
