"""Exporting the front's models, loading them back, and evaluating them again.

An export directory holds one sub-directory per front member and an index::

    <out>/index.csv            trial_id, directory, model, method, curriculum, objectives, ...
    <out>/<trial_id>/model.pt     the trained model's state dict + its flat trial config
    <out>/<trial_id>/config.json  the flat trial config (TrialConfig.to_dict)
    <out>/<trial_id>/metrics.json the trial's final metrics (full test set, with profiles)

``model.pt`` keeps the state dict of the model *as trained* (for the ``gcnn-*`` models the e2cnn
module, whose exported plain-torch form has a different structure) together with the config, and
:func:`load_model` rebuilds it (``build_model`` + ``load_state_dict``) and returns
``export_model`` of it: a plain torch module in eval mode that takes float images in ``[0, 1]``
(NCHW, normalisation inside) and returns logits::

    from analysis import load_model
    model = load_model("exports/a9cac412")         # or .../model.pt, or a checkpoint_<n>/ dir
    logits = model(images)                          # images: float (N, C, H, W) in [0, 1]

Everything is read with ``torch.load(..., weights_only=True)``: no code is unpickled.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from analysis.experiment import (
    CHECKPOINT_FILE,
    RESULT_BOOKKEEPING,
    Experiment,
    load_experiment,
    require_results,
)
from trainables.errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from trainables.datasets import DatasetInfo
    from trainables.evaluation import EvalSettings

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
INDEX_FILE = "index.csv"
FORMAT = "cusp-tune-model"
FORMAT_VERSION = 1
PROFILES = ("both", "rotation", "eps", "none")
WORST_CASE = ("random", "grid")
WORST_CASE_GRID = (31, 5, 5)
"""Engstrom et al.'s grid: 31 angles in +-30 degrees x 5 x 5 translations in +-3 px."""


@dataclass(frozen=True)
class FrontExport:
    """What :func:`export_front` wrote; iterating over it gives the model directories.

    Attributes:
        directory: the export directory.
        paths: one directory per exported front member (``<directory>/<trial_id>``).
        index: ``index.csv``.
        warnings: one line per front member that was skipped, saying why.
    """

    directory: Path
    paths: tuple[Path, ...]
    index: Path
    warnings: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Path]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)


def _load_payload(file: Path) -> dict[str, Any] | None:
    """The ``model`` + ``config`` dict saved in ``file`` (an exported ``model.pt`` or a trial's
    ``trial.pt``), or None when the file is not one (truncated, corrupt, another file)."""
    import torch

    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception:  # corrupt, truncated, or not a torch file
        return None
    if not isinstance(payload, dict) or "model" not in payload or "config" not in payload:
        return None
    return payload


def _torch_load(file: Path) -> dict[str, Any]:
    """:func:`_load_payload`, with a :class:`UserError` that says what to pass instead: a file
    named ``model.pt`` / ``trial.pt`` is damaged; another file is not a model at all."""
    payload = _load_payload(file)
    if payload is not None:
        return payload
    if file.name == MODEL_FILE:
        raise UserError(f"{file} is damaged (not a complete cusp-tune model); export it again")
    if file.name == CHECKPOINT_FILE:
        raise UserError(
            f"{file} is damaged (cut short or not a trial checkpoint); pass another "
            "checkpoint_<n> directory of the trial"
        )
    raise UserError(
        f"{file} is not a cusp-tune model; pass the exported model's directory or its {MODEL_FILE}"
    )


def final_metrics(experiment: Experiment, trial_id: str) -> dict[str, float]:
    """The metrics of a trial's last reported epoch (numbers only, Ray's bookkeeping left out)."""
    history = experiment.history
    rows = history[history["trial_id"].astype(str) == str(trial_id)]
    if not len(rows):
        return {}
    last = rows.iloc[-1].to_dict()
    metrics = {}
    for key, value in last.items():
        if (
            key in RESULT_BOOKKEEPING
            or isinstance(value, bool)
            or not isinstance(value, int | float)
        ):
            continue
        if isinstance(value, float) and math.isnan(value):
            continue
        metrics[str(key)] = int(value) if key == "epoch" else float(value)
    return metrics


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _rebuild(config: Mapping[str, Any], plugins: Sequence[str] = ()) -> nn.Module:
    """The untrained model a trial config describes (CPU, the trial's architecture), after
    importing the job's ``plugins`` (its own models and datasets)."""
    from trainables.config import TrialConfig
    from trainables.plugins import import_plugins

    import_plugins(plugins)
    return TrialConfig.from_dict(dict(config)).build_model()


