"""Checks shared by the registries (models, datasets, schedule kinds, ramp shapes, search presets).

Registering is a programming step, so these raise ``ValueError`` (not ``UserError``). Plain
Python: no torch.
"""

from __future__ import annotations

from typing import Any


def check_name(what: str, name: Any) -> None:
    """Raise ``ValueError`` unless ``name`` is a non-empty str without surrounding spaces."""
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"a {what} name must be a non-empty str, got {name!r}")


def check_function(what: str, name: str, function: Any, registered: Any) -> None:
    """Raise ``ValueError`` unless ``function`` is callable and ``name`` is free or held by the
    same function (``registered``, ``None`` if the name is free).

    The same function is the same ``__module__`` and ``__qualname__``: registering it again
    (``importlib.reload``, a notebook cell run twice, a plugin imported twice) replaces the entry.
    """
    if not callable(function):
        raise ValueError(f"{what} {name!r} needs a callable, got {type(function).__name__}")
    if registered is not None and _where(registered) != _where(function):
        raise ValueError(
            f"{what} {name!r} is already registered (by {_where(registered)}); choose another name"
        )


def _where(function: Any) -> str:
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{module}.{qualname}"
