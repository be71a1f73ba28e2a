"""Typed, validated configs: every config and node parameter set of sefm is a ``StrictModel``, and a
wrong value fails with a message naming its key."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


class UsageError(ValueError):
    """What a user gave (a config, a file, a checkpoint, a message) is wrong, and the message says how.
    The command line prints these and exits with 2; any other exception is a bug and keeps its traceback."""


class ConfigError(UsageError):
    """A config value is missing, unknown or out of range; the message names the key."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


M = TypeVar("M", bound=BaseModel)


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        got = f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else ""
        lines.append(f"  key '{key}': {e['msg']}{got}")
    return "\n".join(lines)


def parse_config(data: dict | None, cls: type[M], source: str = "<dict>") -> M:
    try:
        return cls.model_validate(data or {})
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def load_config(path: str | Path, cls: type[M], section: str | None = None, overrides: dict | None = None) -> M:
    """Read a YAML file (optionally one top-level section of it) into ``cls``; ``overrides``
    (e.g. from a command line) replace the file's keys before validation."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    source = str(path)
    if section is not None:
        data = (data or {}).get(section)
        source = f"{path} [{section}]"
    if overrides:
        data = {**(data or {}), **overrides}
    return parse_config(data, cls, source)
