"""Ranking points on several objectives: non-dominated sorting and crowding distance (numpy only).

All functions here take an ``(n, m)`` array of ``n`` points on ``m`` objectives, every objective
**maximised** (:func:`as_maximisation` turns mixed modes into that convention). They are pure and
independent of the order of the points, except where an index is passed explicitly.

The total order that :func:`rank_order` defines is the one MO-ASHA promotes by:

1. the non-dominated front (NSGA-II's non-dominated sorting): front 0 is the set of points no
   other point dominates, front 1 the non-dominated points once front 0 is removed, and so on;
2. within a front, the larger crowding distance first (points in sparse regions of the front and
   its extremes, whose distance is infinite, before points in crowded regions);
3. then an optional favoured point (the newcomer whose fate is being decided) before the points
   tied with it;
4. then the index (the order the points were recorded in).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MODES = ("max", "min")


def as_maximisation(
    values: np.ndarray | Sequence[Sequence[float]], modes: Sequence[str]
) -> np.ndarray:
    """``values`` (``(n, m)``) as floats with every ``min`` objective negated.

    Raises:
        ValueError: a mode is not ``max`` or ``min``, or there is not one mode per column.
    """
    points = np.asarray(values, dtype=float)
    points = points.reshape(len(points), -1) if points.size else points.reshape(0, len(modes))
    if points.shape[1] != len(modes):
        raise ValueError(f"{len(modes)} modes for {points.shape[1]} objectives")
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown:
        raise ValueError(f"modes must be 'max' or 'min', got {unknown}")
    signs = np.array([1.0 if mode == "max" else -1.0 for mode in modes])
    return points * signs


def dominance_matrix(points: np.ndarray) -> np.ndarray:
    """``D[i, j]``: point ``i`` dominates point ``j`` (at least as good on every objective and
    better on one). Equal points do not dominate each other."""
    at_least = (points[:, None, :] >= points[None, :, :]).all(axis=2)
    better = (points[:, None, :] > points[None, :, :]).any(axis=2)
    return at_least & better


def non_dominated_fronts(points: np.ndarray) -> np.ndarray:
    """The front of every point: 0 for the non-dominated points, 1 for those dominated only by
    points of front 0, and so on (an integer array of length ``n``)."""
    points = np.asarray(points, dtype=float)
    n = len(points)
    fronts = np.full(n, -1, dtype=int)
    dominates = dominance_matrix(points) if n else np.zeros((0, 0), dtype=bool)
    remaining = np.ones(n, dtype=bool)
    level = 0
    while remaining.any():
        alive = np.flatnonzero(remaining)
        dominated = dominates[np.ix_(alive, alive)].any(axis=0)
        front = alive[~dominated]
        fronts[front] = level
        remaining[front] = False
        level += 1
    return fronts


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of every point within the set ``points`` (usually one front).

    For each objective with a non-zero range, a point adds the gap between the nearest *distinct*
    values below and above its own, divided by the range; a point that holds the smallest or the
    largest value of such an objective gets an infinite distance. Objectives on which every point
    agrees add nothing.

    Using the nearest distinct values (NSGA-II takes the neighbours in a sorted list) makes the
    distance independent of the order of tied points, which matters here: accuracies measured on
    a small evaluation subset tie often. Identical points therefore get the same distance.
    """
    points = np.asarray(points, dtype=float)
    n = len(points)
    distance = np.zeros(n)
    if n == 0:
        return distance
    for column in points.T:
        low, high = column.min(), column.max()
        if high == low:
            continue
        distinct = np.unique(column)
        position = np.searchsorted(distinct, column)
        below = np.where(position > 0, distinct[np.maximum(position - 1, 0)], -np.inf)
        last = len(distinct) - 1
        above = np.where(position < last, distinct[np.minimum(position + 1, last)], np.inf)
        distance += (above - below) / (high - low)
    return distance


def rank_order(points: np.ndarray, favoured: int | None = None) -> np.ndarray:
    """Indices of ``points`` best first: by front, then crowding distance within the front
    (largest first), then ``favoured`` before the points it ties with, then index."""
    points = np.asarray(points, dtype=float)
    n = len(points)
    fronts = non_dominated_fronts(points)
    crowding = np.zeros(n)
    for front in np.unique(fronts):
        members = np.flatnonzero(fronts == front)
        crowding[members] = crowding_distance(points[members])
    not_favoured = np.ones(n, dtype=bool)
    if favoured is not None:
        not_favoured[favoured] = False
    # np.lexsort sorts by the last key first
    return np.lexsort((np.arange(n), not_favoured, -crowding, fronts))


def promotion_slots(n: int, reduction_factor: float) -> int:
    """How many of ``n`` results at a rung continue: ``ceil(n / reduction_factor)``.

    Computed without floating-point ``ceil`` (the number of ranks ``r >= 0`` with
    ``r * reduction_factor < n``), so ``n = 6``, ``eta = 3`` gives exactly 2.
    """
    if n <= 0:
        return 0
    slots = int(n // reduction_factor)
    while slots * reduction_factor < n:
        slots += 1
    while slots > 0 and (slots - 1) * reduction_factor >= n:
        slots -= 1
    return slots


def is_promoted(points: np.ndarray, index: int, reduction_factor: float) -> bool:
    """Whether point ``index`` is among the top ``ceil(n / reduction_factor)`` of ``points`` in
    :func:`rank_order` with ``index`` favoured among its ties."""
    order = rank_order(points, favoured=index)
    position = int(np.flatnonzero(order == index)[0])
    return position < promotion_slots(len(points), reduction_factor)


__all__ = [
    "as_maximisation",
    "crowding_distance",
    "dominance_matrix",
    "is_promoted",
    "non_dominated_fronts",
    "promotion_slots",
    "rank_order",
]
