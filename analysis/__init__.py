"""What a search found: read experiment directories, compute fronts and hypervolumes, plot,
report, export the front's models.

Works from the files alone (no running Ray): ``job.yaml``, Ray Tune's ``experiment_state-*.json``
and the trial directories (``params.json``, ``result.json``, ``error.txt``, checkpoints), also
while a search runs or after it was interrupted.

    from analysis import load_experiment, write_report, export_front, load_model

    experiment = load_experiment("~/cusp-tune-results/quickstart")
    experiment.front()                       # the Pareto front of the job's objectives
    write_report([experiment.path], "report/")  # report.md, CSV tables, PNG plots
    export_front(experiment.path, "models/")    # one directory per front model
    model = load_model("models/<trial_id>")     # plain torch module, eval mode

Modules: :mod:`analysis.pareto` (non-dominated sets), :mod:`analysis.hypervolume` (exact
hypervolume, over trials and time), :mod:`analysis.experiment` (loading),
:mod:`analysis.plots`, :mod:`analysis.report`, :mod:`analysis.export`. The plotting, report and
export modules are imported on first use (matplotlib and torch load only when needed).
``analysis.hypervolume`` is the function (re-exported here); import the module's other names
with ``from analysis.hypervolume import ...``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analysis.experiment import Experiment, load_experiment, require_results
from analysis.hypervolume import (
    default_reference,
    hypervolume,
    hypervolume_over_time,
    hypervolume_over_trials,
    reference_point,
)
from analysis.pareto import completed_trials, non_dominated, non_dominated_mask

if TYPE_CHECKING:
    from analysis.export import FrontExport, evaluate_exported, export_front, load_model
    from analysis.plots import plot_front, plot_hypervolume, plot_profiles, plot_tradeoffs
    from analysis.report import (
        ReportFiles,
        compare,
        default_report_dir,
        format_failures,
        format_front_table,
        write_report,
    )

_LAZY = {
    "FrontExport": "analysis.export",
    "evaluate_exported": "analysis.export",
    "export_front": "analysis.export",
    "load_model": "analysis.export",
    "plot_front": "analysis.plots",
    "plot_hypervolume": "analysis.plots",
    "plot_profiles": "analysis.plots",
    "plot_tradeoffs": "analysis.plots",
    "ReportFiles": "analysis.report",
    "compare": "analysis.report",
    "default_report_dir": "analysis.report",
    "format_failures": "analysis.report",
    "format_front_table": "analysis.report",
    "write_report": "analysis.report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")


__all__ = [
    "Experiment",
    "FrontExport",
    "ReportFiles",
    "compare",
    "completed_trials",
    "default_reference",
    "default_report_dir",
    "evaluate_exported",
    "export_front",
    "format_failures",
    "format_front_table",
    "hypervolume",
    "hypervolume_over_time",
    "hypervolume_over_trials",
    "load_experiment",
    "load_model",
    "non_dominated",
    "non_dominated_mask",
    "plot_front",
    "plot_hypervolume",
    "plot_profiles",
    "plot_tradeoffs",
    "reference_point",
    "require_results",
    "write_report",
]
