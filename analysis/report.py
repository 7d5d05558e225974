"""Tables and the written report of one or several experiments.

:func:`compare` puts experiments side by side (one row each, hypervolumes from one shared
reference point); :func:`format_front_table` is the plain-text front the CLI prints;
:func:`write_report` writes a directory with the CSV tables, the plots and ``report.md``.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.experiment import (
    Experiment,
    check_objectives,
    display_names,
    evaluation_protocol,
    load_experiment,
    require_results,
)
from analysis.hypervolume import hypervolume, reference_point
from analysis.pareto import best_first
from trainables.errors import UserError

logger = logging.getLogger(__name__)

Objectives = Sequence[tuple[str, str]]
ExperimentLike = str | os.PathLike[str] | Experiment

REPORT_FILE = "report.md"
FRONT_CSV = "front.csv"
TRIALS_CSV = "trials.csv"
PLOT_FILES = {
    "front": "front.png",
    "hypervolume_trials": "hypervolume_trials.png",
    "hypervolume_time": "hypervolume_time.png",
    "profiles": "profiles.png",
    "tradeoffs": "tradeoffs.png",
}
_SHOWN_METRICS = ("clean_acc", "spatial_acc", "adv_acc", "combined_acc", "invariance_rate")


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote.

    Attributes:
        directory: the output directory.
        report: ``report.md``.
        front_csv: ``front.csv``: the front of every experiment (``experiment`` column).
        trials_csv: ``trials.csv``: every trial of every experiment.
        plots: plot name -> PNG path: ``front``, ``hypervolume_trials``, ``hypervolume_time``,
            ``profiles`` (the first experiment's), ``tradeoffs``, and ``profiles:<name>`` for
            each further experiment (``profiles-<name>.png``).
        comparison: the :func:`compare` table (one row per experiment).
    """

    directory: Path
    report: Path
    front_csv: Path
    trials_csv: Path
    plots: Mapping[str, Path] = field(default_factory=dict)
    comparison: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False, compare=False)

    @property
    def files(self) -> list[Path]:
        """Every file written, report first."""
        return [self.report, self.front_csv, self.trials_csv, *self.plots.values()]


# ---------------------------------------------------------------------------------------------
# Tables


def _load_all(experiments: ExperimentLike | Sequence[ExperimentLike]) -> list[Experiment]:
    if isinstance(experiments, str | os.PathLike | Experiment):
        experiments = [experiments]
    loaded = [e if isinstance(e, Experiment) else load_experiment(e) for e in experiments]
    if not loaded:
        raise UserError("no experiment given; pass at least one experiment directory")
    return loaded


def _models(spec: Any) -> list[str]:
    """The models a job trains: its grid's, or the job's own."""
    return [str(model) for model in spec.search.grid.get("model", spec.models)]


def _search_text(search: Any) -> str:
    """``preset `joint`, sampler `tpe``` or, for a grid job, ``grid over theta_max (7), ...``."""
    if search.grid:
        return "grid over " + ", ".join(f"{key} ({len(v)})" for key, v in search.grid.items())
    return f"preset `{search.preset}`, sampler `{search.sampler}`"


def _failed_count(trials: pd.DataFrame) -> int:
    """Number of trials whose status is ``ERROR``."""
    return int((trials["status"].astype(str) == "ERROR").sum()) if len(trials) else 0


def _stopped_count(trials: pd.DataFrame) -> int:
    """Number of trials stopped early by the scheduler (the ``stopped`` column)."""
    if not len(trials) or "stopped" not in trials:
        return 0
    return int(trials["stopped"].fillna(False).astype(bool).sum())


def _best(values: pd.Series, mode: str) -> float:
    values = pd.to_numeric(values, errors="coerce").dropna()
    if not len(values):
        return math.nan
    return float(values.max() if mode == "max" else values.min())


