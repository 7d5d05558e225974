"""``memory``: is the dataset shared between the trials of a node, or copied into each one?

A dataset of about 200 MB (64 MB with ``--quick``): random uint8 28x28 images wrapped as an
``ImageDataset`` of ``synthetic-digits``. Each trial builds a real :class:`trainables.trial.Trial`
on it (what ``train_trial`` does: subset, device, model, optimiser), reads every page of the
training images once (as an epoch would), and reports its process's memory with psutil: RSS,
USS (memory only this process holds) and PSS (shared pages divided among the processes that map
them: the honest measure when memory is shared), and its peak RSS (``ru_maxrss``). With two
trials, both measure while both are alive (they wait for each other). Three ways of getting the
data into the trials, each with one trial and with two concurrent ones (two only, with --quick):

- ``library``: what ``tune_jobs.runner`` ships: ``ImageDataset.to_shared()`` (numpy arrays)
  through ``tune.with_parameters`` (``ray.put`` once by the driver), turned back into tensors
  over the same memory with ``SharedDataset.to_dataset()`` in each trial;
- ``own copy`` (baseline): each trial loads its own copy from a file (``torch.load``);
- ``tensors`` (what the library did before): the ``ImageDataset`` of torch tensors itself through
  ``tune.with_parameters``; Ray copies torch tensors into every worker.

The figure per trial is its USS above the worker's own floor (the USS of a trial process that has
built a first ``Trial`` on a tiny dataset and loaded nothing else yet, measured in the ``own copy``
trials): the memory the dataset costs that trial alone. The object store's usage is read from
Ray after the driver's ``ray.put``.
"""

from __future__ import annotations

import contextlib
import gc
import io
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks._harness import Result, local_ray

MB = 1 << 20
WAIT_S = 120.0


def _dataset(megabytes: int, n_min: int = 0) -> Any:
    from trainables.datasets import SYNTHETIC_DIGITS_INFO, ImageDataset

    n = max(n_min, megabytes * MB // (28 * 28))
    generator = torch.Generator().manual_seed(0)
    return ImageDataset(
        SYNTHETIC_DIGITS_INFO,
        torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=generator),
        torch.randint(0, 10, (n,), generator=generator),
        torch.randint(0, 256, (1000, 1, 28, 28), dtype=torch.uint8, generator=generator),
        torch.randint(0, 10, (1000,), generator=generator),
    )


_KEYS = ("train_images", "train_labels", "test_images", "test_labels")


def _memory() -> dict[str, float]:
    import resource

    # Runs in a trial, after `import ray`, which puts Ray's vendored psutil on sys.path.
    import psutil

    info = psutil.Process().memory_full_info()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {"rss": info.rss / MB, "uss": info.uss / MB, "pss": info.pss / MB, "peak": peak / MB}


def _barrier(directory: str, stage: str, trial_id: str, count: int) -> None:
    """Wait until ``count`` trials have reached ``stage`` (marker files in ``directory``)."""
    Path(directory, f"{stage}-{trial_id}").touch()
    deadline = time.monotonic() + WAIT_S
    while len(list(Path(directory).glob(f"{stage}-*"))) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only some trials reached {stage} within {WAIT_S:g} s")
        time.sleep(0.05)


def _trial_config() -> dict[str, Any]:
    return {
        "dataset": "synthetic-digits",
        "model": "stdcnn",
        "model_width": 0.25,
        "epochs": 1,
        "eval_subset": 100,
        "device": "cpu",
    }


def measure_trial(config: dict[str, Any], data: Any = None) -> None:
    """The trainable: get the data the variant's way, build a Trial, touch the data, report."""
    from ray import tune

    from trainables.config import TrialConfig
    from trainables.trial import Trial

    # A first Trial on a tiny dataset pays what every trial pays whatever its data (imports,
    # the optimiser's first use, the model), so that the floor below holds all of it.
    Trial(TrialConfig.from_dict(_trial_config()), _dataset(0, n_min=128))
    gc.collect()
    floor = _memory()
    variant = config["variant"]
    if variant == "own copy":
        from trainables.datasets import SYNTHETIC_DIGITS_INFO, ImageDataset

        tensors = torch.load(config["path"], map_location="cpu", weights_only=True)
        dataset = ImageDataset(SYNTHETIC_DIGITS_INFO, *(tensors[k] for k in _KEYS))
        del tensors
    elif variant == "library":
        dataset = data.to_dataset()
    else:
        dataset = data
    trial = Trial(TrialConfig.from_dict(_trial_config()), dataset)
    del dataset
    touched = int(trial.train_images.view(-1)[::4096].sum())  # one read per page, as an epoch
    trial_id = tune.get_context().get_trial_id()
    _barrier(config["sync_dir"], "loaded", trial_id, config["trials"])
    measured = _memory()
    _barrier(config["sync_dir"], "measured", trial_id, config["trials"])
    tune.report(
        {
            **{f"floor_{k}": v for k, v in floor.items()},
            **measured,
            "touched": touched,
            "torch_threads": torch.get_num_threads(),
        }
    )


