"""Running a search on Ray Tune: connect, build the Tuner from a job spec, launch and resume.

The driver loads the dataset once and hands it to every trial through the Ray object store
(``tune.with_parameters``). The searcher is a multi-objective ``OptunaSearch``: the space, the
metrics and the modes go to the searcher and *not* to ``TuneConfig`` (setting them there too
silently makes the study single-objective). The job spec is saved as ``job.yaml`` in the
experiment directory, so ``resume``, ``status`` and the analysis need nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from analysis.experiment import has_scheduler
from analysis.pareto import non_dominated
from trainables.errors import UserError
from trainables.plugins import local_plugin_paths
from tune_jobs._checkpoints import PruneFinishedCheckpoints
from tune_jobs._optuna import JOURNAL_FILE, JournaledOptunaSearch, sync_journal
from tune_jobs.schedulers import SchedulerStateCallback, make_scheduler

if TYPE_CHECKING:
    from ray import tune

    from tune_jobs.spec import JobSpec

logger = logging.getLogger(__name__)

JOB_FILE = "job.yaml"
LOCK_FILE = "driver.lock"


@dataclass(frozen=True)
class SearchOutcome:
    """What :func:`launch` and :func:`resume` return: the search's trials and front."""

    experiment_path: str
    trials: pd.DataFrame  # one row per trial: id, status, curriculum, objectives, metrics
    front: pd.DataFrame  # the non-dominated completed trials
    objectives: tuple[tuple[str, str], ...]
    finished: bool  # every planned trial has ended: completed, stopped early or failed
    planned: int  # trials the search asked for
    failed: int = 0  # trials that ended with an error


def connect(address: str | None = None, plugins: Iterable[str] = ()) -> None:
    """Connect to the cluster at ``address`` (or ``RAY_ADDRESS``), or start a local Ray.

    The ``plugins`` that live in the current directory travel to the cluster's nodes with the
    connection (Ray's ``py_modules``), so its other machines can import them; installed ones
    must be installed there too. A local Ray serves no dashboard web UI. A ``host:port`` or
    ``ray://host:port`` address is first checked to accept connections and not to be a web
    server such as the dashboard's port (Ray itself retries an unreachable one for minutes, and
    waits for ever on a web server).

    Ray stays connected afterwards (``ray.shutdown()`` ends it), and later calls in the process
    use that connection; asking one of them for another ``address`` is an error. A script that
    connects by itself sends its plugins with
    ``ray.init(address, runtime_env={"py_modules": local_plugin_paths(plugins)})``.

    Raises:
        UserError: the address is malformed, a job server (http://, or a web server's
            port), unreachable, or differs from the cluster this process is already connected
            to; or the plugins exceed the size Ray sends with a connection (512 MiB).
    """
    import ray

    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        if address and not _same_address(address, current):
            raise UserError(
                f"this process is already connected to the Ray at {current}; call "
                f"ray.shutdown() before connecting to {address}"
            )
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address and address.lower().startswith(("http://", "https://")):
        raise UserError(
            f"{address} is a job server; launch and resume need the cluster's Ray address "
            "(HOST:6379, ray://HOST:10001 or auto), or send the job there with `cusp-tune submit`"
        )
    try:
        if address:
            _check_reachable(address)
            shipped = [str(path) for path in local_plugin_paths(plugins)]
            runtime_env = {"py_modules": shipped} if shipped else None
            ray.init(address=address, log_to_driver=False, runtime_env=runtime_env)
        else:
            # "local": a new instance of our own, never whatever cluster runs on the machine.
            ray.init(
                address="local",
                dashboard_host="127.0.0.1",
                include_dashboard=False,
                log_to_driver=False,
            )
    except UserError:
        raise
    except ValueError as exc:  # Ray's parsing of the address, or a plugin too big to ship
        if str(exc).startswith("Package size"):
            raise UserError(f"the plugins cannot be sent to the cluster: {exc}") from None
        raise UserError(
            f"--address {address!r} is not a Ray address ({exc}); give HOST:PORT, "
            "ray://HOST:PORT or auto"
        ) from None
    except ConnectionError as exc:
        # Ray says plainly when it found no cluster; otherwise a missing token is a likely cause
        found = "Could not find any running Ray instance" not in str(exc)
        hint = (
            " (on a cluster with token authentication, set RAY_AUTH_MODE=token and copy its "
            "~/.ray/auth_token here)"
            if found
            else ""
        )
        raise UserError(f"cannot connect to the Ray cluster at {address}: {exc}{hint}") from None


