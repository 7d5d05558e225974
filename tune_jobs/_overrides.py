"""``--set key=value`` parsing and YAML loading shared by the CLI's commands."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from trainables.errors import UserError


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["lr=0.1", "download=true"]`` -> ``{"lr": 0.1, "download": True}`` (values are YAML)."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set takes key=value, got {item!r}")
        try:
            overrides[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise UserError(
                f"--set {key}: value {raw!r} is not valid YAML ({exc.problem})"
            ) from None
    return overrides


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping (``safe_load``: no tags, no code)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise UserError(f"{path}: malformed YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of key: value at the top level")
    return data