def _plasma_mb() -> float:
    """The object store's usage, as ``ray memory --stats-only`` reports it."""
    import ray
    from ray._private.internal_api import memory_summary

    address = ray.get_runtime_context().gcs_address
    summary = memory_summary(address=address, stats_only=True)
    found = re.search(r"Plasma memory usage (\d+) MiB", summary)
    return float(found.group(1)) if found else float("nan")


def _run_variant(
    variant: str, trials: int, dataset: Any, path: str, workdir: str
) -> tuple[list[dict[str, float]], float]:
    """Run ``trials`` concurrent trials of one variant; their reports and the store's usage."""
    from ray import tune

    before = _plasma_mb()
    if variant == "library":
        trainable = tune.with_parameters(measure_trial, data=dataset.to_shared())
    elif variant == "tensors":
        trainable = tune.with_parameters(measure_trial, data=dataset)
    else:
        trainable = measure_trial
    store = _plasma_mb() - before
    sync_dir = tempfile.mkdtemp(dir=workdir)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={
            "variant": variant,
            "path": path,
            "sync_dir": sync_dir,
            "trials": trials,
            "index": tune.grid_search(list(range(trials))),
        },
        tune_config=tune.TuneConfig(max_concurrent_trials=trials, reuse_actors=False),
        run_config=tune.RunConfig(storage_path=workdir, name=f"{variant}-{trials}", verbose=0),
    )
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        results = tuner.fit()
    errors = [r.error for r in results if r.error is not None]
    if errors:
        raise RuntimeError(f"memory trial failed ({variant}): {errors[0]}")
    return [dict(r.metrics) for r in results], store


def run(quick: bool, device: str) -> list[Result]:
    del device  # memory is measured on the CPU: the question is how trials share host memory
    megabytes = 64 if quick else 200
    counts = (2,) if quick else (1, 2)
    local_ray()
    dataset = _dataset(megabytes)
    size = sum(getattr(dataset, k).numel() * getattr(dataset, k).element_size() for k in _KEYS)
    reports: dict[tuple[str, int], list[dict[str, float]]] = {}
    stores: dict[str, float] = {"own copy": 0.0}
    with tempfile.TemporaryDirectory(prefix="cusp-bench-mem-") as workdir:
        path = str(Path(workdir, "dataset.pt"))
        torch.save({k: getattr(dataset, k) for k in _KEYS}, path)
        for trials in counts:
            for variant in ("library", "own copy", "tensors"):
                reports[variant, trials], stores[variant] = _run_variant(
                    variant, trials, dataset, path, workdir
                )
    dataset_mb = size / MB

    def summary(variant: str, trials: int) -> dict[str, float]:
        # The floor of the same number of trials: shared libraries count less in each USS when
        # more processes map them.
        floor = statistics.median(r["floor_uss"] for r in reports["own copy", trials])
        rows = reports[variant, trials]
        over = statistics.mean(r["uss"] for r in rows) - floor
        return {
            "floor": floor,
            "uss_over_floor": over,
            "pss_sum": sum(r["pss"] for r in rows),
            "rss": statistics.mean(r["rss"] for r in rows),
            "peak": max(r["peak"] for r in rows),
            # The node's memory for the data: every trial's private part and the store's copy.
            "node": trials * over + stores.get(variant, 0.0),
        }

    results = []
    for trials in counts:
        base = summary("own copy", trials)
        for variant in ("library", "tensors"):
            ours = summary(variant, trials)
            shared = ours["uss_over_floor"] < 0.25 * dataset_mb
            results.append(
                Result(
                    f"memory {variant}, {trials} trial{'s' if trials > 1 else ''}",
                    ours["uss_over_floor"],
                    base["uss_over_floor"],
                    unit="MB",
                    target="dataset not copied per trial",
                    ok=shared,
                    note=(
                        f"dataset {dataset_mb:.0f} MB; per trial USS above the worker floor "
                        f"({base['floor']:.0f} MB), ours {variant!r} vs baseline own copy; "
                        f"data on the node (private copies + object store) {ours['node']:.0f} vs "
                        f"{base['node']:.0f} MB; PSS summed over the trials {ours['pss_sum']:.0f} "
                        f"vs {base['pss_sum']:.0f} MB; RSS per trial {ours['rss']:.0f} vs "
                        f"{base['rss']:.0f} MB; peak RSS {ours['peak']:.0f} vs {base['peak']:.0f} "
                        f"MB; object store {stores[variant]:.0f} MB"
                        + ("" if shared else "; the dataset is COPIED into every trial")
                    ),
                    extra={"reports": reports[variant, trials]},
                )
            )
    return results
