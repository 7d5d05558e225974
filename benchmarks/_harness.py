"""The common harness: alternating timings, result records and the results table.

Every benchmark times *our* path and a *baseline* in the same process, alternating
(ours, baseline, ours, baseline, ...) after a warm-up of each, so that both see the same machine
state (other processes, CPU frequency, caches) and a noisy neighbour slows both alike. The
figures reported are medians; the ratio is ``baseline / ours``, so a ratio above 1 means ours is
faster (or smaller, for memory).
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of each timed call of the two callables, in the order they ran."""

    ours: tuple[float, ...]
    baseline: tuple[float, ...]
    # CPU seconds of this process (all its threads) over the same calls: less sensitive than
    # wall time to a noisy neighbour, blind to work done in other processes (DataLoader workers).
    ours_cpu: tuple[float, ...] = ()
    baseline_cpu: tuple[float, ...] = ()

    @property
    def cpu_ratio(self) -> float:
        """``baseline / ours`` of the median CPU times (NaN when they were not recorded)."""
        if not self.ours_cpu or not self.baseline_cpu:
            return math.nan
        return ratio(statistics.median(self.baseline_cpu), statistics.median(self.ours_cpu))

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours)

    @property
    def baseline_median(self) -> float:
        return statistics.median(self.baseline)

    @property
    def ratio(self) -> float:
        """``baseline median / ours median``: above 1 when ours is faster."""
        return ratio(self.baseline_median, self.ours_median)


def ratio(baseline: float, ours: float) -> float:
    """``baseline / ours``; infinite when ours is 0 and the baseline is not, NaN when both are."""
    if ours == 0:
        return math.nan if baseline == 0 else math.inf
    return baseline / ours


def time_alternating(
    ours: Callable[[], Any],
    baseline: Callable[[], Any],
    *,
    repeats: int = 5,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Timing:
    """Time ``ours`` and ``baseline`` alternately: ``warmup`` untimed calls of each, then
    ``repeats`` timed pairs (ours, baseline, ours, baseline, ...).

    ``sync`` is called before each clock read (``torch.cuda.synchronize`` on a GPU, so that the
    queued kernels are counted). The garbage collector is run before, and disabled during, each
    timed call, so that one side does not pay for the other's garbage.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be >= 1 and warmup >= 0")
    wait = sync or (lambda: None)
    for _ in range(warmup):
        ours()
        baseline()
    wait()
    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    cpu: dict[str, list[float]] = {"ours": [], "baseline": []}
    for _ in range(repeats):
        for key, call in (("ours", ours), ("baseline", baseline)):
            gc.collect()
            gc.disable()
            try:
                cpu_start = time.process_time()
                start = clock()
                call()
                wait()
                times[key].append(clock() - start)
                cpu[key].append(time.process_time() - cpu_start)
            finally:
                gc.enable()
    return Timing(
        ours=tuple(times["ours"]),
        baseline=tuple(times["baseline"]),
        ours_cpu=tuple(cpu["ours"]),
        baseline_cpu=tuple(cpu["baseline"]),
    )


def device_sync(device: str) -> Callable[[], None] | None:
    """The synchronisation that ``time_alternating`` needs on ``device`` (None on the CPU)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return None


@dataclass(frozen=True)
class Result:
    """One row of the results table.

    ``ours`` and ``baseline`` are medians in ``unit`` (seconds unless stated); ``ratio`` is
    ``baseline / ours``, or ``ours / baseline`` for a quantity where more is better
    (``higher_is_better``, e.g. a hypervolume; the cell then says so), so that above 1 always
    means ours is better. ``target`` says what was aimed at in words (empty: for information);
    ``ok`` is whether it was met (None: no target, or the row was skipped). ``note`` says what
    was compared, and how, under the table.
    """

    name: str
    ours: float
    baseline: float
    unit: str = "s"
    target: str = ""
    ok: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    higher_is_better: bool = False

    @property
    def ratio(self) -> float:
        if self.higher_is_better:
            return ratio(self.ours, self.baseline)
        return ratio(self.baseline, self.ours)

    @property
    def skipped(self) -> bool:
        return math.isnan(self.ours) and math.isnan(self.baseline)

    def cells(self) -> list[str]:
        if self.skipped:
            return [self.name, "-", "-", "-", self.target or "-", "skipped"]
        ok = "-" if self.ok is None else ("yes" if self.ok else "NO")
        return [
            self.name,
            format_value(self.ours, self.unit),
            format_value(self.baseline, self.unit),
            f"{self.ratio:.2f}x" + (" (ours/baseline)" if self.higher_is_better else ""),
            self.target or "-",
            ok,
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ours": self.ours,
            "baseline": self.baseline,
            "unit": self.unit,
            "ratio": self.ratio,
            "target": self.target,
            "ok": self.ok,
            "note": self.note,
            **({"extra": self.extra} if self.extra else {}),
        }


def ratio_result(
    name: str,
    timing: Timing,
    *,
    min_ratio: float | None = None,
    note: str = "",
    extra: dict[str, Any] | None = None,
    cpu_note: bool = True,
) -> Result:
    """A timing row whose target, if any, is ``baseline / ours >= min_ratio``.

    With ``cpu_note`` the note also gives the ratio of this process's CPU times (leave it out
    when work happens in other processes or on a GPU, where it means nothing).
    """
    target = "" if min_ratio is None else f">= {min_ratio:g}x"
    ok = None if min_ratio is None else timing.ratio >= min_ratio
    if cpu_note and not math.isnan(timing.cpu_ratio):
        note = f"{note}; CPU-time ratio of this process {timing.cpu_ratio:.2f}x"
    return Result(
        name,
        timing.ours_median,
        timing.baseline_median,
        target=target,
        ok=ok,
        note=note,
        extra={
            "ours_times": list(timing.ours),
            "baseline_times": list(timing.baseline),
            "ours_cpu_times": list(timing.ours_cpu),
            "baseline_cpu_times": list(timing.baseline_cpu),
            **(extra or {}),
        },
    )


def skipped(name: str, why: str, target: str = "") -> Result:
    """A row for a benchmark that could not run here (``why`` goes to the notes)."""
    return Result(name, math.nan, math.nan, target=target, note=f"skipped: {why}")


def format_value(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    if unit == "s":
        if value < 1e-3:
            return f"{value * 1e6:.0f} us"
        if value < 1.0:
            return f"{value * 1e3:.1f} ms"
        return f"{value:.2f} s"
    return f"{value:.1f} {unit}"


HEADER = ["name", "ours median", "baseline median", "ratio (baseline/ours)", "target", "ok?"]


def format_table(results: Sequence[Result]) -> str:
    """The results as a Markdown table (readable in a terminal too), then the notes."""
    rows = [HEADER, *(r.cells() for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(HEADER), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r.cells()) for r in results]
    notes = [f"- {r.name}: {r.note}" for r in results if r.note]
    if notes:
        out += ["", *notes]
    return "\n".join(out)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def local_ray(num_cpus: int = 2) -> float:
    """Start a private local Ray for the Ray benchmarks (once; shared by them), and return the
    seconds its start took (0 when it was already running).

    ``address="local"`` always starts a new instance: a plain ``ray.init()`` would attach to
    any cluster already running on the machine (``ray start``, another user's tests) and
    measure that one instead.
    """
    import ray

    if ray.is_initialized():
        return 0.0
    start = time.perf_counter()
    ray.init(
        address="local",
        num_cpus=num_cpus,
        object_store_memory=1 << 30,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    return time.perf_counter() - start