def _same_address(address: str, gcs_address: str) -> bool:
    """Whether ``address`` may name the cluster at ``gcs_address`` (``auto`` and Ray Client
    ``ray://`` addresses, which name a different port, are given the benefit of the doubt)."""
    import socket

    if address == "auto" or address.startswith("ray://"):
        return True

    def resolved(host_port: str) -> tuple[str, str]:
        host, _, port = host_port.rpartition(":")
        try:
            return socket.gethostbyname(host.strip("[]")), port
        except OSError:
            return host, port

    return resolved(address) == resolved(gcs_address)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Raise ``ConnectionError`` when nothing accepts connections at a ``host:port`` address,
    and ``UserError`` when a web server does (``auto`` and ``local`` are left to Ray)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        connection = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s)
    except OSError as exc:
        raise ConnectionError(
            f"nothing accepts connections at {host}:{port} ({exc.strerror or exc}); check "
            "--address or RAY_ADDRESS"
        ) from None
    with connection:
        web = _answers_http(connection)
    if web:  # Ray would wait for a GCS there for ever (over 10 minutes measured)
        raise UserError(
            f"{address} is a web server (the dashboard or job server?), not the cluster's Ray "
            f"address; give the head's GCS port (`ray start --head --port`, HOST:6379 by "
            f"default) or auto, or send the job there with `cusp-tune submit --address "
            f"http://{host}:{port}`"
        )


def _answers_http(connection: Any, wait_s: float = 1.0) -> bool:
    """Whether the server on ``connection`` speaks HTTP/1 (a dashboard, a job server) rather
    than gRPC: Ray's GCS and client server send an HTTP/2 frame unprompted; a web server
    stays silent, then answers a ``GET`` with ``HTTP/``. Anything else (a TLS server) is left
    to Ray."""
    try:
        connection.settimeout(wait_s)
        try:
            if connection.recv(1):
                return False  # it spoke first: gRPC's HTTP/2 settings
        except TimeoutError:
            pass
        connection.sendall(b"GET / HTTP/1.0\r\nHost: ray\r\n\r\n")
        return connection.recv(16).startswith(b"HTTP/")
    except OSError:
        return False


def _connect_and_check(spec: JobSpec, address: str | None) -> None:
    """:func:`connect`, then :func:`check_resources` when that started a local Ray."""
    import ray

    starts_local = not (address or os.environ.get("RAY_ADDRESS") or ray.is_initialized())
    connect(address, spec.plugins)
    if starts_local:
        check_resources(spec)


def check_resources(spec: JobSpec) -> None:
    """Fail when a trial asks for more CPUs or GPUs than the connected Ray has in all (only
    meaningful for a local Ray: a cluster's autoscaler may add nodes later)."""
    import ray

    available = ray.cluster_resources()
    for key, asked in spec.resources.as_ray().items():
        have = available.get(key.upper(), 0.0)
        if asked > have:
            fix = "0" if have == 0 else f"at most {have:g}"
            raise UserError(
                f"each trial asks for resources.{key}={asked:g} but this machine's Ray has "
                f"{have:g} {key.upper()}s; set resources.{key} to {fix} (--set "
                f"resources.{key}=...) or run on a cluster with --address"
            )


def _trainable(spec: JobSpec, dataset: Any) -> Any:
    from ray import tune

    from trainables.trainable import train_trial

    trainable = tune.with_parameters(train_trial, dataset=dataset.to_shared(), plugins=spec.plugins)
    return tune.with_resources(trainable, spec.resources.as_ray())


