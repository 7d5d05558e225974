"""Hypervolume: the size of the objective-space region a set of trials dominates.

The hypervolume of points ``P`` with respect to a reference point ``r`` is the volume of the
union of the boxes spanned by each point and ``r`` (for maximised objectives, the box
``[r, p]``). It grows when a new point extends the front, never shrinks when one is added, and is
the standard single number to compare Pareto fronts, provided every front is measured from the
same reference.

Exact algorithms, pure numpy:

- 1 objective: the distance from the best point to the reference.
- 2 objectives: sort-and-sweep, ``O(n log n)``.
- 3 objectives: dimension sweep (Beume et al. 2009): sort by the last objective and keep the
  2-D staircase of the points seen so far in a sorted list, whose area changes by what each
  inserted point adds; ``O(n log n)`` comparisons (plus list shifts, ``O(n)`` memmoves).
- 4 or more: slicing ("HSO"): sort by the last objective, cut the space into slabs between
  consecutive values, and add up slab thickness times the hypervolume of the points in the slab,
  one dimension lower, down to the 3-objective sweep: ``O(n^(d-2) log n)``.

:func:`hypervolume_over_trials` adds each trial's exclusive contribution to the running value
(nothing for a trial the front already dominates) instead of measuring the whole front again
after every trial.

Points that do not strictly beat the reference on every objective span no volume and are ignored.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.experiment import check_objectives
from analysis.pareto import _signs, completed_trials, non_dominated_mask

Objectives = Sequence[tuple[str, str]]


def default_reference(points: np.ndarray, modes: Sequence[str] | None = None) -> np.ndarray:
    """The reference point used when none is given: the worst value of each objective.

    For a ``max`` objective that is 0 (accuracies and rates live in ``[0, 1]``; a point with a
    negative value there spans nothing). For a ``min`` objective (e.g. ``loss``) there is no
    natural worst value, so it is the largest value among ``points``; the point that attains it
    then spans no volume. That default depends on the data: to compare several fronts, or one
    front over time, compute the reference once over all points (as
    :func:`hypervolume_over_trials` and :func:`analysis.report.compare` do) and pass it.
    """
    values = np.asarray(points, dtype=float)
    values = values.reshape(len(values), -1) if values.ndim != 2 else values
    dims = values.shape[1] if modes is None else len(modes)
    modes = ["max"] * dims if modes is None else list(modes)
    reference = np.zeros(dims)
    for j, mode in enumerate(modes):
        if mode == "min":
            column = values[:, j] if len(values) else np.zeros(0)
            column = column[np.isfinite(column)]
            reference[j] = column.max() if len(column) else 0.0
    return reference


def hypervolume(
    points: np.ndarray | Sequence[Sequence[float]],
    reference: Sequence[float] | np.ndarray | None = None,
    modes: Sequence[str] | None = None,
) -> float:
    """Exact hypervolume of ``points`` (shape ``(n, d)``) with respect to ``reference``.

    Args:
        points: objective values, one row per point; any number of objectives.
        reference: the point the volume is measured from, in the objectives' own units; default
            :func:`default_reference` (0 for ``max`` objectives, the largest observed value for
            ``min`` ones).
        modes: ``"max"`` or ``"min"`` per objective; default all ``"max"``.

    Example: ``hypervolume([(1, 3), (2, 2), (3, 1)], (0, 0))`` is 6.

    Raises:
        ValueError: mismatched shapes, unknown modes, or NaN / infinite values.
    """
    values = np.asarray(points, dtype=float)
    if values.ndim == 1:
        values = values.reshape(1, -1) if values.size else values.reshape(0, 0)
    if values.ndim != 2:
        raise ValueError(f"points must be a 2-d array (n, d), got shape {values.shape}")
    dims = values.shape[1] if modes is None else len(modes)
    if values.size and values.shape[1] != dims:
        raise ValueError(f"{len(modes or ())} modes for {values.shape[1]} objectives")
    modes = ["max"] * dims if modes is None else list(modes)
    signs = _signs(modes)
    if reference is None:
        ref = default_reference(values, modes)
    else:
        ref = np.asarray(reference, dtype=float).reshape(-1)
        if ref.shape[0] != dims:
            raise ValueError(f"reference has {ref.shape[0]} values for {dims} objectives")
    if not np.isfinite(ref).all():
        raise ValueError(f"reference must be finite, got {ref.tolist()}")
    if len(values) == 0:
        return 0.0
    if not np.isfinite(values).all():
        raise ValueError("points must be finite (drop rows with missing objectives first)")
    # minimisation form: smaller is better, the region is [p, ref]
    lows = -values * signs
    top = -ref * signs
    lows = lows[(lows < top).all(axis=1)]
    return float(_hv_min(lows, top))


def _hv_min(points: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of minimisation ``points`` that are all strictly below ``ref``."""
    n, dims = points.shape
    if n == 0:
        return 0.0
    if dims == 1:
        return float(ref[0] - points[:, 0].min())
    if dims == 2:
        return _hv2(points, ref)
    if dims == 3:
        return _hv3(points, ref)
    order = np.argsort(points[:, -1], kind="stable")
    ordered = points[order]
    total = 0.0
    for i in range(n):
        upper = ordered[i + 1, -1] if i + 1 < n else ref[-1]
        depth = upper - ordered[i, -1]
        if depth <= 0:
            continue
        slab = ordered[: i + 1, :-1]
        if dims > 4:  # the 3-objective sweep skips dominated points by itself
            slab = np.unique(slab[non_dominated_mask(slab, ["min"] * (dims - 1))], axis=0)
        total += depth * _hv_min(slab, ref[:-1])
    return total


