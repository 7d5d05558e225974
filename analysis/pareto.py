"""Pareto fronts: which trials no other trial beats on every objective at once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

MODES = ("max", "min")


def _as_maximisation(points: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    if len(modes) != points.shape[1]:
        raise ValueError(f"{len(modes)} modes for {points.shape[1]} objectives")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"modes must be 'max' or 'min', got {unknown}")
    signs = np.array([1.0 if m == "max" else -1.0 for m in modes])
    return points * signs


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


__all__ = ["non_dominated", "non_dominated_mask"]