def compare(
    experiments: ExperimentLike | Sequence[ExperimentLike],
    objectives: Objectives | None = None,
    reference: Sequence[float] | None = None,
) -> pd.DataFrame:
    """One row per experiment, measured on the same objectives from the same reference.

    Columns: ``experiment``, ``preset``, ``sampler``, ``models``, ``trials_planned``,
    ``trials_completed``, ``trials_failed``, ``trials_stopped`` (stopped early by the scheduler),
    ``trials_unfinished`` (the other started trials: running, pending, or interrupted),
    ``front_size``, ``hypervolume``, ``reference`` (the reference point, identical in every row),
    ``best_<metric>`` per objective and ``evaluation`` (what the trials were measured on and
    with: :func:`evaluation_text`). ``objectives`` default to the first experiment's;
    ``reference`` to :func:`~analysis.hypervolume.reference_point` over every experiment's
    completed trials. ``attrs["reference"]`` and ``attrs["objectives"]`` hold both, and
    ``attrs["differences"]`` the :func:`evaluation_differences` (empty when the experiments
    were measured alike: only then are their accuracies and hypervolumes comparable).

    Raises:
        UserError: a path is not an experiment, or an objective's metric is in no
            experiment's trial table (or its mode is not ``max`` / ``min``).
    """
    loaded = _load_all(experiments)
    objectives = check_objectives(objectives or loaded[0].objectives, [e.trials for e in loaded])
    metrics, modes = [m for m, _ in objectives], [mode for _, mode in objectives]
    if reference is None:
        reference = reference_point([e.trials for e in loaded], objectives)
    ref = tuple(float(v) for v in reference)
    rows = []
    for experiment, name in zip(loaded, display_names(loaded), strict=True):
        done = experiment.completed
        has_all = all(m in done for m in metrics)
        usable = done.dropna(subset=metrics) if has_all else done[0:0]
        front = experiment.front(objectives) if has_all else done[0:0]
        failed, stopped = _failed_count(experiment.trials), _stopped_count(experiment.trials)
        row: dict[str, Any] = {
            "experiment": name,
            "preset": "grid" if experiment.spec.search.grid else experiment.spec.search.preset,
            "sampler": "grid" if experiment.spec.search.grid else experiment.spec.search.sampler,
            "models": ", ".join(_models(experiment.spec)),
            "trials_planned": experiment.spec.search.trials,
            "trials_completed": len(done),
            "trials_failed": failed,
            "trials_stopped": stopped,
            "trials_unfinished": len(experiment.trials) - len(done) - failed - stopped,
            "front_size": len(front),
            "hypervolume": hypervolume(usable[metrics].to_numpy(float), ref, modes)
            if len(usable)
            else 0.0,
            "reference": "(" + ", ".join(f"{v:g}" for v in ref) + ")",
        }
        for metric, mode in objectives:
            row[f"best_{metric}"] = _best(done[metric], mode) if metric in done else math.nan
        row["evaluation"] = evaluation_text(experiment)
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["reference"] = ref
    table.attrs["objectives"] = tuple(objectives)
    table.attrs["differences"] = evaluation_differences(loaded)
    return table


def evaluation_text(experiment: Experiment) -> str:
    """The experiment's :func:`~analysis.experiment.evaluation_protocol` in one line."""
    p = evaluation_protocol(experiment)
    shift = f", translation {p['translation']}" if p["translation"] != "none" else ""
    return (
        f"{p['dataset']}, {p['test images']} test images; rotation {p['rotation']}{shift}; "
        f"PGD {p['PGD']}"
    )


