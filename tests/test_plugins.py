"""A job's own models through ``plugins``: in the driver, in Ray's trial workers, in a later
``analyze``/``export`` and in ``load_model``. The registrations happen in subprocesses only, so
this session's registries stay as shipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from trainables.errors import UserError
from trainables.plugins import check_plugins, import_plugins, local_plugin_paths

PLUGIN = textwrap.dedent(
    '''
    """A lab's own model, registered when the module is imported."""
    import torch.nn as nn

    from trainables.models import register_model


    class LabMLP(nn.Module):
        def __init__(self, normalize, in_features, hidden, num_classes):
            super().__init__()
            self.normalize = normalize
            layers = [nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)]
            self.body = nn.Sequential(nn.Flatten(), *layers)

        def forward(self, x):
            return self.body(self.normalize(x))


    @register_model("lab-mlp", image_sizes=(28,), in_channels=(1,))
    def lab_mlp(*, in_channels, num_classes, image_size, normalize, hidden=16):
        """A one-hidden-layer MLP."""
        return LabMLP(normalize, in_channels * image_size**2, hidden, num_classes)
    '''
)

JOB = textwrap.dedent(
    """
    name: lab
    plugins: [labext]
    dataset: {name: synthetic-digits, train_size: 128, test_size: 40}
    model: lab-mlp
    training: {epochs: 1, train_pgd_steps: 1}
    evaluation: {subset: 20, pgd_steps: 1, profiles: false}
    search: {preset: joint, trials: 2, max_concurrent: 2, sampler: random}
    storage: results
    """
)


def _run(cwd, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """A fresh process in ``cwd`` (no Ray of this session, no RAY_ADDRESS)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTHONPATH")}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("value", [3, [""], ["my-models"], ["ok", 1], {"a": 1}, ["a..b"]])
def test_plugins_must_be_module_names(value):
    with pytest.raises(UserError, match="plugins must be a list of module names"):
        check_plugins(value)


def test_plugin_names_are_kept_in_order_once():
    assert check_plugins(["b", "a.c", "b"]) == ("b", "a.c")
    assert check_plugins("labext") == ("labext",)
    assert check_plugins(None) == ()


def test_a_missing_plugin_says_how_to_make_it_importable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="no module named 'no_such_lab_plugin' here; make it"):
        import_plugins(["no_such_lab_plugin"])


def test_a_plugin_that_fails_names_its_line(tmp_path, monkeypatch):
    (tmp_path / "broken_lab_plugin.py").write_text("x = 1\nraise ValueError('oops')\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"broken_lab_plugin.py:2: ValueError: oops"):
        import_plugins(["broken_lab_plugin"])


def test_a_refused_registration_points_at_the_plugins_line(tmp_path, monkeypatch):
    (tmp_path / "taken_lab_plugin.py").write_text(
        "from trainables.models import register_model\n\n"
        "register_model('stdcnn')(lambda **kwargs: None)\n"
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"taken_lab_plugin.py:3: ValueError: model 'stdcnn' is"):
        import_plugins(["taken_lab_plugin"])


def test_a_misspelt_plugin_gets_a_did_you_mean(tmp_path, monkeypatch):
    (tmp_path / "mylab.py").write_text("")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="no module named 'mylba' here; did you mean 'mylab'"):
        import_plugins(["mylba"])


def test_a_plugin_missing_a_dependency_names_the_dependency(tmp_path, monkeypatch):
    (tmp_path / "needy_lab_plugin.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="No module named 'no_such_dependency_xyz'"):
        import_plugins(["needy_lab_plugin"])


def test_a_plugin_model_trains_in_ray_workers_and_is_analysed_and_loaded_later(tmp_path):
    (tmp_path / "labext.py").write_text(PLUGIN)
    (tmp_path / "job.yaml").write_text(JOB)
    launched = _run(tmp_path, "-m", "tune_jobs", "launch", "job.yaml")
    assert launched.returncode == 0, launched.stdout + launched.stderr
    experiment = tmp_path / "results" / "lab"
    assert "plugins:\n- labext\n" in (experiment / "job.yaml").read_text()

    # a later process reads the experiment: the plugin is imported from job.yaml
    status = _run(tmp_path, "-m", "tune_jobs", "status", str(experiment))
    assert status.returncode == 0 and "2 completed" in status.stdout, status.stderr
    exported = _run(tmp_path, "-m", "tune_jobs", "export", str(experiment), "--out", "models")
    assert exported.returncode == 0, exported.stderr
    model_dir = next(p for p in (tmp_path / "models").iterdir() if p.is_dir())
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model"] == "lab-mlp"
    load = (
        "import sys, torch; from analysis import load_model;"
        f"m = load_model({str(model_dir)!r}); print(tuple(m(torch.rand(3, 1, 28, 28)).shape))"
    )
    loaded = _run(tmp_path, "-c", load)
    assert loaded.returncode == 0 and "(3, 10)" in loaded.stdout, loaded.stderr
    evaluated = _run(tmp_path, "-m", "tune_jobs", "evaluate", str(model_dir), "--profile", "none")
    assert evaluated.returncode == 0 and "clean_acc" in evaluated.stdout, evaluated.stderr

    # where the plugin cannot be imported, one line says so
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    line = _one_line_error(_run(elsewhere, "-m", "tune_jobs", "analyze", str(experiment)))
    assert "plugins: no module named 'labext' here" in line, line


def test_a_job_without_its_plugin_names_the_model_and_the_fix(tmp_path):
    (tmp_path / "job.yaml").write_text(JOB.replace("plugins: [labext]\n", ""))
    line = _one_line_error(_run(tmp_path, "-m", "tune_jobs", "launch", "job.yaml"))
    assert "unknown model 'lab-mlp'" in line, line


def test_train_imports_the_plugins_of_a_trial_file(tmp_path):
    (tmp_path / "labext.py").write_text(PLUGIN)
    (tmp_path / "trial.yaml").write_text(
        "plugins: [labext]\nmodel: lab-mlp\nepochs: 1\ntrain_size: 64\ntest_size: 20\n"
        "train_pgd_steps: 1\neval_pgd_steps: 1\nfinal_profiles: false\n"
    )
    trained = _run(tmp_path, "-m", "tune_jobs", "train", "trial.yaml")
    assert trained.returncode == 0, trained.stderr
    assert "training lab-mlp on synthetic-digits" in trained.stdout


def test_local_plugin_paths_are_the_plugins_that_live_in_the_current_directory(
    tmp_path, monkeypatch
):
    (tmp_path / "labmod.py").write_text("")
    (tmp_path / "labpkg").mkdir()
    (tmp_path / "labpkg" / "__init__.py").write_text("")
    (tmp_path / "labpkg" / "schedules.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    found = local_plugin_paths(["labmod", "labpkg.schedules", "labpkg", "json", "nowhere"])
    assert found == [tmp_path.resolve() / "labmod.py", tmp_path.resolve() / "labpkg"]


def test_a_plugin_too_big_to_ship_to_a_cluster_is_one_line(tmp_path, monkeypatch):
    import ray

    from tune_jobs import runner

    (tmp_path / "labmod.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(runner, "_check_reachable", lambda address: None)
    shipped = {}

    def refuse(**kwargs):
        shipped.update(kwargs.get("runtime_env") or {})
        raise ValueError("Package size (600.00MiB) exceeds the maximum size of 512.00MiB.")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(UserError, match="the plugins cannot be sent to the cluster: Package size"):
        runner.connect("10.0.0.1:6379", ["labmod"])
    assert shipped == {"py_modules": [str(tmp_path.resolve() / "labmod.py")]}
