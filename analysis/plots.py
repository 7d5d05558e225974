"""Figures of what a search found, as PNG files readable without explanation.

Every function takes one :class:`~analysis.experiment.Experiment` or several, writes one PNG
(atomically: a temporary file in the same directory, then renamed) and returns its path.
Accuracies are drawn in percent. Matplotlib runs on the ``Agg`` backend (no display needed).

- :func:`plot_front`: every completed trial on the first two objectives, the Pareto front
  highlighted with its staircase and its members labelled with their curriculum (at most
  :data:`MAX_LABELS` points, spread along the front).
- :func:`plot_hypervolume`: the front's hypervolume as trials complete, or over time.
- :func:`plot_profiles`: the invariance and robustness profiles of the front's models.
- :func:`plot_tradeoffs`: adversarial accuracy against the training rotation range, and spatial
  accuracy against the training PGD budget (the trade-off the paper is about).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

from analysis.experiment import (  # noqa: E402
    Experiment,
    check_objectives,
    display_names,
    evaluation_settings,
    pgd_text,
)
from analysis.hypervolume import (  # noqa: E402
    hypervolume_over_time,
    hypervolume_over_trials,
    reference_point,
)
from analysis.pareto import front_steps  # noqa: E402

Objectives = Sequence[tuple[str, str]]
Experiments = Experiment | Sequence[Experiment]

DPI = 120
MAX_LABELS = 16  # front points labelled with their curriculum, at most (spread along the front)
_SPATIAL_PROFILE = re.compile(r"^spatial_acc@(.+)$")
_ADV_PROFILE = re.compile(r"^adv_acc@(.+)$")


# ---------------------------------------------------------------------------------------------
# Labels


def _as_list(experiments: Experiments) -> list[Experiment]:
    if isinstance(experiments, Experiment):
        return [experiments]
    listed = list(experiments)
    if not listed:
        raise ValueError("no experiment to plot")
    return listed


def is_fraction(metric: str) -> bool:
    """Whether a metric is an accuracy or a rate in ``[0, 1]`` (drawn in percent)."""
    return metric.endswith("_acc") or "_acc@" in metric or metric == "invariance_rate"


def metric_label(metric: str, experiment: Experiment | None = None) -> str:
    """An axis label that says what the metric measures, with its unit."""
    s = evaluation_settings(experiment)
    shift = f" + shift ≤{s['translate_eval']:g} of the image" if s["translate_eval"] else ""
    eps = f"{s['eps_eval']:.3g}" if not math.isnan(s["eps_eval"]) else "ε_eval"
    steps = f", {pgd_text(s)}" if pgd_text(s) else ""
    labels = {
        "clean_acc": "clean accuracy (%)",
        "spatial_acc": f"spatial accuracy (%): random rotation ±{s['theta_eval']:g}°{shift}",
        "adv_acc": f"adversarial accuracy (%): L∞ PGD, ε = {eps}{steps}",
        "combined_acc": f"combined accuracy (%): PGD ε = {eps}{steps} on rotated images",
        "invariance_rate": "invariance rate (%): Pr[f(Tx) = f(x)]",
        "loss": "training loss (cross-entropy)",
        "train_acc": "training accuracy (%)",
    }
    if metric in labels:
        return labels[metric]
    if match := _SPATIAL_PROFILE.match(metric):
        return f"accuracy (%): random rotation ±{match.group(1)}°"
    if match := _ADV_PROFILE.match(metric):
        return f"accuracy (%): L∞ PGD, ε = {match.group(1)}"
    return f"{metric} (%)" if is_fraction(metric) else metric


def _alike_note(experiments: list[Experiment]) -> str:
    """A second title line when the experiments drawn were not evaluated alike
    (:func:`~analysis.report.evaluation_differences`): the axis labels give the first one's
    settings."""
    from analysis.report import evaluation_differences

    if len(experiments) < 2 or not evaluation_differences(experiments):
        return ""
    name = display_names(experiments)[0]
    return f"\nnot evaluated alike (see the report): the axes state {name}'s settings"


def _mode_word(mode: str) -> str:
    return "higher is better" if mode == "max" else "lower is better"


def _format_axis(ax: Any, axis: str, metric: str) -> None:
    if is_fraction(metric):
        target = ax.xaxis if axis == "x" else ax.yaxis
        target.set_major_formatter(PercentFormatter(xmax=1.0))


def _save(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically and close it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}-{os.getpid()}-{id(fig):x}.png")
    try:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return target


NO_TRIAL = "no completed trial yet"
"""The note every plot shows where it has no completed trial to draw."""


def _no_trial_note(ax: Any) -> None:
    """:data:`NO_TRIAL` in the middle of ``ax``, its axes kept (other points may be drawn)."""
    ax.text(0.5, 0.5, NO_TRIAL, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _empty_panel(ax: Any, message: str) -> None:
    """``message`` in the middle of ``ax``, which has nothing else to show (no ticks)."""
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _objectives_of(experiments: list[Experiment], objectives: Objectives | None) -> list:
    """``objectives`` (default: the first experiment's), checked against the trial tables
    (:func:`~analysis.experiment.check_objectives`: UserError for an unknown metric)."""
    chosen = objectives or experiments[0].objectives
    return check_objectives(chosen, [e.trials for e in experiments])


def _annotate(ax: Any, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str]) -> None:
    """Label each point, its label kept inside the axes (:func:`_keep_inside`): to the right of
    a point in the left half, to the left of one in the right half, alternately above and below
    (below near the top)."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    texts = []
    for i, (x, y, label) in enumerate(zip(xs, ys, labels, strict=True)):
        right_half = (x - x0) / ((x1 - x0) or 1.0) > 0.5
        near_top = (y - y0) / ((y1 - y0) or 1.0) > 0.9
        texts.append(
            ax.annotate(
                label,
                (x, y),
                xytext=(-6 if right_half else 6, -11 if near_top or i % 2 else 6),
                textcoords="offset points",
                ha="right" if right_half else "left",
                fontsize=7,
                color="0.15",
            )
        )
    _keep_inside(ax, texts)


def _keep_inside(ax: Any, texts: Sequence[Any], pad: float = 2.0) -> None:
    """Keep annotations (offsets in points) inside the axes: one that sticks out on its side
    of the point moves to the other side when it fits there, else it is shifted back inside by
    as much as it sticks out plus ``pad`` points (one wider than the axes keeps its left end
    in)."""
    if not texts:
        return
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    to_points = 72.0 / ax.figure.dpi

    def inside(box: Any) -> bool:
        return frame.x0 <= box.x0 and box.x1 <= frame.x1

    for text in texts:
        box = text.get_window_extent(renderer)
        if not inside(box):
            ox, oy = text.xyann
            side = text.get_horizontalalignment()
            text.set_horizontalalignment("right" if side == "left" else "left")
            text.xyann = (-ox, oy)
            box = text.get_window_extent(renderer)
            if not inside(box):  # fits on neither side: back to its own, shifted
                text.set_horizontalalignment(side)
                text.xyann = (ox, oy)
                box = text.get_window_extent(renderer)
        dx = dy = 0.0
        if box.x1 > frame.x1:
            dx = frame.x1 - box.x1 - pad / to_points
        if box.x0 + dx < frame.x0:
            dx = frame.x0 - box.x0 + pad / to_points
        if box.y1 > frame.y1:
            dy = frame.y1 - box.y1 - pad / to_points
        elif box.y0 < frame.y0:
            dy = frame.y0 - box.y0 + pad / to_points
        if dx or dy:
            ox, oy = text.xyann
            text.xyann = (ox + dx * to_points, oy + dy * to_points)


# ---------------------------------------------------------------------------------------------
# Front


def plot_front(
    experiments: Experiments, path: str | Path, objectives: Objectives | None = None
) -> Path:
    """Scatter of all completed trials on the first two objectives, front highlighted.

    One experiment: dominated trials in grey, trials stopped early by the scheduler (their values
    at the stopping epoch, measured on the evaluation subset) as orange crosses, unfinished
    trials (their latest per-epoch values, on the evaluation subset) as hollow markers, front
    members in colour, joined by the front's staircase and labelled with their curriculum
    (at most :data:`MAX_LABELS` points, spread along the front, one label for the trials at one
    point; beyond :data:`INLINE_LABELS` labels a point shows its trial id and a key beside the
    axes its curriculum: :func:`_label_fronts`). The legend sits below the axes.
    Several experiments: one colour each, dominated trials faint, each front with its
    staircase. With more than two objectives the front is computed on all of them and the first
    two are drawn; with one objective the trials are drawn against their completion order.
    """
    listed = _as_list(experiments)
    objectives = _objectives_of(listed, objectives)
    if len(objectives) == 1:
        return _plot_single_objective(listed, path, objectives[0])
    (x_metric, x_mode), (y_metric, y_mode) = objectives[0], objectives[1]
    fig, ax = plt.subplots(figsize=(8.5, 6.5))
    names = display_names(listed)
    single = len(listed) == 1
    plotted = 0
    fronts: list[tuple[Any, str, pd.DataFrame, int, bool]] = []
    for index, (experiment, name) in enumerate(zip(listed, names, strict=True)):
        colour = "C0" if single else f"C{index % 10}"
        done = experiment.completed.dropna(subset=[x_metric, y_metric])
        front = experiment.front(objectives).dropna(subset=[x_metric, y_metric])
        dominated = done.drop(index=front.index)
        if single:
            stopped, unfinished = _partial_trials(experiment, done.index, x_metric, y_metric)
            partial = (
                (stopped, "stopped early", "values at the stopping epoch", PARTIAL_STYLES[0]),
                (unfinished, "unfinished", "latest epoch", PARTIAL_STYLES[1]),
            )
            for trials, what, values, style in partial:
                if len(trials):
                    ax.scatter(
                        trials[x_metric],
                        trials[y_metric],
                        s=36,
                        label=f"{what} ({len(trials)}; {values}, evaluation subset)",
                        **style,
                    )
        ax.scatter(
            dominated[x_metric],
            dominated[y_metric],
            color="0.65" if single else colour,
            alpha=1.0 if single else 0.3,
            s=28,
            label=f"dominated ({len(dominated)})" if single else None,
        )
        if len(front):
            steps = front_steps(front[[x_metric, y_metric]].to_numpy(float), [x_mode, y_mode])
            ax.plot(steps[:, 0], steps[:, 1], color=colour, lw=1.5, alpha=0.8)
        handle = ax.scatter(
            front[x_metric],
            front[y_metric],
            color=colour,
            edgecolors="black",
            linewidths=0.6,
            s=60,
            zorder=3,
        )
        with_model = experiment.trials["model"].nunique() > 1
        fronts.append((handle, name, front, len(done), with_model))
        plotted += len(done)
    ax.set_xlabel(f"{metric_label(x_metric, listed[0])}  [{_mode_word(x_mode)}]")
    ax.set_ylabel(f"{metric_label(y_metric, listed[0])}  [{_mode_word(y_mode)}]")
    _format_axis(ax, "x", x_metric)
    _format_axis(ax, "y", y_metric)
    title = f"Pareto front: {y_metric} vs {x_metric}"
    subtitle = names[0] if single else ", ".join(names)
    if len(objectives) > 2:
        subtitle += f" (front on all {len(objectives)} objectives; first two shown)"
    ax.set_title(f"{title}\n{subtitle}{_alike_note(listed)}", fontsize=11)
    ax.grid(alpha=0.3)
    if plotted == 0:
        _no_trial_note(ax)
    _label_fronts(ax, fronts, x_metric, y_metric, single)
    # below the axes: inside, a legend would cover the points of a search of many trials
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    return _save(fig, path)


INLINE_LABELS = 6  # up to this many labelled points carry their curriculum next to them


def _label_fronts(
    ax: Any,
    fronts: Sequence[tuple[Any, str, pd.DataFrame, int, bool]],
    x_metric: str,
    y_metric: str,
    single: bool,
) -> None:
    """Label the fronts drawn by :func:`plot_front` and name each in the legend.

    ``fronts`` holds, per experiment, its front's scatter handle, its name, the front, its
    number of completed trials and whether to name the model. Trials at the same point share
    one label (``+n``). At most :data:`MAX_LABELS` points are labelled in all, spread along each
    front from one end to the other, skipping a point drawn right next to one already labelled;
    the legend says how many points are labelled when not all are. Up to
    :data:`INLINE_LABELS` labels carry the curriculum next to their point; more carry the trial
    id only, and a key beside the axes gives each one's curriculum.
    """
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    width, height = (x1 - x0) or 1.0, (y1 - y0) or 1.0
    budget = max(2, MAX_LABELS // max(len(fronts), 1))  # labelled points per experiment
    placed: list[tuple[float, float]] = []  # labelled points, in axes fractions
    labels: list[tuple[float, float, str, str]] = []  # x, y, trial id tag, full label
    for handle, name, front, completed, with_model in fronts:
        points = _same_point_groups(front, [x_metric, y_metric])
        count = 0
        for i in spread(len(points), budget):
            group = points[i]
            first = front.loc[[group[0]]]
            x, y = float(first[x_metric].iloc[0]), float(first[y_metric].iloc[0])
            near = ((x - x0) / width, (y - y0) / height)
            if any(abs(near[0] - a) < 0.08 and abs(near[1] - b) < 0.04 for a, b in placed):
                continue  # its label would sit on a neighbour's
            placed.append(near)
            more = f" +{len(group) - 1}" if len(group) > 1 else ""
            text = _front_labels(first, with_model)[0]
            text += f" (+{len(group) - 1} more here)" if more else ""
            labels.append((x, y, f"{first['trial_id'].iloc[0]}{more}", text))
            count += 1
        what = f"{len(front)} of {completed} completed"
        if len(points) < len(front):
            what += f", at {len(points)} points"
        if 0 < count < len(points):
            what += f"; {count} labelled, all in front.csv"
        handle.set_label(f"Pareto front ({what})" if single else f"{name}: front {what}")
    if len(labels) <= INLINE_LABELS:
        _annotate(ax, [x for x, *_ in labels], [y for _, y, *_ in labels], [t for *_, t in labels])
        return
    _annotate(ax, [x for x, *_ in labels], [y for _, y, *_ in labels], [t for _, _, t, _ in labels])
    key = "\n".join(text for *_, text in labels)
    ax.text(1.02, 1.0, key, transform=ax.transAxes, va="top", ha="left", fontsize=7)


# markers of the trials stopped early by the scheduler and of the unfinished ones
PARTIAL_STYLES = ({"marker": "x", "color": "C1"}, {"facecolors": "none", "edgecolors": "0.55"})


def _partial_trials(
    experiment: Experiment, done: pd.Index, x_metric: str, y_metric: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trials with both metrics that neither completed (``done``) nor failed, split into
    those stopped early by the scheduler and the others (running or interrupted)."""
    trials = experiment.trials
    partial = trials[~trials.index.isin(done) & (trials["status"] != "ERROR")]
    partial = partial.dropna(subset=[x_metric, y_metric])
    is_stopped = partial.get("stopped", pd.Series(False, index=partial.index))
    is_stopped = is_stopped.fillna(False).astype(bool)
    return partial[is_stopped], partial[~is_stopped]


def spread(count: int, most: int) -> list[int]:
    """Indices of ``range(count)``: all of them when there are at most ``most``, else ``most``
    of them spread evenly from the first to the last (both included), in order."""
    if count <= most:
        return list(range(count))
    if most <= 1:
        return [0][:most]
    return sorted({int(i) for i in np.linspace(0, count - 1, most).round()})


def _same_point_groups(frame: pd.DataFrame, columns: Sequence[str]) -> list[list[Any]]:
    """The index labels of ``frame`` grouped by equal values in ``columns`` (trials drawn at the
    same point), groups in the order of their first row, rows in frame order."""
    groups: dict[tuple, list[Any]] = {}
    for index, values in zip(
        frame.index, frame[list(columns)].itertuples(index=False), strict=True
    ):
        groups.setdefault(tuple(values), []).append(index)
    return list(groups.values())


def _front_labels(front: pd.DataFrame, with_model: bool = False) -> list[str]:
    """``<trial_id>: [<model>] <curriculum> [<method>]`` for each front member."""
    labels = front["label"].astype(str).tolist() if "label" in front else [""] * len(front)
    if "model" in front and (with_model or front["model"].nunique() > 1):
        labels = [f"{m} {label}" for m, label in zip(front["model"], labels, strict=True)]
    if "trial_id" in front:
        labels = [f"{t}: {label}" for t, label in zip(front["trial_id"], labels, strict=True)]
    return labels


def _plot_single_objective(
    experiments: list[Experiment], path: str | Path, objective: tuple[str, str]
) -> Path:
    metric, mode = objective
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    for index, (experiment, name) in enumerate(
        zip(experiments, display_names(experiments), strict=True)
    ):
        done = experiment.completed.dropna(subset=[metric])
        if "completed_at" in done:
            done = done.sort_values("completed_at", kind="stable")
        order = np.arange(1, len(done) + 1)
        ax.scatter(order, done[metric], color=f"C{index % 10}", s=28, label=name)
        if len(done):
            best = done[metric].cummax() if mode == "max" else done[metric].cummin()
            ax.step(order, best, where="post", color=f"C{index % 10}", alpha=0.7)
    ax.set_xlabel("completed trials, in completion order")
    ax.set_ylabel(f"{metric_label(metric, experiments[0])}  [{_mode_word(mode)}]")
    _format_axis(ax, "y", metric)
    ax.set_title(f"Best {metric} as trials complete (line: best so far)", fontsize=11)
    ax.grid(alpha=0.3)
    if not any(len(e.completed.dropna(subset=[metric])) for e in experiments):
        _empty_panel(ax, NO_TRIAL)
    ax.legend(fontsize=8)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# Hypervolume


def _time_unit(seconds: float) -> tuple[float, str]:
    if seconds > 2 * 3600:
        return 3600.0, "hours"
    if seconds > 120:
        return 60.0, "minutes"
    return 1.0, "seconds"


def plot_hypervolume(
    experiments: Experiments,
    path: str | Path,
    x: str = "trials",
    objectives: Objectives | None = None,
    reference: Sequence[float] | None = None,
) -> Path:
    """Hypervolume of each experiment's front as its trials complete.

    ``x`` is ``"trials"`` (number of completed trials) or ``"time"`` (wall-clock time since
    the search started). All experiments share one reference point (given, or
    :func:`~analysis.hypervolume.reference_point` over all their completed trials), stated in
    the axis label, so their curves can be compared. Without any completed trial the plot
    says so ("no completed trial yet") instead of drawing empty axes.
    """
    if x not in ("trials", "time"):
        raise ValueError(f"x must be 'trials' or 'time', got {x!r}")
    listed = _as_list(experiments)
    objectives = _objectives_of(listed, objectives)
    if reference is None:
        reference = reference_point([e.trials for e in listed], objectives)
    ref = tuple(float(v) for v in reference)
    curves = []
    for experiment in listed:
        if x == "trials":
            series = hypervolume_over_trials(experiment.trials, objectives, reference=ref)
            curves.append((series.index.to_numpy(float), series.to_numpy(float)))
        else:
            frame = hypervolume_over_time(experiment.trials, objectives, reference=ref)
            curves.append((frame["time_s"].to_numpy(float), frame["hypervolume"].to_numpy(float)))
    longest = max((c[0].max() for c in curves if len(c[0])), default=0.0)
    scale, unit = _time_unit(longest) if x == "time" else (1.0, "")
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    for index, ((xs, ys), name) in enumerate(zip(curves, display_names(listed), strict=True)):
        if not len(xs):
            ax.plot([], [], color=f"C{index % 10}", label=f"{name} (no completed trial)")
            continue
        xs = xs / scale
        if x == "trials":
            xs, ys = np.concatenate([[0.0], xs]), np.concatenate([[0.0], ys])
        ax.step(xs, ys, where="post", color=f"C{index % 10}", lw=1.8, label=name)
        ax.scatter(
            xs[1:] if x == "trials" else xs,
            ys[1:] if x == "trials" else ys,
            s=14,
            color=f"C{index % 10}",
        )
    what = ", ".join(f"{m} ({mode})" for m, mode in objectives)
    ref_text = "(" + ", ".join(f"{v:g}" for v in ref) + ")"
    ax.set_ylabel(f"hypervolume of the front\n(objectives {what}; reference {ref_text})")
    if x == "trials":
        ax.set_xlabel("completed trials (in completion order)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        title = "Hypervolume of the Pareto front as trials complete"
    else:
        ax.set_xlabel(f"wall-clock time since the search started ({unit})")
        title = "Hypervolume of the Pareto front over time"
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    if not any(len(xs) for xs, _ in curves):
        _empty_panel(ax, NO_TRIAL)
        return _save(fig, path)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# Profiles


def profile_columns(frame: pd.DataFrame, kind: str) -> list[tuple[float, str]]:
    """``(x, column)`` pairs of the ``spatial_acc@<deg>`` (``kind="rotation"``) or
    ``adv_acc@<eps>`` (``kind="eps"``) columns that have a value, sorted by x."""
    pattern = _SPATIAL_PROFILE if kind == "rotation" else _ADV_PROFILE
    pairs = []
    for column in frame.columns:
        match = pattern.match(str(column))
        if match and frame[column].notna().any():
            try:
                pairs.append((float(match.group(1)), str(column)))
            except ValueError:
                continue
    return sorted(pairs)


def plot_profiles(
    experiment: Experiment,
    path: str | Path,
    objectives: Objectives | None = None,
    max_models: int = 12,
) -> Path:
    """Invariance profile (accuracy against the rotation range 0..180 degrees) and robustness
    profile (accuracy against the PGD budget) of the models on the front, side by side.

    One model is drawn per distinct point of the front (trials with the same objective values,
    e.g. a curriculum the sampler proposed again, share a line: its legend says how many more),
    at most ``max_models`` of them, spread evenly along the front from the best on the first
    objective to the best on the last, so a long front shows both of its ends.
    """
    objectives = _objectives_of([experiment], objectives)
    front = experiment.front(objectives)  # best first
    points = _same_point_groups(front, [m for m, _ in objectives])
    groups = [points[i] for i in spread(len(points), max_models)]
    shown = front.loc[[group[0] for group in groups]]
    repeats = {group[0]: len(group) - 1 for group in groups}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5))
    s = evaluation_settings(experiment)
    panels = (
        (
            left,
            "rotation",
            "rotation range θ (degrees): random angle in [−θ, +θ]",
            "Invariance profile: accuracy under random rotations",
        ),
        (
            right,
            "eps",
            "L∞ PGD budget ε (pixel scale 0..1)",
            f"Robustness profile: accuracy under PGD ({_pgd_steps(s)})",
        ),
    )
    for ax, kind, xlabel, title in panels:
        columns = profile_columns(shown, kind)
        ax.set_title(title, fontsize=11)
        if not len(shown):
            _empty_panel(ax, NO_TRIAL)
            continue
        if not columns:
            _empty_panel(ax, "no profile reported\n(the job has evaluation.profiles: false)")
            continue
        xs = np.array([x for x, _ in columns])
        for index, (row_index, row) in enumerate(shown.iterrows()):
            ys = np.array([row[c] for _, c in columns], dtype=float)
            label = f"{row['trial_id']}: {row.get('label', '')}"
            if "model" in shown and shown["model"].nunique() > 1:
                label = f"{row['trial_id']} {row['model']}: {row.get('label', '')}"
            if repeats.get(row_index):
                label += f" (+{repeats[row_index]} more with the same values)"
            ax.plot(
                xs,
                ys,
                marker="o",
                ms=4,
                color=f"C{index % 10}",
                ls="-" if index < 10 else "--",
                label=label,
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (%)")
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        ax.set_ylim(0, 1.02)
        if kind == "rotation":
            ax.set_xticks(np.arange(0, 181, 30))
            ax.set_xlim(-5, 185)
        ax.grid(alpha=0.3)
    if s["translate_eval"]:
        left.text(
            0.01,
            0.01,
            f"plus translation ≤{s['translate_eval']:g} of the image",
            transform=left.transAxes,
            fontsize=8,
            color="0.3",
        )
    handles, labels = left.get_legend_handles_labels()
    if not handles:
        handles, labels = right.get_legend_handles_labels()
    if handles:
        fig.legend(
            handles,
            labels,
            loc="lower center",
            ncol=2,
            fontsize=8,
            bbox_to_anchor=(0.5, -0.02 - 0.035 * math.ceil(len(labels) / 2)),
        )
    more = ""
    if len(front) > len(shown):
        more = f" ({len(shown)} of {len(front)} shown"
        more += ", spread along the front)" if len(points) > len(shown) else ")"
    fig.suptitle(f"Profiles of the Pareto-front models: {experiment.name}{more}", fontsize=12)
    return _save(fig, path)


def _pgd_steps(settings: dict[str, float]) -> str:
    steps = pgd_text(settings)
    return f"{steps}, random start" if steps else "random start"


# ---------------------------------------------------------------------------------------------
# Trade-offs


def _fixed(values: pd.Series) -> bool:
    clean = values.dropna()
    return len(clean) > 0 and np.allclose(clean.to_numpy(float), clean.iloc[0])


def _series(experiments: list[Experiment]) -> list[tuple[str, pd.DataFrame]]:
    """Completed trials split by (experiment, model); names say the model (and experiment)."""
    names = display_names(experiments)
    out = []
    for experiment, name in zip(experiments, names, strict=True):
        done = experiment.completed
        if not len(done):
            continue
        for model, group in done.groupby(done["model"].fillna("?").astype(str), sort=True):
            out.append((model if len(experiments) == 1 else f"{name}: {model}", group))
    return out


def plot_tradeoffs(experiments: Experiments, path: str | Path) -> Path:
    """The spatial-adversarial trade-off, two panels.

    Left: ``adv_acc`` against the rotation range the curriculum trains on (its largest
    ``theta``). Right: ``spatial_acc`` against the PGD budget it trains on (its largest
    ``eps``). Trials are grouped by model (and experiment). A group whose other training budget
    and method are fixed (a grid study over ``theta_max`` or ``eps_max``) is drawn as a line
    through its sorted x values (mean over repeats at the same x); otherwise as points, coloured
    by the other budget when there is a single group.
    """
    listed = _as_list(experiments)
    groups = _series(listed)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    panels = (
        (
            axes[0],
            "train_theta",
            "adv_acc",
            "train_eps",
            "training rotation range θ (degrees, largest the curriculum reaches)",
            "training ε",
            "Adversarial accuracy vs training rotation range",
        ),
        (
            axes[1],
            "train_eps",
            "spatial_acc",
            "train_theta",
            "training PGD budget ε (L∞, largest the curriculum reaches)",
            "training θ (°)",
            "Spatial accuracy vs training PGD budget",
        ),
    )
    for ax, x, y, other, xlabel, other_label, title in panels:
        ax.set_title(title, fontsize=11)
        usable = [(n, g.dropna(subset=[y])) for n, g in groups if y in g]
        usable = [(n, g) for n, g in usable if len(g)]
        if not usable:
            _empty_panel(ax, NO_TRIAL)
            continue
        every_x = pd.concat([g[x] for _, g in usable]).fillna(0.0).astype(float)
        if len(every_x) > 1 and np.ptp(every_x.to_numpy()) == 0:
            what = "θ" if x == "train_theta" else "ε"
            _empty_panel(
                ax,
                f"every trial trains with the same {what} = {every_x.iloc[0]:.3g}:\n"
                f"this search does not vary {what}",
            )
            continue
        for index, (name, group) in enumerate(usable):
            colour = f"C{index % 10}"
            xs = group[x].fillna(0.0).astype(float)
            grid = len(group) > 1 and _fixed(group[other]) and group["method"].nunique() <= 1
            if grid:
                means = group.assign(_x=xs).groupby("_x")[y].mean().sort_index()
                method = group["method"].iloc[0]
                fixed = f"{other_label} = {group[other].iloc[0]:.3g}, {method}"
                ax.plot(
                    means.index,
                    means.to_numpy(float),
                    marker="o",
                    color=colour,
                    label=f"{name} ({fixed})",
                )
                ax.scatter(xs, group[y], color=colour, s=12, alpha=0.5)
            elif len(usable) == 1:
                points = ax.scatter(
                    xs,
                    group[y],
                    c=group[other].fillna(0.0).astype(float),
                    cmap="viridis",
                    s=40,
                    edgecolors="black",
                    linewidths=0.4,
                    label=name,
                )
                fig.colorbar(points, ax=ax, label=other_label)
            else:
                ax.scatter(xs, group[y], color=colour, s=36, label=name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric_label(y, listed[0]))
        _format_axis(ax, "y", y)
        if x == "train_theta":
            ax.set_xticks(np.arange(0, 181, 30))
            ax.set_xlim(-5, 185)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    names = ", ".join(display_names(listed))
    fig.suptitle(
        f"Spatial vs adversarial robustness trade-off: {names}{_alike_note(listed)}", fontsize=12
    )
    fig.tight_layout()
    return _save(fig, path)


__all__ = [
    "is_fraction",
    "metric_label",
    "plot_front",
    "plot_hypervolume",
    "plot_profiles",
    "plot_tradeoffs",
    "profile_columns",
]