def _searcher(spec: JobSpec, journal_path: str | None) -> Any:
    from ray.tune.search import ConcurrencyLimiter

    paper = spec.paper_point()
    searcher = JournaledOptunaSearch(
        space=spec.make_space(),
        metric=list(spec.metrics),
        mode=list(spec.modes),
        sampler=spec.search.make_sampler(),
        points_to_evaluate=[paper] if paper else None,
        journal_path=journal_path,
    )
    return ConcurrencyLimiter(searcher, max_concurrent=spec.search.max_concurrent)


def trial_dirname(trial: Any) -> str:
    """Short trial directory names (Tune's default spells out the whole config)."""
    return f"trial_{trial.trial_id}"


def _run_config(spec: JobSpec, callbacks: list | None = None, stop: Any = None) -> tune.RunConfig:
    from ray import tune

    return tune.RunConfig(
        stop=stop,
        name=spec.name,
        storage_path=spec.storage,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=spec.checkpoint.keep),
        failure_config=tune.FailureConfig(max_failures=spec.failure.max_retries),
        callbacks=callbacks,
        verbose=0,  # Ray Tune's tables: about 65 lines a trial (progress.ProgressLines says less)
    )


def _add_run_callbacks(tuner: tune.Tuner, callbacks: Sequence[Any]) -> None:
    """Give ``tuner`` ``callbacks`` for this run only, and keep Ray Tune's tables off.

    Ray Tune pickles ``RunConfig(callbacks=...)`` with the experiment when the Tuner is made,
    and a resumed search gets those back: a launch's progress printer would print in a
    resume from Python, and a resume could not bring its own. Callbacks added here, after
    that, are not saved: each run gets its caller's. They go after the saved ones, whose
    states Ray Tune restores by position. (Searches launched before Ray Tune's tables were
    turned off are resumed without them too.) Under Ray Client the Tuner runs on the head:
    the callbacks run there, and what they print goes to that process's log on the head.
    Every run also prunes the checkpoints of its ended trials (:class:`PruneFinishedCheckpoints`).
    """
    import ray

    client = tuner._is_ray_client
    remote = tuner._remote_tuner if client else None
    run_config = (
        ray.get(remote.get_run_config.remote()) if client else tuner._local_tuner.get_run_config()
    )
    run_config.verbose = 0
    run_config.callbacks = [*(run_config.callbacks or []), *callbacks, PruneFinishedCheckpoints()]
    if client:
        ray.get(remote.set_run_config_and_remote_string_queue.remote(run_config, None))


def build_tuner(
    spec: JobSpec, dataset: Any, callbacks: list | None = None, stop: Any = None
) -> tune.Tuner:
    """The Tuner of a search (no metric or mode in ``TuneConfig``: see the module docstring).

    ``stop`` is Ray Tune's ``RunConfig(stop=...)`` (a ``tune.Stopper``, a dict or a function),
    e.g. to end a search after a budget of epochs rather than of trials.
    """
    from ray import tune

    path = spec.experiment_path
    param_space = {**spec.trial_config(), "checkpoint_every": spec.checkpoint.every}
    # asha's metric and mode go to the scheduler, never to TuneConfig (see the module docstring)
    scheduler = make_scheduler(spec.scheduler, spec.objectives, spec.epochs)
    if spec.search.grid:  # a trade-off study: every grid point once, no Optuna
        param_space.update({k: tune.grid_search(v) for k, v in spec.search.grid.items()})
        tune_config = tune.TuneConfig(
            scheduler=scheduler,
            num_samples=1,
            max_concurrent_trials=spec.search.max_concurrent,
            reuse_actors=True,
            trial_dirname_creator=trial_dirname,
        )
    else:
        journal = None if "://" in path else str(Path(path) / JOURNAL_FILE)
        tune_config = tune.TuneConfig(
            search_alg=_searcher(spec, journal),
            scheduler=scheduler,
            num_samples=spec.search.trials,
            reuse_actors=True,
            trial_dirname_creator=trial_dirname,
        )
    return tune.Tuner(
        _trainable(spec, dataset),
        param_space=param_space,
        tune_config=tune_config,
        # Tune saves no scheduler state with the experiment; this callback does (for resume)
        run_config=_run_config(
            spec, [*(callbacks or []), SchedulerStateCallback(scheduler)], stop=stop
        ),
    )


