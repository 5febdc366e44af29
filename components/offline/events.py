"""Per-event stacks: one short-lived stack per event, `stacks/Pulumi.event-<name>.yaml`.

`create` writes the stack file from the settings model (validated like any stack; written
only when valid), and creates the stack where the Pulumi CLI is installed; `list` reads the
files and says where each event is in its window. `up` and `down` drive the Pulumi
Automation API, which needs the CLI: without it they stop with a message saying how to get
it. `up` previews first and, inside the event's window, refuses what would cut viewers off
(components/offline/disruption.py) unless `--allow-disruption` is given.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum, unique
from pathlib import Path
from typing import Any, Final

import yaml

from components.cloud.outputs import OUTPUT_SETTINGS
from components.model.project import PROJECT, Cloud
from components.model.settings import (
    ConfigError,
    Settings,
    StackFile,
    UsageError,
    load_stack_file,
    parse_settings,
)
from components.offline.disruption import (
    Step,
    disruption,
    guarded,
    refusals,
    setting_changes,
)

STACKS_DIR: Final = Path(__file__).resolve().parents[2] / "stacks"
PROJECT_DIR: Final = STACKS_DIR.parent
EVENT_PREFIX: Final = "event-"
_NAME: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")  # with fullmatch
DEFAULT_AWS_REGION: Final = "eu-central-1"
INSTALL_HINT: Final = (
    "the Pulumi CLI is not installed. Install it (https://www.pulumi.com/docs/install/, e.g. "
    "`curl -fsSL https://get.pulumi.com | sh`), log in to a backend (`pulumi login --local` "
    "or your own), and run this again"
)


class PulumiMissingError(RuntimeError):
    """The Pulumi CLI, which the Automation API drives, is not on PATH."""


@unique
class Phase(StrEnum):
    """Where an event stands at a given moment."""

    no_window = "no window"
    not_started = "not started"
    running = "running"
    past_end = "past end: tear down"


def stack_name(event: str) -> str:
    return f"{EVENT_PREFIX}{event}"


def stack_path(event: str, stacks: Path | None = None) -> Path:
    return (stacks or STACKS_DIR) / f"Pulumi.{stack_name(event)}.yaml"


def check_name(event: str) -> str:
    if not _NAME.fullmatch(event):
        raise ConfigError(
            [
                f"event name {event!r}: allowed: 1 to 40 of a-z, 0-9 and -, "
                "not starting or ending with -"
            ]
        )
    return event


def event_config(
    *,
    cloud: str,
    audience: int,
    domain: str,
    start: str | None = None,
    end: str | None = None,
    email: str | None = None,
    region: str | None = None,
) -> dict[str, Any]:
    """The `config:` map of an event's stack file (project keys are the model's names)."""
    if (start is None) != (end is None):
        given, missing = ("--start", "--end") if end is None else ("--end", "--start")
        raise UsageError(
            [f"{missing}: required with {given}; allowed: both --start and --end, or neither"]
        )
    config: dict[str, Any] = {
        f"{PROJECT}:cloud": cloud,
        f"{PROJECT}:domain": domain,
        f"{PROJECT}:audience": audience,
        # Let's Encrypt needs an ACME e-mail; without one the event gets a self-signed
        # certificate, fine for a rehearsal, not for an audience
        f"{PROJECT}:tls": {"mode": "letsencrypt", "email": email}
        if email
        else {"mode": "self-signed"},
    }
    if start or end:
        config[f"{PROJECT}:event"] = {"start": start, "end": end}
    if cloud == Cloud.aws.value:
        config["aws:region"] = region or DEFAULT_AWS_REGION
    return config


def create(
    event: str,
    config: Mapping[str, Any],
    stacks: Path | None = None,
    now: datetime | None = None,
) -> StackFile:
    """Validate and write the event's stack file; nothing is left written on any error."""
    path = stack_path(check_name(event), stacks)
    folder = path.parent
    if path.exists():
        raise ConfigError([f"{path.name} exists already; `xxl event down {event}` removes it"])
    settings = validate(config)
    moment = now or datetime.now(UTC)
    if settings.event is not None and settings.event.end <= moment:
        raise ConfigError(
            [
                f"{PROJECT}:event.end: {settings.event.end.isoformat()} is over already; "
                f"allowed: an end after now ({moment.replace(microsecond=0).isoformat()})"
            ]
        )
    text = f"# Event stack {event}, written by `xxl event create`.\n" + yaml.safe_dump(
        {"config": dict(config)}, sort_keys=False
    )
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    # write beside, then rename: a reader never sees half a file
    tmp = tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False)  # noqa: SIM115
    try:
        with tmp:
            tmp.write(text)
        Path(tmp.name).replace(path)
        return load_stack_file(path)
    except BaseException:
        Path(tmp.name).unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if still empty
        raise


@dataclass(frozen=True)
class EventInfo:
    """One event stack as `xxl event list` shows it."""

    name: str
    cloud: str
    domain: str
    audience: int
    start: datetime | None
    end: datetime | None
    phase: Phase


def phase(settings: Settings, now: datetime) -> Phase:
    if settings.event is None:
        return Phase.no_window
    if now < settings.event.start:
        return Phase.not_started
    if now <= settings.event.end:
        return Phase.running
    return Phase.past_end


