"""Settings for `pulumi up`: the same model and rules as the offline command.

Values come from `pulumi.Config`; where the stack file is at hand (stacks/Pulumi.<stack>.yaml,
as `pulumi up` runs from the project folder) its keys are checked too, so a misspelt key
fails the deployment instead of being ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import UnionType
from typing import Any, get_args, get_origin

import pulumi
from pydantic import BaseModel

from components.model.credentials import TlsMaterial
from components.model.project import PROJECT
from components.model.settings import (
    ConfigError,
    Settings,
    TlsMode,
    load_stack_file,
    parse_settings,
)

STACKS_DIR = Path(__file__).resolve().parents[2] / "stacks"


def raw_project_config(config: pulumi.Config) -> dict[str, Any]:
    """The project's keys as plain values: the CLI hands objects and lists to the program as
    JSON text, and scalars as text (which the model parses)."""
    raw: dict[str, Any] = {}
    for key, field in Settings.model_fields.items():
        value = config.get(key)
        if value is None:
            continue
        annotation = field.annotation
        members = get_args(annotation) if get_origin(annotation) is UnionType else (annotation,)
        structured = any(
            get_origin(m) is list or (isinstance(m, type) and issubclass(m, BaseModel))
            for m in members
        )
        if structured and value.lstrip().startswith(("{", "[")):
            try:
                raw[key] = json.loads(value)
            except json.JSONDecodeError:
                raw[key] = value
        else:
            raw[key] = value
    return raw


def load_settings(stack: str | None = None) -> Settings:
    """Parse the running stack's settings; raises pulumi.RunError listing every problem."""
    name = stack or pulumi.get_stack()
    problems: list[str] = []
    stack_file = STACKS_DIR / f"Pulumi.{name}.yaml"
    if stack_file.exists():
        try:
            load_stack_file(stack_file)
        except ConfigError as exc:
            problems += exc.problems
    try:
        settings = parse_settings(raw_project_config(pulumi.Config(PROJECT)))
    except ConfigError as exc:
        problems += [p for p in exc.problems if p not in problems]
    if problems:
        raise pulumi.RunError(
            f"invalid stack settings for {name}:\n" + "\n".join(f"  {p}" for p in problems)
        )
    return settings


def tls_material(settings: Settings) -> pulumi.Output[TlsMaterial | None]:
    """The operator's certificate and key when `tls.mode` is provided; kept secret."""
    if settings.tls.mode is not TlsMode.provided:
        return pulumi.Output.from_input(None)
    config = pulumi.Config(PROJECT)
    return pulumi.Output.all(
        config.require_secret("tls_certificate"), config.require_secret("tls_private_key")
    ).apply(lambda pair: TlsMaterial(certificate=pair[0], private_key=pair[1]))