def load_search_dataset(spec: JobSpec) -> Any:
    """The dataset every trial of the search trains on, loaded once by the driver."""
    from trainables.datasets import load_dataset

    trial = spec.trial_config()
    dataset = load_dataset(
        trial.get("dataset", "synthetic-digits"),
        trial.get("data_dir"),
        download=bool(trial.get("download", False)),
    )
    # Cut once here, so trials share the images they use instead of each copying a subset.
    dataset = dataset.subset(trial.get("train_size"), trial.get("test_size"))
    for key, have in (("train_size", dataset.num_train), ("test_size", dataset.num_test)):
        asked = [v for v in spec.search.grid.get(key, ()) if v is not None]
        if asked and max(asked) > have:
            raise UserError(
                f"search.grid.{key} asks for {max(asked)} images but {dataset.info.name} has "
                f"{have}; keep its values at most {have}"
            )
    return dataset


def experiment_location(path: str) -> str:
    """An experiment path as given on the command line, made canonical: a local path (or a
    ``file://`` URI) absolute with symlinks resolved, an object store URI unchanged."""
    path = path.removeprefix("file://")
    return path.rstrip("/") if "://" in path else str(Path(path).expanduser().resolve())


def can_resume(path: str) -> bool:
    """Whether a local experiment holds a search ``resume`` can continue (URIs: not checked)."""
    from ray import tune

    return "://" not in path and Path(path).is_dir() and tune.Tuner.can_restore(path)


def _object_store(uri: str) -> tuple[Any, str]:
    """``(pyarrow filesystem, path in it)`` of an ``s3://`` or ``gs://`` URI."""
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(uri)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot open storage {uri}: {exc}; check the URI, credentials") from None


def _exists(path: str) -> bool:
    if "://" not in path:
        return Path(path).exists()
    import pyarrow.fs

    fs, root = _object_store(path)
    try:
        return fs.get_file_info(root).type != pyarrow.fs.FileType.NotFound
    except OSError as exc:
        raise UserError(f"cannot read storage {path}: {exc}; check the URI, credentials") from None


def _refuse_existing(path: str) -> None:
    """A launch never writes into an existing experiment."""
    from ray import tune

    if not _exists(path):
        return
    if tune.Tuner.can_restore(path):
        raise UserError(
            f"experiment {path} already exists; continue it with `cusp-tune resume {path}` "
            "or pick another name (--name)"
        )
    raise UserError(
        f"{path} exists but holds no search (a launch that stopped before its search started, "
        "or one still starting); remove it or pick another name (--name)"
    )


def _write_job(spec: JobSpec, path: str) -> None:
    """Create the experiment directory with its ``job.yaml``; a local one must be new (two
    launches of one name race for it)."""
    text = yaml.safe_dump(spec.to_dict(), sort_keys=False)
    if "://" in path:
        fs, root = _object_store(path)
        try:
            fs.create_dir(root, recursive=True)
            with fs.open_output_stream(f"{root}/{JOB_FILE}") as stream:
                stream.write(text.encode())
        except OSError as exc:
            raise UserError(f"cannot write to storage {path}: {exc}; check the URI") from None
        return
    directory = Path(path)
    blocking = next((parent for parent in directory.parents if parent.is_file()), None)
    if blocking == directory.parent:
        raise UserError(f"storage {blocking} is a file; choose a directory")
    if blocking is not None:
        raise UserError(
            f"cannot write to storage {directory.parent}: {blocking} is a file; choose a directory"
        )
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        directory.mkdir()
        tmp = directory / f".{JOB_FILE}.tmp"
        tmp.write_text(text)
        tmp.replace(directory / JOB_FILE)
    except FileExistsError:
        _refuse_existing(path)
        raise
    except OSError as exc:
        raise UserError(
            f"cannot write to storage {directory.parent}: {exc.strerror}; "
            "choose a writable --storage"
        ) from None