def evaluation_differences(experiments: Sequence[Experiment]) -> list[str]:
    """One line per evaluation setting (:func:`~analysis.experiment.evaluation_protocol`) on
    which experiments differ, ``"<setting>: <value> (<names>); <value> (<names>)"``; empty
    when they were all measured alike."""
    names = display_names(experiments)
    protocols = [evaluation_protocol(e) for e in experiments]
    lines = []
    for key in protocols[0] if protocols else ():
        groups: dict[str, list[str]] = {}
        for name, protocol in zip(names, protocols, strict=True):
            groups.setdefault(protocol[key], []).append(name)
        if len(groups) > 1:
            parts = [f"{value} ({', '.join(who)})" for value, who in groups.items()]
            lines.append(f"{key}: " + "; ".join(parts))
    return lines


def _front_columns(frame: pd.DataFrame, objectives: Objectives, extra: bool) -> list[str]:
    metrics = [m for m, _ in objectives]
    columns = ["trial_id"]
    if "model" in frame and frame["model"].nunique() > 1:
        columns.append("model")
    columns += [c for c in ("method", "curriculum") if c in frame]
    columns += [m for m in metrics if m in frame]
    if extra:
        columns += [m for m in _SHOWN_METRICS if m in frame and m not in metrics]
    return columns


def _front_of(experiment: Experiment, objectives: Objectives) -> pd.DataFrame:
    """The experiment's front (best first); empty when its trials lack an objective that
    another compared experiment has."""
    if all(m in experiment.trials for m, _ in objectives):
        return experiment.front(objectives)
    return experiment.completed.iloc[0:0]


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float | np.floating):
        return f"{value:.4f}"
    return str(value)


NOT_ALIKE = "These experiments were not evaluated alike"
"""How the report and the log warn that compared experiments were measured differently."""

MAX_TABLE_ROWS = 60
"""Rows :func:`format_front_table` prints at most by default (half from each end)."""


def format_front_table(
    frame: pd.DataFrame,
    objectives: Objectives,
    extra_metrics: bool = True,
    max_rows: int | None = MAX_TABLE_ROWS,
) -> str:
    """The front (or any trial table) as aligned plain text, best first on the first objective.

    Columns: ``trial_id``, ``model`` (when several), ``method``, ``curriculum``, the objectives,
    then ``clean_acc`` / ``spatial_acc`` / ``adv_acc`` / ``combined_acc`` /
    ``invariance_rate`` not already shown (unless ``extra_metrics`` is false). Numbers with 4
    decimals. An empty frame gives ``"(no completed trial yet)"``.

    A table longer than ``max_rows`` (``None``: no limit) shows its first and last rows, both
    ends of the front, with one line in between that says how many rows are left out and where
    they all are (``front.csv`` of ``cusp-tune analyze``).
    """
    if not len(frame):
        return "(no completed trial yet)"
    columns = _front_columns(frame, objectives, extra_metrics)
    shown = best_first(frame, objectives)[columns]
    gap: tuple[int, int] | None = None
    if max_rows is not None and len(shown) > max(max_rows, 2):
        head = max(max_rows, 2) // 2
        tail = max(max_rows, 2) - head
        gap = (head, len(shown) - tail)
        shown = pd.concat([shown.iloc[:head], shown.iloc[-tail:]])
    cells = [[_cell(v) for v in row] for row in shown.itertuples(index=False)]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    numeric = [shown[c].dtype.kind in "fiu" for c in columns]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    lines = [line(columns), *(line(r) for r in cells)]
    if gap is not None:
        head, end = gap
        metric = objectives[0][0]
        lines.insert(
            1 + head,
            f"... {end - head} more rows (ranks {head + 1}-{end} on {metric}) not shown; "
            "`cusp-tune analyze` writes them all to front.csv ...",
        )
    return "\n".join(lines)


