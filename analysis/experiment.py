"""Reading an experiment directory into tables, from its files alone (no Ray, no running search).

A cusp-tune experiment directory (``<storage>/<name>/``, written by ``tune_jobs.runner``) holds:

- ``job.yaml``: the job spec (what makes the directory a cusp-tune experiment);
- ``experiment_state-<time>.json``: Ray Tune's snapshot of every trial (status, config, start
  time, error file), the newest one wins; absent before the first snapshot;
- one ``trial_<id>/`` per started trial with ``params.json`` (the flat trial config),
  ``result.json`` (one JSON object per reported epoch; the last epoch has ``"final": true`` and
  the profiles), ``error.txt`` when the trial failed, and ``checkpoint_<n>/trial.pt``.

Any of these may be missing or half-written while a search runs or after it was killed: a trial
directory without results, a truncated last line of ``result.json``, no state snapshot yet. The
loader keeps what it can read and never raises for those; only a directory that is not an
experiment at all is a :class:`~trainables.errors.UserError`.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from analysis.pareto import MODES, best_first, completed_trials, non_dominated
from trainables.curriculum import curriculum_label
from trainables.errors import UserError

logger = logging.getLogger(__name__)

JOB_FILE = "job.yaml"
RESULT_FILE = "result.json"
PARAMS_FILE = "params.json"
ERROR_FILE = "error.txt"
CHECKPOINT_FILE = "trial.pt"

TERMINATED, ERROR, RUNNING, PENDING, PAUSED = "TERMINATED", "ERROR", "RUNNING", "PENDING", "PAUSED"
UNFINISHED = "UNFINISHED"
"""Status of a trial that neither finished nor failed, when no Ray state file says more."""

# Fields Ray adds to every result that say nothing about the model; left out of ``trials``
# (``history`` keeps them).
RESULT_BOOKKEEPING = frozenset(
    {
        "config",
        "node_id",
        "pid",
        "hostname",
        "node_ip",
        "checkpoint_dir_name",
        "should_checkpoint",
        "done",
        "trial_id",
        "time_since_restore",
        "iterations_since_restore",
        "timestamp",
        "date",
        "time_this_iter_s",
        "training_iteration",
    }
)
_BASE_METRICS = ("clean_acc", "spatial_acc", "adv_acc", "combined_acc", "invariance_rate")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CHECKPOINT_DIR = re.compile(r"^checkpoint_(\d+)$")


@dataclass(frozen=True, eq=False)
class Experiment:
    """One experiment directory, read.

    Attributes:
        path: the experiment directory (absolute).
        spec: the job spec from ``job.yaml``.
        trials: one row per trial. Columns: ``trial_id``, ``status`` (Ray's ``TERMINATED``,
            ``ERROR``, ``RUNNING``, ``PENDING``, ``PAUSED`` from the newest state snapshot; without
            one: ``TERMINATED`` for a trial whose last result is final, ``ERROR`` with an
            ``error.txt``, else ``UNFINISHED``), ``model``, ``method``, ``curriculum`` (the
            curriculum's label, :func:`curriculum_label`), ``label`` (a short label for plots:
            curriculum and method),
            ``train_theta`` / ``train_translate`` / ``train_eps`` (the largest rotation range in
            degrees, translation fraction and PGD budget the curriculum reaches), ``epochs_done``,
            ``epochs`` (planned), ``final`` (the last epoch reported the full evaluation),
            ``stopped`` (stopped early by the scheduler: the job has one (``scheduler.kind``
            ``asha`` or ``moasha``), the newest state snapshot says ``TERMINATED``, the trial has
            reported, its last result is not final and it has no ``error``; False without a
            scheduler or a snapshot, and for a trial interrupted with its search, which the
            snapshot leaves ``RUNNING``, ``PENDING`` or ``PAUSED``), the
            metrics of the last reported epoch (``clean_acc``, ``spatial_acc``, ``adv_acc``, ...:
            on the full test set with the profiles ``spatial_acc@<deg>`` / ``adv_acc@<eps>``
            for final rows, on the fixed evaluation subset for the others; the objectives'
            columns exist even when no trial reported them),
            ``time_total_s``, ``started_at`` / ``completed_at`` / ``last_result_at`` (Unix
            seconds; ``completed_at`` only for final rows), ``checkpoint_path`` (newest
            checkpoint directory, or None), ``error`` (the exception line of ``error.txt``, or
            None) and the flat trial config as ``config/<key>`` columns.
        history: every reported epoch of every trial (all fields of ``result.json`` except the
            config), with ``trial_id``; ordered by trial, then epoch.
        configs: the flat trial config of each trial id, as plain Python values.
    """

    path: Path
    spec: Any  # tune_jobs.spec.JobSpec (imported lazily: analysis does not need tune_jobs' deps)
    trials: pd.DataFrame = field(repr=False)
    history: pd.DataFrame = field(repr=False)
    configs: Mapping[str, Mapping[str, Any]] = field(repr=False, default_factory=dict)

    @property
    def name(self) -> str:
        """The experiment's directory name."""
        return self.path.name

    @property
    def objectives(self) -> tuple[tuple[str, str], ...]:
        """The job's ``(metric, mode)`` objectives, in order."""
        return tuple((o.metric, o.mode) for o in self.spec.objectives)

    @cached_property
    def completed(self) -> pd.DataFrame:
        """Trials that ran their last epoch and did not fail (the front's candidates)."""
        return completed_trials(self.trials) if len(self.trials) else self.trials

    def front(self, objectives: Sequence[tuple[str, str]] | None = None) -> pd.DataFrame:
        """The completed trials on the Pareto front of ``objectives`` (default: the job's),
        best first on the first objective (:func:`~analysis.pareto.best_first`).

        Raises:
            UserError: an objective's metric is not a column of :attr:`trials`, or its mode is
                not ``max`` / ``min`` (:func:`check_objectives`).
        """
        objectives = check_objectives(objectives or self.objectives, self.trials)
        done = self.completed
        if not len(done):
            return done.iloc[0:0]
        return best_first(non_dominated(done, objectives), objectives)

    @property
    def has_results(self) -> bool:
        """Whether any trial has reported at least one epoch."""
        return len(self.history) > 0

    def status_counts(self) -> dict[str, int]:
        """Number of trials per status."""
        if not len(self.trials):
            return {}
        return {str(k): int(v) for k, v in self.trials["status"].value_counts().items()}

    def config(self, trial_id: str) -> dict[str, Any]:
        """The flat config of one trial."""
        try:
            return dict(self.configs[str(trial_id)])
        except KeyError:
            raise UserError(
                f"experiment {self.path} has no trial {trial_id!r}; its trials are "
                f"{', '.join(sorted(self.configs)) or 'none'}"
            ) from None


