"""A search's progress as one line per event, in place of Ray Tune's tables.

Ray Tune's own output prints two tables of every config and result per trial (about 65
lines a trial, 7,800 for a search of 120). :class:`ProgressLines` says instead, one line each,
when a trial starts or continues, completes (with its objectives), is stopped early, fails or
is retried, and at most once a ``every_s`` seconds, how far the running trials are.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ray.tune import Callback

from analysis.experiment import curriculum_summary, error_line


class ProgressLines(Callback):
    """A Ray Tune callback that hands one line per trial event to ``write`` (e.g. ``print``).

    Args:
        write: called with each line (no newline).
        objectives: the metrics whose final values a completed trial's line shows.
        every_s: least time between two lines on the running trials; one is written only
            when a result arrived since the last.
        clock: seconds, monotonic (a parameter for tests).
        now: the wall-clock time each line starts with (a parameter for tests).
    """

    def __init__(
        self,
        write: Callable[[str], None],
        objectives: Sequence[str] = (),
        every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime.datetime] = datetime.datetime.now,
    ) -> None:
        self.write = write
        self.objectives = tuple(objectives)
        self.every_s = every_s
        self.clock = clock
        self.now = now
        self.planned: int | None = None
        self._last_line = clock()
        self._new_results = False

    def setup(self, total_num_samples: int | None = None, **info: Any) -> None:
        self.planned = total_num_samples

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        epoch = _epoch(trial.last_result)
        if epoch:
            self._line(f"trial {trial.trial_id} continues after epoch {epoch}")
        else:
            self._line(f"trial {trial.trial_id} started: {describe_config(trial.config)}")

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: Mapping[str, Any], **info: Any
    ) -> None:
        self._new_results = True

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        ended = self._ended(trials, trial)
        if result.get("final"):
            values = "  ".join(
                f"{m} {result[m]:.4f}" for m in self.objectives if _is_number(result.get(m))
            )
            self._line(f"trial {trial.trial_id} completed ({ended}): {values}".rstrip(": "))
        elif result.get("done"):
            self._line(
                f"trial {trial.trial_id} stopped early after epoch {_epoch(result)} ({ended})"
            )

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(f"trial {trial.trial_id} failed, retrying: {_error(trial)}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        ended = self._ended(trials, trial)
        self._line(f"trial {trial.trial_id} failed ({ended}): {_error(trial)}")

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if not self._new_results or self.clock() - self._last_line < self.every_s:
            return
        running = [t for t in trials if t.status == "RUNNING"]
        if not running:
            return
        epochs = ", ".join(
            f"{t.trial_id} epoch {_epoch(t.last_result) or 0}/{t.config.get('epochs', '?')}"
            for t in running
        )
        self._line(f"{self._ended(trials)} ended; running: {epochs}")

    def _ended(self, trials: Sequence[Any], trial: Any = None) -> str:
        """How many trials have ended, ``trial`` included (Ray Tune calls the end hooks before
        it sets the ending trial's own status), of how many planned."""
        count = sum(t.status in ("TERMINATED", "ERROR") or t is trial for t in trials)
        return f"{count} of {self.planned}" if self.planned else str(count)

    def _line(self, text: str) -> None:
        self._last_line = self.clock()
        self._new_results = False
        self.write(f"{self.now():%H:%M:%S}  {text}")


def describe_config(config: Mapping[str, Any]) -> str:
    """A trial config in a few words: model, method and curriculum, as the front tables say."""
    parts = [config.get("model"), config.get("method"), curriculum_summary(config)["curriculum"]]
    return " ".join(str(p) for p in parts if p)


def _epoch(result: Mapping[str, Any] | None) -> int | None:
    epoch = (result or {}).get("epoch")
    return int(epoch) if _is_number(epoch) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _error(trial: Any) -> str:
    """The exception line of the trial's ``error.txt`` (Ray logs the whole traceback too)."""
    try:
        with open(trial.error_file, errors="replace") as file:
            return error_line(file.read()) or "no error message"
    except (OSError, TypeError):  # no error file (yet)
        return "see the log above"


__all__ = ["ProgressLines", "describe_config"]