@contextlib.contextmanager
def _driver_lock(path: str) -> Iterator[None]:
    """Hold the experiment for this driver: a second ``launch`` or ``resume`` of it while this
    one runs is refused (both would train the same trials). Local storage only; the lock goes
    with the process, however it ends."""
    if "://" in path:
        yield
        return
    import fcntl

    with open(Path(path) / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise UserError(
                f"{path} is being run by another cusp-tune driver (pid {holder}); wait for it "
                "to end, or stop it, before resuming"
            ) from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        yield


def driver_running(path: str) -> bool | None:
    """Whether a ``launch`` or ``resume`` driver runs the local experiment at ``path`` now
    (it holds ``driver.lock``); ``None`` for remote storage, where nobody can tell."""
    if "://" in path:
        return None
    import fcntl

    try:
        handle = open(Path(path) / LOCK_FILE)  # noqa: SIM115 (closed below, lock and all)
    except OSError:
        return False  # no driver has run it (or an older version did)
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        return False


def read_job(path: str) -> JobSpec:
    """The job spec saved with the experiment at ``path`` (a local path or a URI).

    Raises:
        UserError: ``path`` is not a cusp-tune experiment, or its ``job.yaml`` is unreadable.
    """
    if "://" not in path:
        from analysis.experiment import read_spec

        return read_spec(Path(path))
    from tune_jobs.spec import JobSpec

    fs, root = _object_store(path)
    try:
        with fs.open_input_stream(f"{root}/{JOB_FILE}") as stream:
            text = stream.read().decode()
    except (FileNotFoundError, OSError):
        raise UserError(f"{path} is not a cusp-tune experiment (no {JOB_FILE})") from None
    try:
        saved = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(
            f"{path}/{JOB_FILE} is unreadable ({type(exc).__name__}); restore it"
        ) from None
    return JobSpec.from_saved(saved, source=f"{path}/{JOB_FILE}")


def launch(
    spec: JobSpec,
    address: str | None = None,
    callbacks: list | None = None,
    stop: Any = None,
    on_start: Callable[[], None] | None = None,
) -> SearchOutcome:
    """Start the search described by ``spec`` and wait for it (``stop``: :func:`build_tuner`).

    ``on_start`` is called once every check has passed, just before the trials start. A launch
    that fails before Ray Tune saved any state, or is interrupted before any trial reported,
    removes what it wrote (so the same name can be launched again) and raises; an interrupt
    raises ``KeyboardInterrupt``. An interrupt after that returns an unfinished outcome.

    ``callbacks`` are Ray Tune callbacks for this run only (a resume passes its own), e.g.
    :class:`tune_jobs.progress.ProgressLines` for a line per trial event; Ray Tune's own
    progress tables are off.

    Returns:
        The :class:`SearchOutcome`: every trial, the Pareto front of the completed ones, and
        whether every planned trial ended (``finished``).

    Raises:
        UserError: the experiment exists already, its storage is not writable, the data or
            the Ray cluster cannot be reached, or the trials ask for more than it has.
    """
    from ray import tune

    path = spec.experiment_path
    _refuse_existing(path)
    dataset = load_search_dataset(spec)
    _write_job(spec, path)  # fails early, before Ray starts, when storage is not writable
    try:
        with _driver_lock(path):
            _connect_and_check(spec, address)
            tuner = build_tuner(spec, dataset, stop=stop)
            _add_run_callbacks(tuner, callbacks or ())
            if on_start is not None:
                on_start()
            results = tuner.fit()
            _sync_journal(path)
            outcome = summarize(results, spec, path)
    except BaseException:
        if "://" not in path and not tune.Tuner.can_restore(path):
            shutil.rmtree(path, ignore_errors=True)
        raise
    if not (outcome.finished or outcome.failed or len(outcome.trials)):
        # Ray Tune stopped on Ctrl-C before any trial reported: nothing worth resuming
        if "://" not in path:
            shutil.rmtree(path, ignore_errors=True)
        raise KeyboardInterrupt
    return outcome


def resume(
    path: str,
    address: str | None = None,
    callbacks: list | None = None,
    on_start: Callable[[], None] | None = None,
) -> SearchOutcome:
    """Continue an interrupted search: finished trials stay finished, unfinished ones continue
    from their last checkpoint, and the searcher keeps its state and its trial budget.

    It must run where the search was launched: Ray Tune writes a resumed search's new trials
    to the experiment's original path, so a moved or copied experiment is refused.
    ``callbacks``: as for :func:`launch`.

    Returns:
        The :class:`SearchOutcome` of the whole search, the trials of earlier runs included.

    Raises:
        UserError: ``path`` is not a resumable experiment (none there, moved, another driver
            runs it, or every planned trial has ended), or the Ray cluster cannot be reached.
    """
    from ray import tune

    path = experiment_location(path)
    spec = read_job(path)
    if experiment_location(spec.experiment_path) != path:
        raise UserError(
            f"{path} was launched as {spec.experiment_path}, and Ray Tune would write the "
            "resumed search's new trials there; resume it at that path (status, analyze and "
            "export work anywhere)"
        )
    if not tune.Tuner.can_restore(path):
        raise UserError(
            f"{path} holds no search to resume: its launch stopped before the search started; "
            "remove it and launch the job again"
        )
    _refuse_finished(path)
    dataset = load_search_dataset(spec)
    with _driver_lock(path):
        _connect_and_check(spec, address)
        tuner = tune.Tuner.restore(
            path,
            trainable=_trainable(spec, dataset),
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=False,
        )
        _add_run_callbacks(tuner, callbacks or ())
        if on_start is not None:
            on_start()
        results = tuner.fit()
        _sync_journal(path)
    return summarize(results, spec, path)


def _refuse_finished(path: str) -> None:
    """Raise when every planned trial of the search at ``path`` has ended (resume would run
    nothing); a search whose trials the files cannot read yet is left to resume."""
    try:
        searched = status(path)
    except UserError:  # e.g. killed before its first trial: resume decides
        return
    if searched.outcome.finished:
        raise UserError(
            f"{path} has finished: all {searched.planned} planned trials ended, so there is "
            "nothing to resume (`cusp-tune analyze` reads it; launch it again with another "
            "--name for more trials)"
        )


def _sync_journal(path: str) -> None:
    if "://" not in path:
        try:
            sync_journal(path)
        except Exception:  # the journal is a convenience; never fail a search over it
            logger.warning("could not update the Optuna journal in %s", path)


def trial_table(
    trials: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]], spec: JobSpec
) -> pd.DataFrame:
    """Tidy one-row-per-trial table from each trial's ``(config, last result)``; a trial that has
    not reported yet has no row.

    It reads the trials' own configs, not Tune's flattened result dataframe, where a key that
    only some trials have (``trades_beta``) turns into NaN for the others and ints into floats.
    """
    from analysis.experiment import curriculum_summary

    metrics = [o.metric for o in spec.objectives]
    rows = []
    for config, result in trials:
        if not reported(result):
            continue
        record: dict[str, Any] = {
            "trial_id": result.get("trial_id"),
            "model": config.get("model"),
            "curriculum": curriculum_summary(config)["curriculum"],
            "method": config.get("method"),
            "epochs_done": result.get("epoch"),
            "final": bool(result.get("final", False)),
            # stopped by the scheduler: Tune marks the stopping result done (an interrupted
            # trial's last result is neither final nor done)
            "stopped": not result.get("final", False) and bool(result.get("done", False)),
        }
        for key in dict.fromkeys([*metrics, "clean_acc", "combined_acc"]):
            record[key] = result.get(key)
        rows.append(record)
    return pd.DataFrame(rows)