def display_names(experiments: Sequence[Experiment]) -> list[str]:
    """Names to show for experiments side by side: the directory names, with the parent
    directory added when two are equal (and a number when even that is not enough)."""
    names = [e.name for e in experiments]
    if len(set(names)) < len(names):
        names = [f"{e.path.parent.name}/{e.name}" for e in experiments]
    if len(set(names)) < len(names):
        names = [f"{name} ({i + 1})" for i, name in enumerate(names)]
    return names


def require_results(experiment: Experiment) -> Experiment:
    """Return ``experiment``; raise the analysis' :class:`UserError` when no trial has reported
    anything yet (nothing to analyse), with the first failure when trials failed before it."""
    if not experiment.has_results:
        trials = experiment.trials
        failed = trials[trials["error"].notna()] if "error" in trials else trials.iloc[:0]
        if len(failed):
            first = failed.iloc[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise UserError(
                f"no trial of {experiment.path} has finished an epoch: {len(failed)} failed "
                f"first; trial {first['trial_id']}: {first['error']}{more} (each trial's "
                "error.txt has the traceback)"
            )
        raise UserError(
            f"no trial of {experiment.path} has finished an epoch yet, so there is nothing to "
            "analyse: the search is still starting, or it was interrupted before its first "
            f"epoch (continue it with `cusp-tune resume {experiment.path}`)"
        )
    return experiment


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The metric columns of a trial table: every column except the trial's description
    (``trial_id``, ``status``, ``model``, ..., ``stopped``), its times, checkpoint and error,
    the ``config/<key>`` columns and ``experiment``."""
    return [
        str(c) for c in frame.columns if c not in _NOT_METRICS and not str(c).startswith("config/")
    ]


def check_objectives(
    objectives: Sequence[tuple[str, str]], frames: pd.DataFrame | Sequence[pd.DataFrame]
) -> list[tuple[str, str]]:
    """``objectives`` as a list of ``(metric, mode)`` pairs, checked against trial tables.

    Raises:
        UserError: no objective, an objective that is not a ``(metric, mode)`` pair, a mode
            other than ``max`` / ``min``, or a metric that is a metric column
            (:func:`metric_columns`) of none of ``frames``; the message names the metric, a
            close match and the metrics there are.
    """
    tables = [frames] if isinstance(frames, pd.DataFrame) else list(frames)
    available = list(dict.fromkeys(c for f in tables for c in metric_columns(f)))
    checked = []
    for objective in objectives:
        try:
            metric, mode = objective
        except (TypeError, ValueError):
            raise UserError(f"objectives are (metric, mode) pairs, got {objective!r}") from None
        if mode not in MODES:
            raise UserError(f"objective {metric!r}: mode must be 'max' or 'min', got {mode!r}")
        if metric not in available:
            close = difflib.get_close_matches(str(metric), available, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(
                f"objective metric {metric!r} is not in the trials' results; {hint}"
                f"choose one of {', '.join(available) or 'none (no trial has reported)'}"
            )
        checked.append((str(metric), str(mode)))
    if not checked:
        raise UserError("no objective given; pass at least one (metric, mode) pair")
    return checked


def evaluation_settings(experiment: Experiment | None) -> dict[str, float]:
    """How a job's trials were measured: ``theta_eval`` (degrees), ``translate_eval``
    (fraction of the image), ``eps_eval``, ``pgd_steps`` and ``pgd_step_size``, the dataset's
    conventions where the job leaves a setting to them; NaN where unknown (None, or a job
    whose settings do not build)."""
    settings = {
        "theta_eval": 180.0,
        "translate_eval": 0.0,
        "eps_eval": math.nan,
        "pgd_steps": math.nan,
        "pgd_step_size": math.nan,
    }
    if experiment is None:
        return settings
    try:
        from trainables.config import TrialConfig
        from trainables.datasets import dataset_info
        from trainables.trial import pgd_schedule

        config = TrialConfig.from_dict(experiment.spec.trial_config())
        info = dataset_info(config.dataset)
        steps, step_size = pgd_schedule(info, config.eval_pgd_steps, config.eval_pgd_step_size)
        settings.update(
            theta_eval=config.theta_eval,
            translate_eval=config.translate_eval,
            eps_eval=config.eps_eval if config.eps_eval is not None else info.eps_scale,
            pgd_steps=steps,
            pgd_step_size=step_size,
        )
    except Exception:  # descriptive only: an odd job must not stop a report
        logger.debug("evaluation settings of %s unknown", experiment.path, exc_info=True)
    return settings


def pgd_text(settings: Mapping[str, float]) -> str:
    """``"10 steps of 0.03"`` (``"1 step of 0.4"``) from :func:`evaluation_settings`, ``""``
    when the steps are unknown."""
    steps, size = settings["pgd_steps"], settings["pgd_step_size"]
    if math.isnan(steps):
        return ""
    text = f"{steps:g} step{'' if steps == 1 else 's'}"
    return text if math.isnan(size) else f"{text} of {size:.3g}"


def evaluation_protocol(experiment: Experiment) -> dict[str, str]:
    """What a job's trials were measured on and with, as text per setting: ``dataset``,
    ``test images`` (its ``test_size``, or ``all``), ``rotation``, ``translation`` and ``PGD``
    (budget, steps and step size). Two experiments are comparable where these agree."""
    s = evaluation_settings(experiment)
    test_size = experiment.spec.trial_config().get("test_size")
    eps = "?" if math.isnan(s["eps_eval"]) else f"{s['eps_eval']:.3g}"
    steps = pgd_text(s)
    return {
        "dataset": str(experiment.spec.dataset),
        "test images": str(test_size) if test_size else "all",
        "rotation": f"±{s['theta_eval']:g}°",
        "translation": f"≤{s['translate_eval']:g} of the image" if s["translate_eval"] else "none",
        "PGD": f"L∞ ε = {eps}" + (f", {steps}" if steps else ""),
    }


# ---------------------------------------------------------------------------------------------
# Loading


def load_experiment(path: str | Path) -> Experiment:
    """Read the experiment directory ``path`` (see the module docstring).

    Works while the search runs, after it was interrupted, and with failed trials.

    Raises:
        UserError: ``path`` is a remote URI, does not exist, or has no readable ``job.yaml``.
    """
    text_path = str(path)
    if "://" in text_path and not text_path.startswith("file://"):
        raise UserError(
            f"{text_path}: analysis reads local directories; copy the experiment first "
            "(e.g. `aws s3 sync` / `gsutil rsync`) and pass the local copy"
        )
    directory = Path(text_path.removeprefix("file://")).expanduser().resolve()
    spec = read_spec(directory)
    state = _read_state(directory)
    records: list[dict[str, Any]] = []
    histories: list[pd.DataFrame] = []
    configs: dict[str, dict[str, Any]] = {}
    seen_dirs: set[str] = set()
    scheduled = has_scheduler(spec)
    for trial_dir, info in _trial_dirs(directory, state):
        seen_dirs.add(trial_dir.name)
        record, results, config = _read_trial(trial_dir, info, scheduled)
        records.append(record)
        configs[record["trial_id"]] = config
        if results:
            frame = pd.DataFrame([{k: v for k, v in r.items() if k != "config"} for r in results])
            frame["trial_id"] = record["trial_id"]
            histories.append(frame)
    for info in state.values():  # trials Ray knows of that have no directory yet
        if info.get("dirname") not in seen_dirs and info["trial_id"] not in configs:
            record, _, config = _read_trial(None, info, scheduled)
            records.append(record)
            configs[record["trial_id"]] = config
    expected = [*_BASE_METRICS, *(o.metric for o in spec.objectives)]
    trials = _trial_frame(records, configs, expected)
    history = _history_frame(histories)
    return Experiment(directory, spec, trials, history, configs)


def read_spec(directory: Path) -> Any:
    """The job spec an experiment directory's ``job.yaml`` holds (a ``JobSpec``); a
    :class:`UserError` saying what to pass when ``directory`` is not a readable experiment."""
    from tune_jobs.spec import JobSpec

    job_file = directory / JOB_FILE
    if directory.is_file():
        hint = (
            f"its directory {directory.parent}"
            if directory.name == JOB_FILE
            else "the experiment directory that `cusp-tune launch` printed"
        )
        raise UserError(f"{directory} is a file, not an experiment directory; pass {hint}")
    if not directory.is_dir() or not job_file.is_file():
        what = "does not exist" if not directory.exists() else f"has no {JOB_FILE}"
        raise UserError(
            f"{directory} is not a cusp-tune experiment ({what}); pass "
            f"{_experiment_hint(directory)}"
        )
    try:
        raw = yaml.safe_load(job_file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{job_file} is unreadable ({type(exc).__name__}); restore it") from None
    return JobSpec.from_saved(raw, source=str(job_file))


def _experiment_hint(directory: Path) -> str:
    """What to pass instead of ``directory``: the experiment it is inside of (a trial or
    checkpoint directory), the experiments it holds (a storage directory), or the directory
    ``cusp-tune launch`` printed."""
    for parent in list(directory.parents)[:3]:
        if (parent / JOB_FILE).is_file():
            return f"the experiment it belongs to, {parent}"
    try:
        held = sorted(c.name for c in directory.iterdir() if (c / JOB_FILE).is_file())
    except OSError:
        held = []
    if held:
        shown = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
        return f"one of the experiments it holds ({shown}), e.g. {directory / held[0]}"
    return "the experiment directory that `cusp-tune launch` printed"


def _read_state(directory: Path) -> dict[str, dict[str, Any]]:
    """Trial id -> what the newest ``experiment_state-*.json`` says about it (or ``{}``)."""
    files = sorted(directory.glob("experiment_state-*.json"), key=lambda p: (p.name, _mtime(p)))
    for file in reversed(files):  # the newest readable snapshot
        try:
            data = json.loads(file.read_text())
            return {info["trial_id"]: info for info in _state_trials(data)}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("skipping unreadable Ray state file %s (%s)", file, exc)
    return {}


def _state_trials(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for entry in data.get("trial_data", []):
        meta, run = (json.loads(p) if isinstance(p, str) else p for p in entry)
        last = run.get("last_result") or {}
        out.append(
            {
                "trial_id": str(meta["trial_id"]),
                "status": meta.get("status"),
                "dirname": meta.get("relative_logdir") or meta.get("custom_dirname"),
                "config": meta.get("config"),
                "start_time": run.get("start_time"),
                "last_result_time": run.get("last_result_time"),
                "last_epoch": last.get("epoch"),
                "num_failures": run.get("num_failures"),
            }
        )
    return out


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _trial_dirs(
    directory: Path, state: Mapping[str, Mapping[str, Any]]
) -> list[tuple[Path, Mapping[str, Any]]]:
    """Trial directories (with what the state says about each), in a stable order: the state's
    order first, then the others by name."""
    by_dir = {info.get("dirname"): info for info in state.values() if info.get("dirname")}
    found = []
    for child in sorted(directory.iterdir()):
        if not child.is_dir():
            continue
        is_trial = child.name in by_dir or child.name.startswith("trial_")
        is_trial = is_trial or (child / PARAMS_FILE).is_file() or (child / RESULT_FILE).is_file()
        if is_trial:
            found.append(child)
    order = {name: i for i, name in enumerate(by_dir)}
    found.sort(key=lambda p: (order.get(p.name, len(order)), p.name))
    return [(p, by_dir.get(p.name, {})) for p in found]


def _read_results(file: Path) -> list[dict[str, Any]]:
    """The JSON lines of ``result.json``; unreadable (half-written) lines are skipped."""
    try:
        text = file.read_text()
    except OSError:
        return []
    results = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            logger.warning("%s line %d is not complete JSON; skipped", file, number)
            continue
        if isinstance(value, dict):
            results.append(value)
    return results


def _read_json(file: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(file.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def error_line(text: str) -> str | None:
    """The line of a Ray ``error.txt`` that says what went wrong.

    Ray's file starts with ``Failure # 1 (occurred at ...)`` and a traceback; the exception
    (``module.Error: message``) is its last non-blank line, which is returned (colour codes
    removed). ``None`` for an empty file.
    """
    lines = [_ANSI.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not set(line) <= {"^", "~", " "}]
    return lines[-1] if lines else None


def latest_checkpoint(trial_dir: Path | None) -> Path | None:
    """The highest-numbered ``checkpoint_<n>/`` of a trial that holds a ``trial.pt``."""
    if trial_dir is None or not trial_dir.is_dir():
        return None
    best: tuple[int, Path] | None = None
    for child in trial_dir.iterdir():
        match = _CHECKPOINT_DIR.match(child.name)
        if match and (child / CHECKPOINT_FILE).is_file():
            number = int(match.group(1))
            if best is None or number > best[0]:
                best = (number, child)
    return best[1] if best else None


def _read_trial(
    trial_dir: Path | None, info: Mapping[str, Any], scheduled: bool
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    results = _read_results(trial_dir / RESULT_FILE) if trial_dir else []
    params = _read_json(trial_dir / PARAMS_FILE) if trial_dir else None
    last = results[-1] if results else {}
    config = params or info.get("config") or last.get("config") or {}
    trial_id = info.get("trial_id") or last.get("trial_id")
    if not trial_id and trial_dir is not None:
        trial_id = trial_dir.name.removeprefix("trial_")
    trial_id = str(trial_id)
    final = bool(last.get("final", False))
    error = None
    if trial_dir is not None and (trial_dir / ERROR_FILE).is_file():
        try:
            error = error_line((trial_dir / ERROR_FILE).read_text(errors="replace"))
        except OSError:
            error = None
        error = error or "failed (empty error.txt)"
    status = info.get("status")
    stopped = scheduled and _stopped_early(status, results, error)
    if not status:
        status = TERMINATED if final else ERROR if error else UNFINISHED if trial_dir else PENDING
    elif final and status in (RUNNING, PENDING, PAUSED):
        status = TERMINATED  # the snapshot predates the last report
    first = results[0] if results else {}
    started = info.get("start_time")
    if started is None and first.get("timestamp") is not None:
        started = float(first["timestamp"]) - float(first.get("time_this_iter_s") or 0.0)
    completed = None
    if final:
        same_epoch = info.get("last_epoch") == last.get("epoch")
        completed = info.get("last_result_time") if same_epoch else None
        completed = completed if completed is not None else last.get("timestamp")
    record: dict[str, Any] = {
        key: value
        for key, value in last.items()
        if key not in RESULT_BOOKKEEPING and _scalar(value)
    }
    epochs_done = last.get("epoch", last.get("training_iteration", 0)) or 0
    record.update(
        {
            "trial_id": trial_id,
            "status": status,
            "epochs_done": int(epochs_done),
            "final": final,
            "stopped": stopped,
            "started_at": _float(started),
            "completed_at": _float(completed),
            "last_result_at": _float(last.get("timestamp")),
            "checkpoint_path": str(latest_checkpoint(trial_dir) or "") or None,
            "error": error,
        }
    )
    record.pop("epoch", None)
    return record, results, dict(config)


def has_scheduler(spec: Any) -> bool:
    """Whether a job has an early-stopping scheduler (``scheduler.kind`` ``asha`` or
    ``moasha``); a spec without a scheduler section (an older ``job.yaml``) has none."""
    kind = getattr(getattr(spec, "scheduler", None), "kind", "none")
    return kind not in (None, "none")


def _stopped_early(
    snapshot_status: str | None, results: Sequence[Mapping[str, Any]], error: str | None
) -> bool:
    """Whether a trial of a job with a scheduler (:func:`has_scheduler`; without one no trial
    is stopped early) was stopped early by it: Ray's snapshot says ``TERMINATED``, its last
    result is not final and it has no error.

    An interrupted search leaves its trials ``RUNNING``, ``PENDING`` or ``PAUSED`` in the
    snapshot, never ``TERMINATED``; without a snapshot (``snapshot_status`` None) or without a
    result the answer is False.
    """
    if snapshot_status != TERMINATED or not results or error is not None:
        return False
    return not bool(results[-1].get("final", False))


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# ---------------------------------------------------------------------------------------------
# Curriculum summaries


def _number(value: Any) -> float:
    """A config number, with None / NaN / junk as 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(number) else number


def _budget_from_config(config: Mapping[str, Any], axis: str) -> float:
    """The final value of one curriculum axis read off the flat keys: the last stage of a step
    schedule, else ``<axis>_max`` (None / NaN count as 0)."""
    if config.get(f"{axis}_schedule") == "step":
        stages = config.get(f"{axis}_stages")
        if isinstance(stages, Sequence) and stages and isinstance(stages[-1], Sequence):
            return _number(stages[-1][1])
    return _number(config.get(f"{axis}_max"))


def curriculum_summary(config: Mapping[str, Any]) -> dict[str, Any]:
    """Label and final budgets of a flat trial config's curriculum.

    Returns ``curriculum`` (:func:`curriculum_label`), ``train_theta`` (degrees),
    ``train_translate`` (fraction of the image size) and ``train_eps``: the largest value each
    schedule reaches (what the last epochs train on), taken from the built curriculum, so presets
    such as ``cusp`` (whose ``eps_max`` defaults to the dataset's budget) are right. A config that
    does not build (e.g. from an older version) falls back to the flat keys, label ``"?"``.
    """
    from trainables.config import TrialConfig

    try:
        curriculum = TrialConfig.from_dict(_plain(config)).build_curriculum()
    except (UserError, ValueError, TypeError):
        return {
            "curriculum": "?",
            "train_theta": _budget_from_config(config, "theta"),
            "train_translate": _budget_from_config(config, "translate"),
            "train_eps": _budget_from_config(config, "eps"),
        }
    return {
        "curriculum": curriculum_label(curriculum),
        "train_theta": float(curriculum.theta.maximum),
        "train_translate": float(curriculum.translate_frac.maximum),
        "train_eps": float(curriculum.eps.maximum),
    }


_ORDER_SHORT = {"spatial_first": "θ first", "adversarial_first": "ε first"}
_NUMBER = re.compile(r"\d+\.\d+(?:e-?\d+)?")


def short_label(curriculum: str, method: Any = None) -> str:
    """A compact plot label: numbers of the curriculum label to 3 significant digits, orders
    shortened (``θ first`` / ``ε first``), then the training method in brackets.

    ``short_label("cosine θ75.37→142.5 step ε0.2498 adversarial_first", "trades")`` is
    ``"cosine θ75.4→142 step ε0.25 ε first [trades]"``.
    """
    text = _NUMBER.sub(lambda m: f"{float(m.group()):.3g}", str(curriculum))
    for order, short in _ORDER_SHORT.items():
        text = text.replace(order, short)
    if isinstance(method, str) and method:
        text = f"{text} [{method}]"
    return text


def _plain(config: Mapping[str, Any]) -> dict[str, Any]:
    """Plain Python values (numpy scalars and NaN-for-None undone)."""
    plain = {}
    for key, value in config.items():
        if isinstance(value, float) and math.isnan(value):
            value = None
        elif hasattr(value, "tolist"):
            value = value.tolist()
        plain[key] = value
    return plain


# ---------------------------------------------------------------------------------------------
# Frames

_LEADING = [
    "trial_id",
    "status",
    "model",
    "method",
    "curriculum",
    "label",
    "train_theta",
    "train_translate",
    "train_eps",
    "epochs_done",
    "epochs",
    "final",
    "stopped",
]
_TRAILING = ["started_at", "completed_at", "last_result_at", "checkpoint_path", "error"]
_NOT_METRICS = frozenset([*_LEADING, *_TRAILING, "experiment"])


def _trial_frame(
    records: list[dict[str, Any]],
    configs: Mapping[str, Mapping[str, Any]],
    expected_metrics: Sequence[str] = (),
) -> pd.DataFrame:
    """One row per trial record; ``expected_metrics`` are columns even when no trial has them
    (NaN), so code reading objectives never meets a missing column."""
    rows = []
    for record in records:
        config = configs.get(record["trial_id"], {})
        summary = curriculum_summary(config) if config else _empty_summary()
        row = {
            **record,
            **summary,
            "model": config.get("model"),
            "method": config.get("method"),
            "epochs": config.get("epochs"),
            "label": short_label(summary["curriculum"], config.get("method")),
        }
        for key, value in config.items():
            row[f"config/{key}"] = value
        rows.append(row)
    metric_columns = list(dict.fromkeys(expected_metrics))
    if not rows:
        return pd.DataFrame(columns=[*_LEADING, *metric_columns, *_TRAILING])
    frame = pd.DataFrame(rows)
    for metric in metric_columns:
        if metric not in frame:
            frame[metric] = math.nan
    config_columns = sorted(c for c in frame.columns if c.startswith("config/"))
    known = set(_LEADING) | set(_TRAILING) | set(config_columns)
    metrics = [c for c in frame.columns if c not in known]
    metrics = [
        *(m for m in metric_columns if m in metrics),
        *(m for m in metrics if m not in metric_columns),
    ]
    frame = frame[[*_LEADING, *metrics, *_TRAILING, *config_columns]]
    frame["final"] = frame["final"].astype(bool)
    frame["stopped"] = frame["stopped"].astype(bool)
    return frame.reset_index(drop=True)


def _empty_summary() -> dict[str, Any]:
    return {"curriculum": "?", "train_theta": 0.0, "train_translate": 0.0, "train_eps": 0.0}


def _history_frame(histories: list[pd.DataFrame]) -> pd.DataFrame:
    if not histories:
        return pd.DataFrame(columns=["trial_id", "epoch"])
    frame = pd.concat(histories, ignore_index=True)
    leading = [c for c in ("trial_id", "epoch") if c in frame]
    return frame[[*leading, *(c for c in frame.columns if c not in leading)]]


__all__ = [
    "ERROR",
    "PENDING",
    "RUNNING",
    "TERMINATED",
    "UNFINISHED",
    "Experiment",
    "check_objectives",
    "curriculum_label",
    "curriculum_summary",
    "display_names",
    "error_line",
    "evaluation_protocol",
    "evaluation_settings",
    "latest_checkpoint",
    "has_scheduler",
    "load_experiment",
    "metric_columns",
    "pgd_text",
    "read_spec",
    "require_results",
    "short_label",
]