def format_failures(trials: pd.DataFrame, max_ids: int = 3) -> list[str]:
    """The failed trials of a trial table (a non-empty ``error``), one line per distinct error,
    the most frequent first: ``"<trial_id>: <error>"`` for an error one trial had, else
    ``"<n> trials: <error> (<id>, <id>, <id> and <k> more)"`` naming at most ``max_ids`` of
    them, so a search whose trials all failed the same way reads as one line, not one per
    trial (``report.md`` lists every failed trial)."""
    if not len(trials) or "error" not in trials:
        return []
    failed = trials[trials["error"].notna()]
    groups = failed.groupby(failed["error"].astype(str), sort=False)["trial_id"]
    ordered = sorted(groups, key=lambda item: -len(item[1]))  # stable: first seen first on ties
    lines = []
    for error, ids in ordered:
        ids = [str(i) for i in ids]
        if len(ids) == 1:
            lines.append(f"{ids[0]}: {error}")
            continue
        named = ", ".join(ids[:max_ids])
        rest = f" and {len(ids) - max_ids} more" if len(ids) > max_ids else ""
        lines.append(f"{len(ids)} trials: {error} ({named}{rest})")
    return lines


def markdown_table(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    """A GitHub-flavoured markdown table (numbers with 4 decimals, ``|`` escaped)."""
    columns = list(columns if columns is not None else frame.columns)
    if not len(frame):
        return "_(none)_"

    def cell(value: Any) -> str:
        return _cell(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---:" if frame[c].dtype.kind in "fiu" else "---" for c in columns)
    rows = [
        "| " + " | ".join(cell(v) for v in row) + " |"
        for row in frame[columns].itertuples(index=False)
    ]
    return "\n".join([header, rule + "|", *rows])


# ---------------------------------------------------------------------------------------------
# The report


def _csv_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Lists and dicts (e.g. ``config/eps_stages``) as JSON text, so the CSV reads back."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = [
                json.dumps(v) if isinstance(v, list | tuple | dict) else v for v in out[column]
            ]
    return out


def _objective_text(objectives: Objectives, experiment: Experiment) -> str:
    from analysis.plots import metric_label

    words = {"max": "maximise", "min": "minimise"}
    return "; ".join(
        f"{words[mode]} `{metric}` ({metric_label(metric, experiment).replace(' (%)', '')})"
        for metric, mode in objectives
    )


def _trial_counts(row: Mapping[str, Any]) -> str:
    """``"<n> completed"``, then the stopped, failed and unfinished trials of a :func:`compare`
    row, each only when there are some."""
    parts = [f"{row['trials_completed']} completed"]
    for key, words in (
        ("trials_stopped", "stopped early by the scheduler"),
        ("trials_failed", "failed"),
        ("trials_unfinished", "unfinished"),
    ):
        if row[key]:
            parts.append(f"{row[key]} {words}")
    return ", ".join(parts)


def _job_summary(experiment: Experiment, objectives: Objectives, row: Mapping[str, Any]) -> str:
    spec = experiment.spec
    trial = spec.trial_config()
    sizes = []
    for key, label in (("train_size", "train"), ("test_size", "test")):
        if trial.get(key):
            sizes.append(f"{label} {trial[key]}")
    dataset = f"{spec.dataset}" + (f" ({', '.join(sizes)})" if sizes else "")
    width = f" (width {trial['model_width']:g})" if trial.get("model_width") else ""
    ref = row["reference"]
    lines = [
        f"- directory: `{experiment.path}`",
        f"- data: {dataset}; model: {', '.join(_models(spec))}{width}; "
        f"{spec.epochs} epochs per trial",
        f"- search: {_search_text(spec.search)}, "
        f"{spec.search.trials} trials planned, {spec.search.max_concurrent} at a time",
        f"- objectives: {_objective_text(objectives, experiment)}",
        f"- evaluation: {row['evaluation']}",
        # not Ray Tune's statuses: an interrupted search's snapshot still says RUNNING
        f"- trials: {_trial_counts(row)}, of {len(experiment.trials)} started",
        f"- front: {row['front_size']} model{'' if row['front_size'] == 1 else 's'}; "
        f"hypervolume **{row['hypervolume']:.4f}** (reference {ref})",
    ]
    best = [
        f"`{m}` {row[f'best_{m}']:.4f}"
        for m, _ in objectives
        if not (isinstance(row[f"best_{m}"], float) and math.isnan(row[f"best_{m}"]))
    ]
    if best:
        lines.append(f"- best of each objective: {', '.join(best)}")
    return "\n".join(lines)


def _experiment_section(
    experiment: Experiment, name: str, objectives: Objectives, row: Mapping[str, Any]
) -> str:
    front = _front_of(experiment, objectives)
    parts = [f"## {name}", "", _job_summary(experiment, objectives, row), ""]
    parts.append(f"### Pareto front ({len(front)} of {len(experiment.completed)} completed trials)")
    parts.append("")
    if len(front):
        parts.append(markdown_table(front, _front_columns(front, objectives, extra=True)))
    else:
        parts.append("_No trial has completed yet: the front is empty._")
    failed = experiment.trials[experiment.trials["status"].astype(str) == "ERROR"]
    if len(failed):
        parts += ["", f"### Failed trials ({len(failed)})", ""]
        parts.append(markdown_table(failed, ["trial_id", "epochs_done", "error"]))
    return "\n".join(parts)


def _plot_all(
    experiments: list[Experiment], names: list[str], objectives: Objectives, ref: tuple, out: Path
) -> dict[str, Path]:
    from analysis import plots

    written = {
        "front": plots.plot_front(experiments, out / PLOT_FILES["front"], objectives),
        "hypervolume_trials": plots.plot_hypervolume(
            experiments, out / PLOT_FILES["hypervolume_trials"], "trials", objectives, ref
        ),
        "hypervolume_time": plots.plot_hypervolume(
            experiments, out / PLOT_FILES["hypervolume_time"], "time", objectives, ref
        ),
        "profiles": plots.plot_profiles(experiments[0], out / PLOT_FILES["profiles"], objectives),
        "tradeoffs": plots.plot_tradeoffs(experiments, out / PLOT_FILES["tradeoffs"]),
    }
    for experiment, name in zip(experiments[1:], names[1:], strict=True):
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        written[f"profiles:{name}"] = plots.plot_profiles(
            experiment, out / f"profiles-{safe}.png", objectives
        )
    return written


def _markdown(
    experiments: list[Experiment],
    names: list[str],
    objectives: Objectives,
    comparison: pd.DataFrame,
    plots: Mapping[str, Path],
) -> str:
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    title = names[0] if len(names) == 1 else f"{len(names)} experiments"
    parts = [
        f"# cusp-tune report: {title}",
        "",
        f"Generated {now} from the experiment files. Accuracies are fractions of the test set "
        "(1.0 = 100%); the front's models are the completed trials no other completed trial "
        "beats on every objective.",
        "",
    ]
    rows = comparison.to_dict("records")
    for experiment, name, row in zip(experiments, names, rows, strict=True):
        parts += [_experiment_section(experiment, name, objectives, row), ""]
    if len(experiments) > 1:
        parts += [
            "## Comparison",
            "",
            f"All hypervolumes from the same reference point {rows[0]['reference']}.",
            "",
        ]
        differences = comparison.attrs.get("differences") or []
        if differences:
            parts += [
                f"**{NOT_ALIKE}**: their accuracies and hypervolumes are not comparable.",
                "",
                *(f"- {line}" for line in differences),
                "",
            ]
        parts += [markdown_table(comparison.drop(columns="evaluation")), ""]
    captions = {
        "front": "Pareto front: every completed trial, the front highlighted",
        "hypervolume_trials": "Hypervolume as trials complete",
        "hypervolume_time": "Hypervolume over wall-clock time",
        "profiles": f"Invariance and robustness profiles of the front of {names[0]}",
        "tradeoffs": "Trade-off: adversarial accuracy vs training rotation range, "
        "spatial accuracy vs training PGD budget",
    }
    parts += ["## Plots", ""]
    for key, path in plots.items():
        caption = captions.get(key) or f"Profiles of the front of {key.partition(':')[2]}"
        parts += [f"### {caption}", "", f"![{caption}]({path.name})", ""]
    return "\n".join(parts).rstrip() + "\n"


def write_report(
    experiment_paths: ExperimentLike | Sequence[ExperimentLike],
    out_dir: str | os.PathLike[str],
    objectives: Objectives | None = None,
) -> ReportFiles:
    """Analyse experiments and write the report into ``out_dir``.

    Writes ``report.md``, ``front.csv``, ``trials.csv`` (all experiments, ``experiment``
    column first), ``front.png``, ``hypervolume_trials.png``, ``hypervolume_time.png``,
    ``profiles.png`` (first experiment; ``profiles-<name>.png`` for the others) and
    ``tradeoffs.png``. Everything is built in a temporary directory next to ``out_dir`` and
    moved in only when complete, so a failure leaves ``out_dir`` as it was. Other files in
    ``out_dir`` are kept; the report's own files are replaced.

    Raises:
        UserError: a path is not an experiment, no trial of an experiment has reported
            results yet, an objective's metric is in no experiment's trial table (or its mode
            is not ``max`` / ``min``), or ``out_dir`` cannot be written.
    """
    experiments = [require_results(e) for e in _load_all(experiment_paths)]
    objectives = check_objectives(
        objectives or experiments[0].objectives, [e.trials for e in experiments]
    )
    names = display_names(experiments)
    comparison = compare(experiments, objectives)
    if comparison.attrs["differences"]:
        logger.warning(
            "%s (not comparable): %s", NOT_ALIKE, " / ".join(comparison.attrs["differences"])
        )
    ref = tuple(comparison.attrs["reference"])
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file; choose a directory for the report (--out)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    except OSError as exc:
        raise UserError(f"cannot write the report to {out}: {exc.strerror}; choose --out") from None
    try:
        fronts, tables = [], []
        for experiment, name in zip(experiments, names, strict=True):
            tables.append(experiment.trials.assign(experiment=name))
            fronts.append(_front_of(experiment, objectives).assign(experiment=name))
        trials = pd.concat(tables, ignore_index=True)
        front = pd.concat(fronts, ignore_index=True)
        for frame, file in ((front, FRONT_CSV), (trials, TRIALS_CSV)):
            frame = frame[["experiment", *(c for c in frame.columns if c != "experiment")]]
            _csv_ready(frame).to_csv(staging / file, index=False)
        plot_paths = _plot_all(experiments, names, objectives, ref, staging)
        text = _markdown(experiments, names, objectives, comparison, plot_paths)
        (staging / REPORT_FILE).write_text(text, encoding="utf-8")
        out.mkdir(parents=True, exist_ok=True)
        for item in sorted(staging.iterdir()):
            os.replace(item, out / item.name)
    except OSError as exc:
        raise UserError(f"cannot write the report to {out}: {exc}; choose another --out") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    plots = {key: out / path.name for key, path in plot_paths.items()}
    return ReportFiles(
        directory=out,
        report=out / REPORT_FILE,
        front_csv=out / FRONT_CSV,
        trials_csv=out / TRIALS_CSV,
        plots=plots,
        comparison=comparison,
    )


def default_report_dir(experiment_path: str | os.PathLike[str]) -> Path:
    """Where ``cusp-tune analyze`` writes by default: ``<experiment>/report``."""
    local = str(experiment_path).removeprefix("file://")
    return Path(local).expanduser().resolve() / "report"


__all__ = [
    "FRONT_CSV",
    "MAX_TABLE_ROWS",
    "PLOT_FILES",
    "REPORT_FILE",
    "TRIALS_CSV",
    "ReportFiles",
    "compare",
    "default_report_dir",
    "evaluation_differences",
    "evaluation_text",
    "format_failures",
    "format_front_table",
    "markdown_table",
    "write_report",
]