def _hv3(points: np.ndarray, ref: np.ndarray) -> float:
    """Dimension sweep over the third objective (minimisation, points strictly below ``ref``).

    The points seen so far, projected on the first two objectives, are kept as a staircase:
    ``xs`` ascending, ``ys`` strictly descending, none dominating another. Inserting a point
    drops the steps it dominates and adds to ``area`` (the 2-D hypervolume of the staircase)
    the part of its box ``[x, rx] x [y, ry]`` the staircase did not cover yet; between two
    consecutive values of the third objective the volume grows by ``area`` times the gap.
    """
    order = np.argsort(points[:, 2], kind="stable")
    rx, ry, rz = (float(v) for v in ref)
    xs: list[float] = []
    ys: list[float] = []
    area = 0.0
    total = 0.0
    ordered = points[order].tolist()
    for i, (x, y, z) in enumerate(ordered):
        k = bisect_left(xs, x)  # xs[k:] >= x
        covered = (k > 0 and ys[k - 1] <= y) or (k < len(xs) and xs[k] == x and ys[k] <= y)
        if not covered:
            level = ys[k - 1] if k > 0 else ry  # the staircase's height just left of x
            left = x
            end = k
            while end < len(xs) and ys[end] >= y:  # steps the new point dominates
                area += (xs[end] - left) * (level - y)
                left, level = xs[end], ys[end]
                end += 1
            right = xs[end] if end < len(xs) else rx
            area += (right - left) * (level - y)
            xs[k:end] = [x]
            ys[k:end] = [y]
        upper = ordered[i + 1][2] if i + 1 < len(ordered) else rz
        total += area * (upper - z)
    return total


def _hv2(points: np.ndarray, ref: np.ndarray) -> float:
    """Sort-and-sweep: x ascending; each point that lowers the best y so far adds a strip."""
    ordered = points[np.lexsort((points[:, 1], points[:, 0]))]
    total = 0.0
    best_y = ref[1]
    for x, y in ordered:
        if y < best_y:
            total += (ref[0] - x) * (best_y - y)
            best_y = y
    return float(total)


# ---------------------------------------------------------------------------------------------
# Over the course of a search


def _split(objectives: Objectives) -> tuple[list[str], list[str]]:
    if not objectives:
        raise ValueError("objectives must list at least one (metric, mode)")
    return [m for m, _ in objectives], [mode for _, mode in objectives]


def reference_point(frames: Sequence[pd.DataFrame], objectives: Objectives) -> np.ndarray:
    """One reference for several trial tables: :func:`default_reference` over the completed
    trials of all of them together (so their hypervolumes are comparable).

    Raises:
        UserError: an objective that none of the tables has, or a bad mode
            (:func:`~analysis.experiment.check_objectives`).
    """
    metrics, modes = _split(check_objectives(objectives, frames))
    blocks = [
        completed_trials(f).dropna(subset=[m for m in metrics if m in f]) for f in frames if len(f)
    ]
    blocks = [b[metrics].to_numpy(dtype=float) for b in blocks if all(m in b for m in metrics)]
    values = np.concatenate(blocks) if blocks else np.zeros((0, len(metrics)))
    return default_reference(values, modes)


def _completion_order(done: pd.DataFrame, order_by: str | None) -> pd.DataFrame:
    if order_by in (None, "index"):
        return done
    if order_by == "completion":
        for column in ("completed_at", "timestamp", "date"):
            if column in done and done[column].notna().any():
                return done.sort_values(column, kind="stable", na_position="last")
        return done
    if order_by not in done:
        raise ValueError(f"cannot order trials by {order_by!r}: no such column")
    return done.sort_values(order_by, kind="stable", na_position="last")


