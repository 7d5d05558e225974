"""Side-by-side performance measurements of cusp-tune against the baselines it replaces.

Run them with ``python -m benchmarks [--quick] [--device cpu|cuda] [--only NAME ...]``. Each
benchmark is a module ``benchmarks/bench_<name>.py`` with a function
``run(quick: bool, device: str) -> list[Result]``; :func:`discover` finds every such module, so a
new benchmark needs no registration. See ``benchmarks/README.md`` for what each one compares and
the figures measured.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from types import ModuleType

from benchmarks._harness import Result

PREFIX = "bench_"

# Run first, in this order (the cheap, single-process ones before the Ray ones); any other
# bench_* module follows in alphabetical order.
_ORDER = ("spatial", "pgd", "epoch", "gcnn", "ray_overhead", "memory")

Runner = Callable[[bool, str], list[Result]]


def discover() -> list[str]:
    """The names of all benchmarks (``bench_<name>.py`` in this package), in running order.

    Modules are listed, not imported: importing one happens only when it is run.
    """
    names = [
        info.name[len(PREFIX) :]
        for info in pkgutil.iter_modules(__path__)
        if info.name.startswith(PREFIX) and not info.ispkg
    ]
    first = [n for n in _ORDER if n in names]
    return first + sorted(n for n in names if n not in _ORDER)


def load(name: str) -> ModuleType:
    """Import the module of benchmark ``name``; it must define ``run(quick, device)``."""
    module = importlib.import_module(f"{__name__}.{PREFIX}{name}")
    if not callable(getattr(module, "run", None)):
        raise TypeError(f"{module.__name__} has no run(quick: bool, device: str) function")
    return module


__all__ = ["PREFIX", "Result", "discover", "load"]