def summarize(results: Any, spec: JobSpec, path: str) -> SearchOutcome:
    """The :class:`SearchOutcome` of Ray Tune's ``ResultGrid`` ``results`` for ``spec``."""
    table = trial_table(((r.config or {}, r.metrics) for r in results), spec)
    return _outcome(table, spec, path, failed=sum(r.error is not None for r in results))


def _outcome(table: pd.DataFrame, spec: JobSpec, path: str, failed: int) -> SearchOutcome:
    """The outcome of a search from its :func:`trial_table` and its number of failed trials."""
    if not len(table):
        table = pd.DataFrame(columns=["final", "stopped"], dtype=bool)
    objectives = tuple((o.metric, o.mode) for o in spec.objectives)
    completed = table[table["final"]]
    front = non_dominated(completed, objectives) if len(completed) else completed
    # Count ended trials rather than test all rows: a trial interrupted before its first result
    # has no row at all, and neither has a trial that failed before it.
    ended = int((table["final"] | table["stopped"]).sum()) + failed
    finished = ended == spec.search.trials
    return SearchOutcome(path, table, front, objectives, finished, spec.search.trials, failed)


@dataclass(frozen=True)
class SearchStatus:
    """What :func:`status` returns: how far a search got, from its files."""

    experiment_path: str
    planned: int
    total: int
    counts: dict[str, int]  # progress (see :func:`progress`; "interrupted" when no driver
    # runs the search) -> number of trials
    best: dict[str, float]  # objective -> best value among completed trials
    outcome: SearchOutcome
    driver_running: bool | None = None  # see :func:`driver_running`


