"""Pareto fronts: which trials no other trial beats on every objective at once.

Pure numpy/pandas (no torch, no Ray), so the search driver and the analysis both import it cheaply.
Objectives are ``(column, mode)`` pairs with ``mode`` ``"max"`` or ``"min"``; any number of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

MODES = ("max", "min")

ERROR_STATUS = "ERROR"


def _signs(modes: Sequence[str]) -> np.ndarray:
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"modes must be 'max' or 'min', got {unknown}")
    return np.array([1.0 if m == "max" else -1.0 for m in modes])


def _as_maximisation(points: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    if len(modes) != points.shape[1]:
        raise ValueError(f"{len(modes)} modes for {points.shape[1]} objectives")
    return points * _signs(modes)


def as_maximisation(points: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """``points`` (``(n, d)``) with the ``min`` columns negated, so larger is better everywhere."""
    values = np.asarray(points, dtype=float)
    return _as_maximisation(values.reshape(len(values), -1), modes)


def non_dominated_mask(points: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """Boolean mask of the points no other point dominates.

    ``q`` dominates ``p`` when it is at least as good on every objective and better on one.
    Equal points do not dominate each other, so ties are all kept.
    """
    values = _as_maximisation(np.asarray(points, dtype=float).reshape(len(points), -1), modes)
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    at_least = (values[:, None, :] >= values[None, :, :]).all(axis=2)  # [q, p]: q >= p
    better = (values[:, None, :] > values[None, :, :]).any(axis=2)
    dominated = (at_least & better).any(axis=0)
    return ~dominated


def non_dominated(frame: pd.DataFrame, objectives: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """The rows of ``frame`` on the Pareto front of ``objectives`` (``(column, mode)`` pairs).

    Rows missing any objective are left out. The front keeps the frame's order.
    """
    columns = [metric for metric, _ in objectives]
    complete = frame.dropna(subset=columns)
    mask = non_dominated_mask(complete[columns].to_numpy(), [mode for _, mode in objectives])
    return complete[mask]


def best_first(frame: pd.DataFrame, objectives: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """``frame`` sorted best first on the first objective (stable: ties keep their order),
    the order in which fronts are shown, written and exported. A frame without that column is
    returned as it is."""
    metric, mode = objectives[0]
    if metric not in frame:
        return frame
    return frame.sort_values(metric, ascending=mode == "min", kind="stable")


def completed_trials(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a trial table that finished their last epoch and did not fail.

    A row is completed when its ``final`` column is true (the last epoch reported the full
    test-set evaluation) and its ``status`` is not ``ERROR``. A frame without those columns is
    returned whole (every row counts as completed).
    """
    keep = pd.Series(True, index=frame.index)
    if "final" in frame:
        keep &= frame["final"].fillna(False).astype(bool)
    if "status" in frame:
        keep &= frame["status"].astype(str) != ERROR_STATUS
    return frame[keep]


def front_steps(points: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """Vertices of the staircase that bounds the region two non-dominated points dominate.

    ``points`` is ``(n, 2)``; the result is ``(2n - 1, 2)`` in the original units, ordered along
    the first objective from its worst to its best front member: between two consecutive front
    members the line moves along the second objective first (at the first member's value of the
    first objective), then along the first. Dominated and duplicate points are dropped first.
    Drawn as a line, it is the "attainment" curve of the front.
    """
    values = np.asarray(points, dtype=float).reshape(len(points), -1)
    if values.shape[1] != 2:
        raise ValueError(f"front_steps needs 2 objectives, got {values.shape[1]}")
    if len(values) == 0:
        return np.zeros((0, 2))
    signs = _signs(modes)
    front = np.unique(values[non_dominated_mask(values, modes)] * signs, axis=0)
    front = front[np.lexsort((-front[:, 1], front[:, 0]))]  # x ascending, y descending
    vertices = [front[0]]
    for previous, current in zip(front[:-1], front[1:], strict=True):
        vertices.append(np.array([previous[0], current[1]]))
        vertices.append(current)
    return np.array(vertices) * signs


__all__ = [
    "MODES",
    "as_maximisation",
    "best_first",
    "completed_trials",
    "front_steps",
    "non_dominated",
    "non_dominated_mask",
]
