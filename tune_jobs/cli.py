"""The ``cusp-tune`` command line.

Each sub-command is a small function ``(args) -> int``. A ``UserError`` anywhere becomes one line
on stderr and exit code 2; this module is the only place that prints.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from trainables.errors import UserError
from tune_jobs._overrides import load_yaml_mapping, parse_overrides

PROG = "cusp-tune"


def _format_epoch(metrics: dict[str, Any], epochs: int) -> str:
    return (
        f"epoch {metrics['epoch']:>3}/{epochs}  "
        f"theta {metrics['theta']:5.1f}  eps {metrics['eps']:.4f}  lr {metrics['lr']:.4g}  "
        f"loss {metrics['loss']:.4f}  clean {metrics['clean_acc']:.3f}  "
        f"spatial {metrics['spatial_acc']:.3f}  adv {metrics['adv_acc']:.3f}  "
        f"combined {metrics['combined_acc']:.3f}  inv {metrics['invariance_rate']:.3f}  "
        f"{metrics['epoch_time_s']:.1f}s"
    )


# Keys only a job spec has (a trial config is flat); a dataset given as a mapping is a job's too.
JOB_KEYS = (
    "name",
    "search",
    "objectives",
    "training",
    "evaluation",
    "resources",
    "scheduler",
    "storage",
    "checkpoint",
    "failure",
)


TRIALS_DIR = Path(__file__).parent / "trials"


def _trial_values(path: str | None) -> dict[str, Any]:
    """Flat trial settings from a trial config (a path or a shipped one's name: cusp-digits),
    or the fixed settings of a job spec (a path or a shipped job's name)."""
    if not path:
        return {}
    shipped_trial = TRIALS_DIR / (path if path.endswith(".yaml") else f"{path}.yaml")
    if not Path(path).exists() and "/" not in path and shipped_trial.is_file():
        return load_yaml_mapping(shipped_trial)
    if not Path(path).is_file() and "/" not in path:  # a shipped job's name, or a typo
        from tune_jobs.spec import JOBS_DIR, find_job, list_jobs

        if Path(path).suffix == "" and not (JOBS_DIR / f"{path}.yaml").is_file():
            trials = sorted(p.stem for p in TRIALS_DIR.glob("*.yaml"))
            close = difflib.get_close_matches(path, [*trials, *list_jobs()], n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(
                f"no trial or job file {path!r}; {hint}give a path to a YAML file, a shipped "
                f"trial config ({', '.join(trials)}) or a shipped job ({', '.join(list_jobs())})"
            )
        if Path(path).suffix == "" or (JOBS_DIR / path).is_file():
            path = str(find_job(path))
    raw = load_yaml_mapping(path)
    if any(key in raw for key in JOB_KEYS) or isinstance(raw.get("dataset"), dict):
        from tune_jobs.spec import load_job

        return load_job(path).trial_config()
    return raw


def cmd_train(args: argparse.Namespace) -> int:
    """Train and evaluate one model, without Ray."""
    from tqdm import tqdm

    from trainables.config import TrialConfig
    from trainables.curriculum import curriculum_label
    from trainables.datasets import load_dataset
    from trainables.plugins import check_plugins, import_plugins
    from trainables.trial import Trial

    values = _trial_values(args.config)
    values.update(parse_overrides(args.set or []))
    import_plugins(check_plugins(values.pop("plugins", None)))
    config = TrialConfig.from_dict(values)
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; choose a new directory")
    if out is not None and out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out} exists and is not empty; choose a new directory")
    dataset = load_dataset(config.dataset, config.data_dir, download=config.download)
    trial = Trial(config, dataset)
    print(
        f"training {config.model} on {config.dataset} ({trial.train_images.shape[0]} images) "
        f"for {config.epochs} epochs on {trial.device}, method {config.method}, "
        f"curriculum {curriculum_label(trial.curriculum)}",
        flush=True,
    )
    metrics: dict[str, Any] = {}
    with tqdm(total=config.epochs, desc="epochs", unit="epoch", file=sys.stderr) as bar:
        for metrics in trial.epochs():
            bar.update(1)
            tqdm.write(_format_epoch(metrics, config.epochs), file=sys.stdout)
    print("final metrics (full test set):")
    for key, value in metrics.items():
        evaluated = "acc" in key and not key.startswith("train_") or key == "invariance_rate"
        if isinstance(value, float) and evaluated:
            print(f"  {key:<22} {value:.4f}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        trial.save(out)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        print(f"checkpoint and metrics written to {out}")
    return 0


def _print_outcome(outcome: Any, live: bool = False) -> None:
    """The front of a search and, when it is not complete, how to continue it (``live``: it
    may still be running, as far as its files can tell)."""
    from analysis import format_front_table

    table = outcome.trials
    done = int(table["final"].sum()) if len(table) else 0
    stopped = int(table["stopped"].sum()) if len(table) else 0
    early = f" ({stopped} stopped early)" if stopped else ""
    print(
        f"\n{done} of {outcome.planned} trials completed{early}; Pareto front of "
        + ", ".join(f"{m} ({mode})" for m, mode in outcome.objectives)
        + ":"
    )
    print(format_front_table(outcome.front, outcome.objectives))
    print(f"experiment: {outcome.experiment_path}")
    if outcome.failed:
        print(
            f"{outcome.failed} trial(s) failed; their error.txt says why "
            f"(cusp-tune analyze lists them)"
        )
    if not outcome.finished:
        when = " once its driver has stopped" if live else ""
        print(f"the search is not complete; continue it{when} with:")
        print(f"  cusp-tune resume {outcome.experiment_path}")


def _search_summary(search: Any) -> str:
    """``grid of 14 points over model, theta_max`` or ``8 trials of preset joint (nsga2)``."""
    if search.grid:
        return f"grid of {search.trials} points over {', '.join(search.grid)}"
    return f"{search.trials} trials of preset {search.preset} ({search.sampler})"


def cmd_launch(args: argparse.Namespace) -> int:
    """Start a search from a job spec."""
    from tune_jobs import runner
    from tune_jobs.spec import load_job

    overrides = parse_overrides(args.set or [])
    for option in ("name", "storage"):
        value = getattr(args, option)
        if value is None:
            continue
        if option in overrides:
            raise UserError(f"--{option} and --set {option}=... both given; keep one")
        overrides[option] = value
    spec = load_job(args.job, overrides)

    search = spec.search
    what = _search_summary(search)

    def announce() -> None:
        print(
            f"search {spec.name}: {what}, {search.max_concurrent} at a time; "
            f"experiment {spec.experiment_path}",
            flush=True,
        )
        _sigterm_as_ctrl_c()

    with _resume_hint_on_interrupt(spec.experiment_path):
        outcome = runner.launch(
            spec, address=args.address, callbacks=_progress(spec), on_start=announce
        )
    _print_outcome(outcome)
    return _exit_code(outcome)


def cmd_resume(args: argparse.Namespace) -> int:
    """Continue an interrupted search."""
    from tune_jobs import runner

    path = runner.experiment_location(args.experiment)
    spec = runner.read_job(path)

    def announce() -> None:
        print(f"resuming search {spec.name}; experiment {path}", flush=True)
        _sigterm_as_ctrl_c()

    with _resume_hint_on_interrupt(path):
        outcome = runner.resume(
            path, address=args.address, callbacks=_progress(spec), on_start=announce
        )
    _print_outcome(outcome)
    return _exit_code(outcome)


def _progress(spec: Any) -> list[Any]:
    """A line per trial event while a search runs (Ray Tune's own tables are off)."""
    from tune_jobs.progress import ProgressLines

    return [ProgressLines(lambda line: print(line, flush=True), spec.metrics)]


def _without_ray_resume_advice(record: logging.LogRecord) -> bool:
    """Drop Ray Tune's "Resume experiment with: Tuner.restore(...)": we print our command."""
    return not record.getMessage().startswith("Experiment has been interrupted")


def _not_snapshot_advice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Experiment state snapshotting has been triggered")


def _sigterm_as_ctrl_c() -> None:
    """From now on, SIGTERM (``ray job stop``, a batch scheduler's time limit) stops the search
    as Ctrl-C does: Ray Tune saves its state, and ``resume`` continues it. Installed once Ray
    runs, since ``ray.init`` replaces the handler."""
    signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))


@contextlib.contextmanager
def _resume_hint_on_interrupt(path: str) -> Iterator[None]:
    """A second Ctrl-C skips Ray Tune's orderly stop; say how to continue what was saved (and
    only in our words: Ray's advice to call ``Tuner.restore`` is dropped)."""
    from tune_jobs import runner

    logging.getLogger("ray.tune.tune").addFilter(_without_ray_resume_advice)
    try:
        yield
    except KeyboardInterrupt:
        if runner.can_resume(path):
            print(f"{PROG}: interrupted; continue the search with: cusp-tune resume {path}")
        raise


def _exit_code(outcome: Any) -> int:
    """0 when every trial ended without an error; 1 when the search was interrupted (Ray Tune
    catches Ctrl-C itself) or a trial failed."""
    return 0 if outcome.finished and not outcome.failed else 1


LISTABLE = ("jobs", "models", "datasets", "presets", "schedules")


def cmd_list(args: argparse.Namespace) -> int:
    from trainables.plugins import check_plugins, import_plugins

    import_plugins(check_plugins(args.plugins or [], "--plugins"), "--plugins")
    for index, what in enumerate([args.what] if args.what else LISTABLE):
        header, rows = _LISTINGS[what]()
        print(("\n" if index else "") + header)
        width = max((len(row[0]) for row in rows), default=0)
        for name, text in rows:
            print(f"  {name:<{width}}  {text}".rstrip())
    return 0


def _list_jobs() -> tuple[str, list[tuple[str, str]]]:
    from tune_jobs.spec import find_job, list_jobs, load_job

    rows = []
    for name in list_jobs():
        spec = load_job(find_job(name))
        models = ", ".join(spec.search.grid.get("model", spec.models))
        how = _search_summary(spec.search)
        rows.append((name, f"{spec.dataset}, {models}: {how}, {spec.epochs} epochs"))
    return "jobs (cusp-tune launch NAME; the files are in tune_jobs/jobs/):", rows


def _list_models() -> tuple[str, list[tuple[str, str]]]:
    from trainables.models import get_model_spec, list_models

    rows = []
    for name in list_models():
        spec = get_model_spec(name)
        sizes = "/".join(map(str, spec.image_sizes))
        channels = "/".join(map(str, spec.in_channels))
        facts = [f"{sizes} px, {channels} channels"]
        if spec.group:
            facts.append(f"{spec.group}-invariant")
        if spec.options:
            facts.append(f"options: {', '.join(spec.options)}")
        rows.append((name, f"{spec.description} [{'; '.join(facts)}]"))
    return "models (model: in a job; model_width sets the width option):", rows


def _list_datasets() -> tuple[str, list[tuple[str, str]]]:
    from trainables.datasets import dataset_info, list_datasets

    rows = []
    for name in list_datasets():
        info = dataset_info(name)
        size = f"{info.image_size}x{info.image_size}x{info.channels}"
        rows.append((name, f"{size}, {info.num_classes} classes, eps scale {info.eps_scale:.4g}"))
    return "datasets (dataset.name: in a job):", rows


def _list_presets() -> tuple[str, list[tuple[str, str]]]:
    from search_spaces import get_preset, list_presets

    rows = [(name, get_preset(name).summary) for name in list_presets()]
    return "search space presets (search.preset: in a job):", rows


def _list_schedules() -> tuple[str, list[tuple[str, str]]]:
    from trainables.curriculum import SCHEDULE_KINDS

    rows = [
        (name, "keys: " + ", ".join(f"<axis>_{key}" for key in kind.keys))
        for name, kind in SCHEDULE_KINDS.items()
    ]
    return "schedule kinds (theta_schedule, eps_schedule, translate_schedule):", rows


_LISTINGS = {
    "jobs": _list_jobs,
    "models": _list_models,
    "datasets": _list_datasets,
    "presets": _list_presets,
    "schedules": _list_schedules,
}


def cmd_status(args: argparse.Namespace) -> int:
    """Trials completed / stopped early / failed / in progress (interrupted, when no driver
    runs the search), best values so far and the current front."""
    from tune_jobs import runner

    status = runner.status(args.experiment)
    counts = ", ".join(f"{n} {stage}" for stage, n in status.counts.items())
    print(f"{status.experiment_path}: {status.total} of {status.planned} trials started ({counts})")
    for metric, mode in status.outcome.objectives:
        best = status.best.get(metric)
        print(f"  best {metric} ({mode}): " + ("-" if best is None else f"{best:.4f}"))
    _print_outcome(status.outcome, live=status.driver_running is not False)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    """Submit the launch of a search as a Ray Job to a cluster's head."""
    from tune_jobs import runner

    job_id = runner.submit(args.job, args.address, parse_overrides(args.set or []))
    print(f"submitted Ray job {job_id} to {args.address}")
    print(f"follow its logs: ray job logs --address {args.address} --follow {job_id}")
    print(f"its status:      ray job status --address {args.address} {job_id}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    """Fronts, hypervolume, plots and a report of one or more experiments."""
    from analysis import (
        default_report_dir,
        format_failures,
        format_front_table,
        load_experiment,
        write_report,
    )
    from analysis.experiment import display_names

    if len(args.experiments) > 1 and not args.out:
        raise UserError(
            "comparing several experiments needs --out DIR (the default, EXPERIMENT/report, "
            "is each experiment's own report)"
        )
    experiments = [load_experiment(path) for path in args.experiments]
    files = write_report(experiments, args.out or default_report_dir(args.experiments[0]))
    for name, experiment in zip(display_names(experiments), experiments, strict=True):
        print(f"{name}: Pareto front")
        print(format_front_table(experiment.front(), experiment.objectives))
        failures = format_failures(experiment.trials)
        if failures:
            print(f"{int(experiment.trials['error'].notna().sum())} trial(s) failed:")
            for line in failures:
                print(f"  {line}")
    print(f"report written to {files.report} (with front.csv, trials.csv and the plots)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export the front's models, loadable with ``analysis.load_model``."""
    from analysis import export_front

    result = export_front(args.experiment, args.out)
    for warning in result.warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    for path in result:
        print(path)
    print(f"load one with: analysis.load_model('{Path(args.out) / '<trial_id>'}')")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Full evaluation of one exported model."""
    from analysis import evaluate_exported

    profile = None if args.profile == "none" else args.profile
    metrics = evaluate_exported(
        args.checkpoint,
        profile=profile,
        device=args.device,
        test_size=args.test_size,
        data_dir=args.data_dir,
        pgd_steps=args.pgd_steps,
        pgd_step_size=args.pgd_step_size,
        worst_case=args.worst_case,
        worst_case_combined=args.worst_case_combined,
    )
    for key, value in metrics.items():
        print(f"  {key:<28} {value:.4f}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Multi-objective searches over spatial/adversarial robustness curricula.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    train = commands.add_parser(
        "train",
        help="train and evaluate one model (no search)",
        description="Train one model on one curriculum and print its robustness metrics.",
    )
    train.add_argument(
        "config",
        nargs="?",
        help="trial settings: a YAML file (flat key: value mapping), the shipped cusp-digits, "
        "or a job spec (its fixed settings)",
    )
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set epochs=3 --set theta_max=90 (repeatable)",
    )
    train.add_argument("--out", help="directory to write the checkpoint and metrics.json")
    train.set_defaults(func=cmd_train)

    launch = commands.add_parser(
        "launch",
        help="start a multi-objective search from a job spec",
        description="Run the search a job spec describes and print its Pareto front.",
    )
    launch.add_argument("job", help="job spec: a YAML path or a shipped job's name (quickstart)")
    launch.add_argument("--name", help="experiment name (default: the job's name)")
    launch.add_argument("--storage", help="where experiments live: a directory or s3:// gs:// URI")
    launch.add_argument(
        "--address", help="Ray cluster to connect to (default: $RAY_ADDRESS, else a local Ray)"
    )
    launch.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a job key by its dotted path, e.g. --set search.trials=4 (repeatable)",
    )
    launch.set_defaults(func=cmd_launch)

    resume = commands.add_parser(
        "resume",
        help="continue an interrupted search",
        description="Continue a search: finished trials are kept, unfinished ones continue "
        "from their last checkpoint, and the trial budget stays the one asked for.",
    )
    resume.add_argument("experiment", help="the experiment directory (or URI) launch printed")
    resume.add_argument("--address", help="Ray cluster to connect to")
    resume.set_defaults(func=cmd_resume)

    listing = commands.add_parser(
        "list",
        help="the shipped jobs and the registered models, datasets, presets and schedules",
        description="List what a job can name: the shipped jobs, and the registered models, "
        "datasets, search space presets and schedule kinds (with your plugins' registrations).",
    )
    listing.add_argument("what", nargs="?", choices=LISTABLE, help="list only these")
    listing.add_argument(
        "--plugins",
        nargs="+",
        metavar="MODULE",
        help="import these modules first (as a job's plugins: key does)",
    )
    listing.set_defaults(func=cmd_list)

    status = commands.add_parser(
        "status",
        help="progress, best values and current front of an experiment",
        description="Trials completed, stopped early, failed and in progress, the best value of "
        "each objective and the current Pareto front, read from the experiment's files (works "
        "while the search runs).",
    )
    status.add_argument("experiment", help="the experiment directory")
    status.set_defaults(func=cmd_status)

    submit = commands.add_parser(
        "submit",
        help="submit a search as a Ray Job to a remote cluster",
        description="Submit `cusp-tune launch JOB` as a Ray Job to the cluster's job server.",
    )
    submit.add_argument("job", help="job spec: a YAML path or a shipped job's name")
    submit.add_argument(
        "--address", required=True, help="the head's job server, e.g. http://HEAD:8265"
    )
    submit.add_argument("--set", action="append", metavar="KEY=VALUE", help="job overrides")
    submit.set_defaults(func=cmd_submit)

    analyze = commands.add_parser(
        "analyze",
        help="fronts, hypervolume, plots and report.md of experiments",
        description="Write front.csv, trials.csv, the plots and report.md, and print the fronts. "
        "Works on finished, running or interrupted experiments, without Ray.",
    )
    analyze.add_argument("experiments", nargs="+", metavar="EXPERIMENT")
    analyze.add_argument(
        "--out", help="output directory (default: EXPERIMENT/report; needed for several)"
    )
    analyze.set_defaults(func=cmd_analyze)

    export = commands.add_parser(
        "export",
        help="export the front's models",
        description="Write each front model's weights, config and final metrics to its own "
        "directory under --out, loadable with analysis.load_model.",
    )
    export.add_argument("experiment")
    export.add_argument("--out", required=True, help="directory for the exported models")
    export.set_defaults(func=cmd_export)

    evaluate = commands.add_parser(
        "evaluate",
        help="every metric and profile of one exported model",
        description="Evaluate an exported model with every metric and the rotation and/or eps "
        "profiles, on the test images its search used (--test-size N for another number).",
    )
    evaluate.add_argument("checkpoint", help="an exported model directory (or its model.pt)")
    evaluate.add_argument(
        "--profile",
        choices=["rotation", "eps", "both", "none"],
        default="both",
        help="add the invariance (rotation) and/or robustness (eps) profile",
    )
    evaluate.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    evaluate.add_argument(
        "--test-size",
        type=_positive_int,
        help="evaluate on the first N test images (default: as many as the search used)",
    )
    evaluate.add_argument(
        "--data-dir",
        help="where the dataset is on this machine (default: the data_dir the model was "
        "trained with)",
    )
    evaluate.add_argument(
        "--pgd-steps",
        type=_positive_int,
        help="PGD steps for adv_acc, combined_acc and the eps profile (default: the search's); "
        "e.g. 100 for MNIST's usual evaluation",
    )
    evaluate.add_argument(
        "--pgd-step-size",
        type=_positive_float,
        help="PGD step size (default with --pgd-steps: the dataset's, 0.01 or 2/255, from its "
        "40 / 10 steps up; for fewer steps the one that keeps their total travel)",
    )
    evaluate.add_argument(
        "--worst-case",
        choices=["random", "grid"],
        default="random",
        help="Engstrom et al.'s spatial attack (+-30 deg, +-3 px): worst of 10 random "
        "transforms (worst_case_spatial_acc) or the exhaustive 31 x 5 x 5 grid "
        "(worst_case_spatial_acc_grid)",
    )
    evaluate.add_argument(
        "--worst-case-combined",
        action="store_true",
        help="also worst_case_combined_acc: PGD on top of each of 10 random transforms "
        "(+-30 deg, +-3 px), right only when right under all (Engstrom et al.; 10x the PGD cost)",
    )
    evaluate.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(build_parser().parse_args(argv))
    except BrokenPipeError:  # `cusp-tune status EXP | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _run(args: argparse.Namespace) -> int:
    # Searches print their own progress lines (ProgressLines); Ray Tune's newer output engine
    # prints a "Configuration for experiment" box at every start even with verbose=0.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # Ray Tune's notes on where it wrote its files (we say where the experiment is) and its
        # advice on `CheckpointConfig(num_to_keep)` when epochs are short (a setting of its
        # Python API; README: checkpoint.every for searches on object storage)
        logging.getLogger("ray.tune").setLevel(logging.WARNING)
        logging.getLogger("ray.tune.execution.experiment_state").addFilter(_not_snapshot_advice)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
