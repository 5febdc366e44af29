"""Settings for `pulumi up`: the same model and rules as the offline command.

Values come from `pulumi.Config`; where the stack file is at hand (stacks/Pulumi.<stack>.yaml,
as `pulumi up` runs from the project folder) its keys are checked too, so a misspelt key
fails the deployment instead of being ignored.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import UnionType
from typing import Any, Final, get_args, get_origin

import pulumi
from pydantic import BaseModel

from components.model.credentials import TlsMaterial
from components.model.project import PROJECT, Cloud
from components.model.settings import (
    API_TOKEN_KEY,
    ConfigError,
    Settings,
    TlsMode,
    load_stack_file,
    parse_settings,
)

STACKS_DIR = Path(__file__).resolve().parents[2] / "stacks"
# What Hetzner's console hands out.
API_TOKEN: Final = re.compile(r"[A-Za-z0-9]{64}")
# What previews and offline runs give the autoscaler: the right form, no power.
STAND_IN_API_TOKEN: Final = "0" * 64


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


def hetzner_api_token(settings: Settings) -> pulumi.Output[str] | None:
    """The autoscaler's token, kept secret; required on Hetzner, where the bridges are its."""
    if settings.cloud is not Cloud.hetzner:
        return None
    config = pulumi.Config(PROJECT)
    token = config.get_secret(API_TOKEN_KEY)
    if token is not None:
        return token.apply(check_api_token)
    message = (
        f"{PROJECT}:{API_TOKEN_KEY}: required on Hetzner (the bridges' autoscaler acts with "
        f"it); allowed: a read and write API token of the stack's project, set with "
        f"`pulumi config set --secret {API_TOKEN_KEY} <token>`"
    )
    if not pulumi.runtime.is_dry_run():
        raise pulumi.RunError(message)
    # A preview (a pull request's, say) shows what would change; the token reaches only the
    # scaler VM's user data, which is secret. It goes on with a stand-in and says so.
    pulumi.log.warn(f"{message}. This preview uses a stand-in; `pulumi up` refuses without it")
    return pulumi.Output.secret(STAND_IN_API_TOKEN)


def check_api_token(token: str) -> str:
    """The token as given, or an error naming the key (it never prints the value)."""
    if not API_TOKEN.fullmatch(token):
        raise pulumi.RunError(
            f"{PROJECT}:{API_TOKEN_KEY}: not a Hetzner Cloud API token; allowed: the 64 "
            "letters and digits the console shows once when the token is made"
        )
    return token