def list_events(
    now: datetime | None = None, stacks: Path | None = None
) -> tuple[list[EventInfo], list[str]]:
    """Every event stack with its phase, and one line per stack file that does not parse."""
    moment = now or datetime.now(UTC)
    events, problems = [], []
    for path in sorted((stacks or STACKS_DIR).glob(f"Pulumi.{EVENT_PREFIX}*.yaml")):
        try:
            stack = load_stack_file(path)
        except ConfigError as exc:
            problems.append(f"{path.name}: {exc.problems[0]}")
            continue
        s = stack.settings
        events.append(
            EventInfo(
                name=stack.name.removeprefix(EVENT_PREFIX),
                cloud=s.cloud.value,
                domain=s.domain,
                audience=s.audience,
                start=s.event.start if s.event else None,
                end=s.event.end if s.event else None,
                phase=phase(s, moment),
            )
        )
    return events, problems


def pulumi_cli(which: Callable[[str], str | None] = shutil.which) -> str:
    """The Pulumi CLI's path, or PulumiMissingError with how to install it."""
    path = which("pulumi")
    if path is None:
        raise PulumiMissingError(INSTALL_HINT)
    return path


def _stack(event: str, create_missing: bool) -> Any:
    """The event's stack in the Automation API (the project's own program and folder)."""
    pulumi_cli()
    from pulumi import automation  # noqa: PLC0415 - only with a CLI to drive

    name = stack_name(event)
    if create_missing:
        return automation.create_or_select_stack(stack_name=name, work_dir=str(PROJECT_DIR))
    return automation.select_stack(stack_name=name, work_dir=str(PROJECT_DIR))


def init_stack(event: str) -> None:
    """Create the Pulumi stack of an event (its config comes from the stack file)."""
    _stack(event, create_missing=True)


class DisruptionRefusedError(RuntimeError):
    """The deployment would cut a running event's viewers off; `lines` say how and why."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def step_of(event: Any) -> Step | None:
    """A preview's resource step (an Automation API engine event), or None."""
    pre = getattr(event, "resource_pre_event", None)
    if pre is None:
        return None
    m = pre.metadata
    op = getattr(m.op, "value", m.op)
    new = getattr(m, "new", None)
    return Step(
        op=str(op),
        urn=m.urn,
        type=m.type,
        diffs=tuple(m.diffs or ()),
        replace_keys=tuple(m.keys or ()),
        new_inputs=dict(new.inputs) if new is not None and new.inputs else None,
    )


def previous_settings(stack: Any) -> dict[str, Any] | None:
    """The settings output of the stack's last deployment, if it has one."""
    try:
        outputs = stack.outputs()
    except Exception:
        return None
    found = outputs.get(OUTPUT_SETTINGS)
    value = getattr(found, "value", None)
    return dict(value) if isinstance(value, Mapping) else None


def check_disruption(
    stack: Any,
    settings: Settings | None,
    *,
    now: datetime,
    allow: bool,
    on_output: Callable[[str], None],
) -> None:
    """Preview; inside the window refuse what would cut viewers off (unless `allow`)."""
    steps: list[Step] = []

    def collect(event: Any) -> None:
        if (step := step_of(event)) is not None:
            steps.append(step)

    stack.preview(on_event=collect)
    found = [d for s in steps if (d := disruption(s)) is not None]
    if not found:
        return
    previous = previous_settings(stack)
    old = None
    if previous is not None:
        with contextlib.suppress(ConfigError, ValueError):
            old = parse_settings(previous)
    changes = setting_changes(previous, settings) if previous and settings else []
    lines = refusals(found, changes)
    if guarded([settings, old], now) and not allow:
        raise DisruptionRefusedError(lines)
    for line in lines:
        on_output(f"note: {line}")


def up(
    event: str,
    on_output: Callable[[str], None] = print,
    *,
    allow_disruption: bool = False,
    now: datetime | None = None,
    stack: Any = None,
) -> Mapping[str, Any]:
    """Preview, refuse disruption inside the window, then deploy; progress streams to
    `on_output`; returns the stack outputs."""
    path = stack_path(check_name(event))
    # bad settings stop here, before the CLI is even needed
    settings = load_stack_file(path).settings if path.exists() else None
    target = stack if stack is not None else _stack(event, create_missing=True)
    check_disruption(
        target,
        settings,
        now=now or datetime.now(UTC),
        allow=allow_disruption,
        on_output=on_output,
    )
    result = target.up(on_output=on_output)
    return {key: value.value for key, value in result.outputs.items()}


def down(event: str, on_output: Callable[[str], None] = print, stacks: Path | None = None) -> None:
    """Destroy the event's resources, remove its stack and its stack file."""
    stack = _stack(event, create_missing=False)
    stack.destroy(on_output=on_output)
    stack.workspace.remove_stack(stack_name(event))
    stack_path(event, stacks).unlink(missing_ok=True)


def validate(config: Mapping[str, Any]) -> Settings:
    """The model's verdict on an event's config, before anything is written."""
    project = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith(f"{PROJECT}:")}
    return parse_settings(project)