def _export_one(
    experiment: Experiment, row: Mapping[str, Any], staging: Path
) -> tuple[Path | None, str | None]:
    """Write one front member into ``staging/<trial_id>``; (directory, None) or (None, why)."""
    import torch

    trial_id = str(row["trial_id"])
    checkpoint = row.get("checkpoint_path")
    if (
        checkpoint is None
        or pd.isna(checkpoint)
        or not (Path(checkpoint) / CHECKPOINT_FILE).is_file()
    ):
        return (
            None,
            f"trial {trial_id}: no checkpoint in {experiment.path}/trial_{trial_id}; skipped",
        )
    state = _load_payload(Path(checkpoint) / CHECKPOINT_FILE)
    if state is None:
        return None, (
            f"trial {trial_id}: its checkpoint {Path(checkpoint) / CHECKPOINT_FILE} is damaged "
            "(cut short or not a trial checkpoint); skipped"
        )
    epochs = row.get("epochs")
    if epochs is not None and not pd.isna(epochs) and int(state.get("epoch", -1)) != int(epochs):
        return None, (
            f"trial {trial_id}: its newest checkpoint is from epoch {state.get('epoch')} of "
            f"{int(epochs)} (the final metrics would not match it); skipped"
        )
    config = dict(state.get("config") or experiment.config(trial_id))
    try:
        _rebuild(config).load_state_dict(state["model"])
    except (UserError, RuntimeError, KeyError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, f"trial {trial_id}: the checkpoint does not rebuild ({first}); skipped"
    target = staging / trial_id
    target.mkdir()
    torch.save(
        {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "model": state["model"],
            "config": config,
            "epoch": int(state.get("epoch", 0)),
            "trial_id": trial_id,
            "experiment": experiment.name,
            "plugins": list(experiment.spec.plugins),
        },
        target / MODEL_FILE,
    )
    (target / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=_json_default) + "\n")
    metrics = final_metrics(experiment, trial_id)
    (target / METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return target, None


def _empty_output_dir(out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir`` as a path; raise :class:`UserError` when it is a file or a directory that
    is not empty (exports would mix with what is there)."""
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file; choose a directory to export into (--out)")
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; export into a new directory (--out)")
    return out


def export_front(
    experiment_path: str | os.PathLike[str] | Experiment,
    out_dir: str | os.PathLike[str],
    objectives: Sequence[tuple[str, str]] | None = None,
) -> FrontExport:
    """Export every model on the experiment's front (see the module docstring for the layout).

    A front member without a usable final checkpoint is skipped with a line in
    ``warnings``. ``out_dir`` must not exist or be empty, so that ``index.csv`` lists every
    model directory in it. The directories are built in a temporary directory next to
    ``out_dir`` and moved in when complete.

    The models are exported (and listed in ``index.csv``) in the front's order, best first on
    the first objective, as the front table and ``front.csv`` show them.

    Raises:
        UserError: not an experiment, no results or no completed trial yet, an objective's
            metric is not in the trials' results (or its mode is not ``max`` / ``min``),
            ``out_dir`` is a file or a non-empty directory (checked before anything is
            written), or no front member could be exported (the message lists why each was
            skipped).
    """
    experiment = (
        experiment_path
        if isinstance(experiment_path, Experiment)
        else load_experiment(experiment_path)
    )
    require_results(experiment)
    objectives = list(objectives or experiment.objectives)
    front = experiment.front(objectives)
    if not len(front):
        raise UserError(
            f"no trial of {experiment.path} has completed yet, so its front is empty; "
            "export once a trial has finished"
        )
    out = _empty_output_dir(out_dir)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    except OSError as exc:
        raise UserError(f"cannot write to {out}: {exc.strerror}; choose another --out") from None
    warnings: list[str] = []
    exported: list[tuple[Mapping[str, Any], str]] = []
    try:
        for _, row in front.iterrows():
            directory, warning = _export_one(experiment, row.to_dict(), staging)
            if warning:
                warnings.append(warning)
            else:
                exported.append((row.to_dict(), directory.name))
        if not exported:
            raise UserError(
                f"none of the {len(front)} front models of {experiment.path} could be exported: "
                + " / ".join(warnings)
            )
        metrics = [m for m, _ in objectives]
        index = pd.DataFrame(
            [
                {
                    "trial_id": row["trial_id"],
                    "directory": name,
                    "model": row.get("model"),
                    "method": row.get("method"),
                    "curriculum": row.get("curriculum"),
                    **{m: row.get(m) for m in metrics},
                    **{
                        m: row.get(m)
                        for m in ("clean_acc", "spatial_acc", "adv_acc", "combined_acc")
                        if m not in metrics
                    },
                    "checkpoint": row.get("checkpoint_path"),
                    "experiment": str(experiment.path),
                }
                for row, name in exported
            ]
        )
        index.to_csv(staging / INDEX_FILE, index=False)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for _, name in exported:
            os.replace(staging / name, out / name)
            paths.append(out / name)
        os.replace(staging / INDEX_FILE, out / INDEX_FILE)
    except OSError as exc:
        raise UserError(f"cannot write to {out}: {exc}; choose another --out") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return FrontExport(out, tuple(paths), out / INDEX_FILE, tuple(warnings))


# ---------------------------------------------------------------------------------------------
# Loading and evaluating


def _model_file(path: str | os.PathLike[str]) -> Path:
    location = Path(path).expanduser()
    if location.is_dir():
        for name in (MODEL_FILE, CHECKPOINT_FILE):
            if (location / name).is_file():
                return location / name
        raise UserError(
            f"{location} has no {MODEL_FILE}; pass a model directory written by "
            "`cusp-tune export` (or a trial's checkpoint_<n> directory)"
        )
    if location.is_file():
        return location
    raise UserError(f"{location} does not exist; pass a model directory from `cusp-tune export`")


def read_exported(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The saved payload of an exported model (``model`` state dict, flat ``config``, ...).

    ``path`` is an export directory, its ``model.pt``, or a trial checkpoint (``trial.pt`` or
    its ``checkpoint_<n>`` directory), all read with ``weights_only=True``.
    """
    return _torch_load(_model_file(path))


def _device(name: str) -> torch.device:
    """``trainables.trial.resolve_device(name)``, with a message for the CLI and the API alike
    when ``cuda`` is asked for and no GPU is visible."""
    import torch

    from trainables.trial import resolve_device

    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise UserError(
            f"device {name!r} needs a CUDA GPU and none is visible; use --device auto or cpu "
            "(device='auto' or 'cpu' in Python)"
        )
    return resolve_device(name)


def load_model(path: str | os.PathLike[str], device: str = "cpu") -> nn.Module:
    """A plain torch module, in eval mode on ``device``, rebuilt from an exported model.

    The model is rebuilt from the saved config (``build_model``), gets the saved weights
    (``load_state_dict``, strict) and is converted with ``export_model``: for the ``gcnn-*``
    models that is the e2cnn network turned into ordinary torch layers, which compute the same
    logits. ``device`` is ``cpu``, ``cuda`` or ``auto``.

    Raises:
        UserError: ``path`` holds no readable model (a damaged ``model.pt``, or a file that is
            not one), or ``device`` is ``cuda`` and no GPU is visible.
    """
    from trainables.models import export_model

    target = _device(device)
    payload = read_exported(path)
    model = _rebuild(payload["config"], payload.get("plugins", ()))
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise UserError(
            f"{path}: the saved weights do not fit the model its config describes "
            f"({str(exc).splitlines()[0]}); re-export it"
        ) from None
    return export_model(model.eval()).to(target).eval()


def _positive(value: Any, name: str, kind: type) -> None:
    """Raise :class:`UserError` unless ``value`` is None or a positive number (of ``kind``)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise UserError(f"{name} must be a positive number, got {value!r}")
    if kind is int and int(value) != value:
        raise UserError(f"{name} must be a positive whole number, got {value!r}")


def _stronger_pgd(
    settings: EvalSettings, info: DatasetInfo, pgd_steps: int | None, pgd_step_size: float | None
) -> EvalSettings:
    """``settings`` with the PGD steps and step size asked for.

    Without a step size: the dataset's conventional step for at least its conventional number
    of steps (MNIST's 100 steps for evaluation are 100 of 0.01), else the step that keeps the
    convention's total travel (the rule a search uses for fewer steps)."""
    from dataclasses import replace

    from trainables.trial import pgd_schedule

    if pgd_steps is None and pgd_step_size is None:
        return settings
    steps = settings.pgd_steps if pgd_steps is None else int(pgd_steps)
    if pgd_step_size is not None:
        size = float(pgd_step_size)
    elif pgd_steps is None:
        size = settings.pgd_step_size
    elif steps >= info.pgd_steps:
        size = info.pgd_step_size
    else:
        size = pgd_schedule(info, steps, None)[1]
    return replace(settings, pgd_steps=steps, pgd_step_size=size)


def evaluate_exported(
    path: str | os.PathLike[str],
    profile: str | None = "both",
    device: str = "auto",
    test_size: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    pgd_steps: int | None = None,
    pgd_step_size: float | None = None,
    worst_case: str = "random",
    worst_case_combined: bool = False,
) -> dict[str, float]:
    """Evaluate an exported model again on its own test set.

    The dataset comes from the saved config (``dataset``, ``data_dir`` unless ``data_dir`` is
    given, ``download``); the test set is its first ``test_size`` images (default the config's
    ``test_size``, else all). The settings are the trial's (``trainables.trial.eval_settings``:
    ``theta_eval``, ``eps_eval``, PGD steps...), so the numbers match the search's final
    metrics for the same test set and device.

    A stronger attack than the search's: ``pgd_steps`` (for ``adv_acc``, ``combined_acc`` and
    the ``adv_acc@<eps>`` profile) with ``pgd_step_size`` (default: the dataset's conventional
    step, 0.01 for MNIST-like data and 2/255 for CIFAR-10, when ``pgd_steps`` is at least the
    convention's 40 / 10; for fewer steps the step that keeps the convention's total travel,
    as in a search); ``worst_case="grid"`` for Engstrom et al.'s exhaustive 31 x 5 x 5 grid
    instead of the worst of 10 random transforms. ``worst_case_combined`` adds
    ``worst_case_combined_acc``, Engstrom et al.'s combined adversary: PGD on top of each of
    10 random transforms in the same ranges, an image right only when right under all ten
    (:func:`~trainables.evaluation.worst_case_combined_accuracy`; ten times the PGD cost).

    Returns ``clean_acc``, ``spatial_acc``, ``adv_acc``, ``combined_acc``, ``invariance_rate``,
    ``worst_case_spatial_acc`` (Engstrom et al.'s worst of 10 random rotations within
    +-30 degrees and translations within +-3 px; ``worst_case_spatial_acc_grid`` for the grid),
    plus the invariance profile ``spatial_acc@<deg>`` (``profile`` ``"rotation"`` or
    ``"both"``) and the robustness profile ``adv_acc@<eps>`` (``"eps"`` or ``"both"``);
    ``None`` or ``"none"``: no profile.

    Raises:
        UserError: unknown ``profile`` or ``worst_case``, a bad ``test_size``, ``pgd_steps`` or
            ``pgd_step_size``, ``device`` ``cuda`` without a visible GPU, missing data files,
            or an unreadable model.
    """
    from trainables.config import TrialConfig
    from trainables.datasets import load_dataset
    from trainables.evaluation import (
        evaluate,
        invariance_profile,
        robustness_profile,
        worst_case_combined_accuracy,
        worst_case_spatial_accuracy,
    )
    from trainables.plugins import import_plugins
    from trainables.trial import eval_settings

    chosen = "none" if profile is None else str(profile)
    if chosen not in PROFILES:
        raise UserError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if worst_case not in WORST_CASE:
        raise UserError(f"unknown worst_case {worst_case!r}; choose one of {', '.join(WORST_CASE)}")
    _positive(pgd_steps, "pgd_steps", int)
    _positive(pgd_step_size, "pgd_step_size", float)
    target = _device(device)
    payload = read_exported(path)
    import_plugins(payload.get("plugins", ()))
    config = TrialConfig.from_dict(dict(payload["config"]))
    if test_size is not None and (isinstance(test_size, bool) or int(test_size) < 1):
        raise UserError(f"test_size must be a positive number of images, got {test_size}")
    root = data_dir if data_dir is not None else config.data_dir
    try:
        dataset = load_dataset(config.dataset, root, download=config.download)
    except UserError as exc:
        if data_dir is not None:
            raise
        raise UserError(
            f"{exc} (evaluating an exported model: give where the data is on this machine "
            "with --data-dir, or data_dir= in Python)"
        ) from None
    if test_size is not None and test_size > dataset.num_test:
        raise UserError(
            f"test_size {test_size} (--test-size) is more than the {dataset.num_test} test "
            f"images of {dataset.info.name}; give at most {dataset.num_test}"
        )
    dataset = dataset.subset(1, test_size if test_size is not None else config.test_size)
    model = load_model(path, str(target))
    images = dataset.test_images.to(target)
    labels = dataset.test_labels.to(target)
    settings = _stronger_pgd(eval_settings(config, dataset), dataset.info, pgd_steps, pgd_step_size)
    metrics: dict[str, float] = dict(evaluate(model, images, labels, settings))
    grid = worst_case == "grid"
    key = "worst_case_spatial_acc_grid" if grid else "worst_case_spatial_acc"
    metrics[key] = worst_case_spatial_accuracy(
        model,
        images,
        labels,
        tries=None if grid else 10,
        grid=WORST_CASE_GRID if grid else None,
        batch_size=settings.batch_size,
        seed=settings.seed,
    )
    if worst_case_combined:
        metrics["worst_case_combined_acc"] = worst_case_combined_accuracy(
            model, images, labels, settings
        )
    if chosen in ("both", "rotation"):
        metrics.update(invariance_profile(model, images, labels, settings))
    if chosen in ("both", "eps"):
        metrics.update(robustness_profile(model, images, labels, settings))
    return metrics


__all__ = [
    "CONFIG_FILE",
    "INDEX_FILE",
    "METRICS_FILE",
    "MODEL_FILE",
    "PROFILES",
    "WORST_CASE",
    "FrontExport",
    "evaluate_exported",
    "export_front",
    "final_metrics",
    "load_model",
    "read_exported",
]