def progress(tune_status: str, result: Mapping[str, Any] | None, *, scheduled: bool) -> str:
    """Where a trial stands, from Ray Tune's snapshot status and its last result: ``completed``,
    ``stopped early`` (by the scheduler; only when the job has one, ``scheduled``), ``ended
    unfinished`` (ended before its last epoch in a job without a scheduler), ``failed``, ``in
    progress`` (it has reported, and is running or was interrupted: the files cannot tell which)
    or ``not started``.

    Tune's snapshots record a running trial as PENDING, so the status alone is not enough.
    """
    if tune_status == "ERROR":
        return "failed"
    if result and result.get("final"):
        return "completed"
    if tune_status == "TERMINATED":
        return "stopped early" if scheduled else "ended unfinished"
    return "in progress" if reported(result) else "not started"


def reported(result: Mapping[str, Any] | None) -> bool:
    """Whether a trial's last result is one it reported (Ray Tune gives a trial that never ran
    a last result holding just its id)."""
    return bool(result) and "epoch" in result


def status(path: str) -> SearchStatus:
    """Progress of an experiment, read from its files (no running Ray needed).

    Raises:
        UserError: ``path`` is not an experiment, has no trials yet, or lost its Ray state.
    """
    from ray.tune import ExperimentAnalysis

    path = experiment_location(path)
    spec = read_job(path)
    # Ray warns, over several lines, about each trial without results yet: those are counted
    ray_analysis_log = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = ray_analysis_log.level
    ray_analysis_log.setLevel(logging.ERROR)
    try:
        analysis = _state_only_analysis(ExperimentAnalysis)(path)
    except (ValueError, FileNotFoundError):
        if "://" in path or not any(Path(path).glob("trial_*")):
            raise UserError(f"{path} has no trials yet (the search has not started)") from None
        raise UserError(
            f"Ray Tune's state in {path} (experiment_state-*.json) is missing or unreadable; "
            f"`cusp-tune analyze {path}` reads the trials without it"
        ) from None
    finally:
        ray_analysis_log.setLevel(level)
    scheduled = has_scheduler(spec)
    running = driver_running(path)
    stages = [progress(t.status, t.last_result, scheduled=scheduled) for t in analysis.trials]
    if running is False:  # nothing runs them: they wait for `resume`
        stages = ["interrupted" if stage == "in progress" else stage for stage in stages]
    counts = dict(Counter(stages))
    table = trial_table(((t.config, t.last_result) for t in analysis.trials), spec)
    outcome = _outcome(table, spec, path, failed=counts.get("failed", 0))
    completed = outcome.trials[outcome.trials["final"]]
    best = {}
    for metric, mode in outcome.objectives:
        if metric in completed:
            values = completed[metric].dropna()
            if len(values):
                best[metric] = float(values.max() if mode == "max" else values.min())
    return SearchStatus(
        path, spec.search.trials, len(analysis.trials), counts, best, outcome, running
    )


