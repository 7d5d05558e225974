"""Plugins: the user's own modules that register models, datasets, schedule kinds or presets.

A registration made in one Python process is invisible to every other one: to Ray's trial
workers, to a later ``resume`` and to ``analyze``. So a job lists the modules that make its
registrations (``plugins: [my_models]``), and every process that builds or reads the job imports
them first, with :func:`import_plugins`. A plugin is a module name, found on ``sys.path`` or in
the current directory (as ``python -m`` would). On a cluster it must be importable on every node:
the runner sends the ones in the current directory (:func:`local_plugin_paths`) with the
connection or the submitted job; installed ones must be installed on the nodes too.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path

from trainables.errors import UserError

__all__ = ["check_plugins", "import_plugins", "local_plugin_paths"]


def check_plugins(value: object, where: str = "plugins") -> tuple[str, ...]:
    """``value`` as a tuple of module names; raise :class:`UserError` unless it is a list of
    dotted module names (a single name is taken as a list of one)."""
    if value is None:
        return ()
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not all(
        isinstance(name, str) and name and all(part.isidentifier() for part in name.split("."))
        for name in names
    ):
        raise UserError(
            f"{where} must be a list of module names (like [my_models, lab.schedules]), "
            f"got {value!r}"
        )
    return tuple(dict.fromkeys(names))


def import_plugins(modules: Iterable[str], where: str = "plugins") -> None:
    """Import each module of ``modules`` (once per process, as any import).

    Raises:
        UserError: a module cannot be found, or raised an error while it was imported; the
            message names the module and, for an error inside it, its own line (a refused
            ``register_*`` call, say).
    """
    cwd = _current_directory_on_path()
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name and not name.startswith(f"{exc.name}."):
                raise UserError(f"{where}: importing {name!r} failed: {exc}") from None
            local = sorted(p.stem for p in Path(cwd).glob("*.py"))
            close = difflib.get_close_matches(name, local, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(
                f"{where}: no module named {name!r} here; {hint}make it importable (pip install "
                "it, or run from its folder or add the folder to PYTHONPATH)"
            ) from None
        except Exception as exc:  # the plugin's own error: point at its line
            frame = _users_frame(traceback.extract_tb(exc.__traceback__))
            raise UserError(
                f"{where}: importing {name!r} failed at {frame.filename}:{frame.lineno}: "
                f"{type(exc).__name__}: {exc}"
            ) from None


def local_plugin_paths(modules: Iterable[str]) -> list[Path]:
    """The files or package folders of the plugins in ``modules`` that live in the current
    directory (what a cluster's other machines lack); installed plugins are left out.

    A module ``lab_models`` found as ``./lab_models.py`` gives that file; ``lab.schedules`` found
    in the package ``./lab/`` gives the folder ``./lab``.
    """
    import importlib.util

    _current_directory_on_path()
    cwd = Path.cwd().resolve()
    paths: list[Path] = []
    for name in modules:
        found = importlib.util.find_spec(name.split(".")[0])
        if found is None or not found.origin:
            continue
        origin = Path(found.origin).resolve()
        if cwd not in origin.parents:
            continue
        path = origin.parent if origin.name == "__init__.py" else origin
        if path not in paths:
            paths.append(path)
    return paths


def _current_directory_on_path() -> str:
    """Put the current directory on ``sys.path`` (as ``python -m`` does) and return it."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
    return cwd


_PACKAGES = Path(__file__).resolve().parents[1]
_OURS = tuple(str(_PACKAGES / p) for p in ("trainables", "search_spaces", "tune_jobs", "analysis"))


def _users_frame(frames: traceback.StackSummary) -> traceback.FrameSummary:
    """The innermost frame in the user's code: neither cusp-tune's nor the import machinery's."""
    for frame in reversed(frames):
        if not frame.filename.startswith((*_OURS, "<frozen")):
            return frame
    return frames[-1]