def _running_hypervolume(
    done: pd.DataFrame, objectives: Objectives, reference: Sequence[float] | None
) -> tuple[np.ndarray, np.ndarray]:
    metrics, modes = _split(objectives)
    values = done[metrics].to_numpy(dtype=float)
    ref = default_reference(values, modes) if reference is None else np.asarray(reference, float)
    # minimisation form, as in hypervolume(): smaller is better, the region is [p, top]
    signs = _signs(modes)
    lows = -values * signs
    top = -np.asarray(ref, dtype=float) * signs
    running = np.zeros(len(values))
    front = lows[:0]  # the running front, only points strictly below the reference
    total = 0.0
    for i, point in enumerate(lows):
        # A point the front already covers (or one outside the reference box) adds nothing;
        # otherwise it adds its box minus the part the front covers, which is the hypervolume
        # of the front clipped to that box (the corners max(q, point) in minimisation form).
        if (point < top).all() and not (front <= point).all(axis=1).any():
            clipped = np.maximum(front, point)
            clipped = clipped[(clipped < top).all(axis=1)]
            if len(clipped) > 1:
                clipped = clipped[non_dominated_mask(clipped, ["min"] * len(top))]
            added = float(np.prod(top - point)) - _hv_min(clipped, top)
            total += max(added, 0.0)
            front = np.vstack([front[~(point <= front).all(axis=1)], point])
        running[i] = total
    return running, ref


def _completed_with(frame: pd.DataFrame, objectives: Objectives) -> pd.DataFrame:
    metrics, _ = _split(check_objectives(objectives, frame))
    return completed_trials(frame).dropna(subset=metrics)


def hypervolume_over_trials(
    frame: pd.DataFrame,
    objectives: Objectives,
    order_by: str | None = "completion",
    reference: Sequence[float] | None = None,
) -> pd.Series:
    """Hypervolume of the completed trials after each one finishes.

    Args:
        frame: a trial table (e.g. ``Experiment.trials``); only completed rows count (see
            :func:`analysis.pareto.completed_trials`), rows missing an objective are skipped.
        objectives: ``(metric, mode)`` pairs.
        order_by: ``"completion"`` (the time each trial reported its last epoch: the
            ``completed_at`` column, else Ray's ``timestamp``, else ``date``), ``"index"`` (the
            frame's order) or any column name.
        reference: default: :func:`default_reference` over all the completed trials, fixed for
            the whole series.

    Raises:
        UserError: an objective's metric is not a column of ``frame``, or a bad mode
            (:func:`~analysis.experiment.check_objectives`).

    Returns:
        A Series named ``hypervolume`` indexed ``1 .. n`` (``trials``: how many completed
        trials it covers); non-decreasing. ``attrs["reference"]`` holds the reference and
        ``attrs["trial_ids"]`` the trials in order, when the frame has ``trial_id``.
    """
    done = _completion_order(_completed_with(frame, objectives), order_by)
    running, ref = _running_hypervolume(done, objectives, reference)
    series = pd.Series(
        running,
        index=pd.RangeIndex(1, len(running) + 1, name="trials"),
        name="hypervolume",
        dtype=float,
    )
    series.attrs["reference"] = tuple(float(v) for v in ref)
    if "trial_id" in done:
        series.attrs["trial_ids"] = [str(t) for t in done["trial_id"]]
    return series


def hypervolume_over_time(
    frame: pd.DataFrame,
    objectives: Objectives,
    reference: Sequence[float] | None = None,
    start: float | None = None,
) -> pd.DataFrame:
    """Hypervolume against wall-clock time since the search started.

    ``time_s`` is each completed trial's ``completed_at`` (Unix seconds; else Ray's
    ``timestamp``) minus ``start``: by default the earliest ``started_at`` of any trial in the
    frame (finished or not), else the first completion minus its ``time_total_s``. Time the
    search spent stopped before a resume is included.

    Returns:
        DataFrame with columns ``time_s``, ``hypervolume`` and ``trial_id`` (when known), one row
        per completed trial in completion order; ``attrs["reference"]`` holds the reference.
    """
    done = _completion_order(_completed_with(frame, objectives), "completion")
    running, ref = _running_hypervolume(done, objectives, reference)
    column = next((c for c in ("completed_at", "timestamp") if c in done), None)
    times = done[column].to_numpy(dtype=float) if column else np.arange(len(done), dtype=float)
    if start is None:
        start = _start_time(frame, done, times)
    out = pd.DataFrame({"time_s": times - start, "hypervolume": running})
    if "trial_id" in done:
        out["trial_id"] = [str(t) for t in done["trial_id"]]
    out.attrs["reference"] = tuple(float(v) for v in ref)
    return out


def _start_time(frame: pd.DataFrame, done: pd.DataFrame, times: np.ndarray) -> float:
    if "started_at" in frame:
        started = pd.to_numeric(frame["started_at"], errors="coerce").dropna()
        if len(started):
            return float(started.min())
    if not len(times):
        return 0.0
    durations = (
        done["time_total_s"].to_numpy(dtype=float)
        if "time_total_s" in done
        else np.zeros(len(times))
    )
    starts = times - np.nan_to_num(durations)
    return float(np.nanmin(starts))


__all__ = [
    "default_reference",
    "hypervolume",
    "hypervolume_over_time",
    "hypervolume_over_trials",
    "reference_point",
]