def _state_only_analysis(base: type) -> type:
    """Ray Tune's ``ExperimentAnalysis`` (``base``) without the per-trial result tables.

    ``ExperimentAnalysis`` parses every trial's whole ``result.json`` into a DataFrame when it is
    built; :func:`status` reads only the state snapshot (each trial's status, config and last
    result), so skipping that keeps ``status`` from re-reading every epoch of every trial at each
    call (1.2 s of 3.8 s for 120 trials of 100 epochs). Should Ray rename the hook, the override
    is simply unused: slower, never wrong.
    """

    class StateOnlyAnalysis(base):  # type: ignore[misc, valid-type]
        def _fetch_trial_dataframes(self) -> dict[str, pd.DataFrame]:
            return {}

    return StateOnlyAnalysis


def submit(job: str, address: str, overrides: dict[str, Any]) -> str:
    """Submit ``cusp-tune launch`` of ``job`` as a Ray Job; returns the job id.

    The job file travels as the Ray Job's working directory and is validated here first, so a
    bad spec fails before anything reaches the cluster. The job's plugins that live in the
    current directory travel with it (:func:`_ship_local_plugins`). The cluster's Python
    environment must have cusp-tune and any other plugin installed (see the README's cluster
    section).
    """
    import shlex
    import tempfile

    from ray.exceptions import RayError
    from ray.job_submission import JobSubmissionClient

    from tune_jobs.spec import find_job, load_job

    if not address.lower().startswith(("http://", "https://", "ray://")):
        raise UserError(
            f"--address {address!r}: give the head's job server as http://HEAD:8265 (to run on "
            "a machine of the cluster, use `cusp-tune launch --address`)"
        )
    spec = load_job(job, overrides)
    source = find_job(job)
    # the file travels as job.yaml, so a name taken from the file's stem must be pinned
    overrides = {"name": spec.name, **overrides}
    with tempfile.TemporaryDirectory(prefix="cusp-tune-submit-") as workdir:
        (Path(workdir) / "job.yaml").write_text(source.read_text())
        _ship_local_plugins(spec.plugins, Path(workdir))
        sets = " ".join(
            f"--set {shlex.quote(f'{k}={_yaml_value(v)}')}" for k, v in overrides.items()
        )
        entrypoint = f"cusp-tune launch job.yaml {sets}".strip()
        try:
            client = JobSubmissionClient(address)
            return client.submit_job(entrypoint=entrypoint, runtime_env={"working_dir": workdir})
        except (ConnectionError, RuntimeError, ValueError, RayError) as exc:
            # e.g. "Request failed with status code 500: No available agent to submit job";
            # Ray's authentication error ends with what to do, on several lines
            reason = " ".join(str(exc).split())
            raise UserError(f"the Ray job server at {address} took no job: {reason}") from None


def _ship_local_plugins(plugins: Iterable[str], workdir: Path) -> None:
    """Copy each plugin found in the current directory (a module file or a package folder)
    into ``workdir``, which Ray puts on every worker's ``sys.path``; installed plugins are left
    to the cluster's environment."""
    for source in local_plugin_paths(plugins):
        target = workdir / source.name
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(source, target, ignore=ignore, dirs_exist_ok=True)
        elif not target.exists():
            shutil.copy2(source, target)


def _yaml_value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


__all__ = [
    "JOB_FILE",
    "SearchOutcome",
    "build_tuner",
    "can_resume",
    "check_resources",
    "connect",
    "experiment_location",
    "launch",
    "progress",
    "reported",
    "resume",
    "status",
    "submit",
    "summarize",
]
