"""Command-line flags derived from a config's fields: their type, choices, default and help come from
the pydantic model, so the command line never restates what the config already says."""

from __future__ import annotations

import argparse
import types
import typing
from typing import Literal

from pydantic import BaseModel
from pydantic_core import PydanticUndefined


def _scalar(annotation):
    """The type a flag parses to, and its choices: ``int | None`` -> int; ``Literal[a, b]`` -> choices."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(kinds) != 1:
            raise TypeError(f"no single flag type for {annotation}")
        annotation = kinds[0]
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        return type(choices[0]), list(choices)
    if annotation in (int, float, str, bool):
        return annotation, None
    raise TypeError(f"no flag for a field of type {annotation}")


def add_config_flags(
    parser: argparse.ArgumentParser,
    model: type[BaseModel],
    fields: list[str],
    flags: dict[str, str] | None = None,
    required: bool = False,
) -> None:
    """One ``--field-name`` per field (or the name ``flags`` gives it). A flag not given leaves the
    value to the config file and the model's default: ``given`` collects only those given. With
    ``required`` (a command without a config file) a field without a default is a required flag."""
    for name in fields:
        field = model.model_fields[name]
        kind, choices = _scalar(field.annotation)
        default = field.get_default(call_default_factory=True)
        help_text = field.description or ""
        if default is not PydanticUndefined and default is not None:
            help_text = f"{help_text} (default: {default})".strip()
        flag = (flags or {}).get(name, "--" + name.replace("_", "-"))
        must = required and field.is_required()
        if kind is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(
                flag, dest=name, type=kind, choices=choices, default=None, required=must, help=help_text
            )


def given(args: argparse.Namespace, model: type[BaseModel]) -> dict:
    """The model's fields that the command line set."""
    return {name: getattr(args, name) for name in model.model_fields if getattr(args, name, None) is not None}
