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


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (plain YAML keeps the
    last one silently: two ``training:`` blocks would lose the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor`: keys given next to it override the merged ones
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                continue  # the base loader rejects an unhashable key itself
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    problem=f"key {key!r} is given twice; merge the two into one",
                    problem_mark=key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a non-empty mapping (safe loading: no tags, no code;
    a key given twice is an error)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a directory; give a YAML file")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text (UTF-8) file; give a YAML file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise UserError(f"{path}: malformed YAML{where}: {problem}") from None
    if data is None:
        raise UserError(f"{path} is empty; write its settings as key: value lines")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of key: value at the top level")
    return data
