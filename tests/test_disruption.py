"""A running event survives its operators: what `xxl event up` refuses inside the window.

Every setting is changed once under the mocks; the recorded resources before and after give
the preview the engine would make (its replace decisions from the providers' documented
force-new properties, below), and inside the window each change is either harmless to the
running event or refused, naming the setting. Never does the signaling VM go away unasked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest
from pulumi.automation import events as engine

from components.cloud import deployment
from components.model.settings import load_stack_file, parse_settings
from components.offline import cli, events
from components.offline.disruption import (
    BRIDGES,
    SIGNALING,
    Step,
    disruption,
    guarded,
    refusals,
    setting_changes,
)
from components.offline.mocks import OfflineRun, Registered, run_program
from tests.test_program import config_of

START = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)
WINDOW: Final = '{"start": "2026-12-03T14:00:00Z", "end": "2026-12-03T18:00:00Z"}'
DURING = START + timedelta(hours=1)

# What makes the engine replace rather than update (the providers' force-new properties, and
# our user_data_replace_on_change on the signaling instance).
FORCES_NEW: Final = {
    "aws:ec2/instance:Instance": {"ami", "subnetId", "privateIp", "userDataBase64"},
    "hcloud:index/server:Server": {"userData", "sshKeys", "location", "image"},
    "aws:ec2/vpc:Vpc": {"cidrBlock"},
    "aws:ec2/subnet:Subnet": {"cidrBlock", "vpcId", "availabilityZone"},
    "hcloud:index/network:Network": {"ipRange"},
    "hcloud:index/networkSubnet:NetworkSubnet": {"ipRange", "networkZone"},
    "hcloud:index/primaryIp:PrimaryIp": {"location", "datacenter"},
}


def _urn(r: Registered) -> str:
    return r.urn


def preview(before: OfflineRun, after: OfflineRun) -> list[Step]:
    """The steps the engine would take from `before` to `after`."""
    old = {_urn(r): r for r in before.resources}
    new = {_urn(r): r for r in after.resources}
    steps = []
    for urn, r in new.items():
        if urn not in old:
            steps.append(Step("create", urn, r.type, new_inputs=r.inputs))
            continue
        was = old[urn]
        diffs = tuple(
            k
            for k in sorted(set(r.inputs) | set(was.inputs))
            if k not in r.ignore_changes and r.inputs.get(k) != was.inputs.get(k)
        )
        if not diffs:
            continue
        forced = tuple(k for k in diffs if k in FORCES_NEW.get(r.type, set()))
        op = "replace" if forced else "update"
        steps.append(Step(op, urn, r.type, diffs, forced, new_inputs=r.inputs))
    steps += [Step("delete", urn, r.type) for urn, r in old.items() if urn not in new]
    return steps


def _set(config: dict[str, str], path: str, value: Any) -> dict[str, str]:
    """`config` with the setting at dotted `path` set (objects travel as JSON text)."""
    head, _, rest = path.partition(".")
    key = f"jitsi-xxl:{head}"
    changed = dict(config)
    if not rest:
        changed[key] = json.dumps(value) if isinstance(value, list | dict) else str(value)
        return changed
    doc = json.loads(config.get(key, "{}"))
    doc[rest] = value
    changed[key] = json.dumps(doc)
    return changed


AWS, HETZNER = "aws-10k", "hetzner-10k"
# One other valid value per setting, and the stacks it applies to.
CHANGES: Final[dict[str, tuple[Any, tuple[str, ...]]]] = {
    "domain": ("live2.example.org", (AWS, HETZNER)),
    "audience": (12000, (AWS, HETZNER)),
    "visitors.nodes": (10, (AWS, HETZNER)),
    "visitors.max_per_node": (2500, (AWS,)),
    "visitors.main_participants": (40, (AWS,)),
    "visitors.promotion": ("auto", (AWS,)),
    "visitors.viewers_per_address": (500, (AWS, HETZNER)),
    "auth.mode": ("anonymous", (AWS,)),
    "bridges.participants_per_bridge": (250, (AWS, HETZNER)),
    "bridges.min": (60, (AWS, HETZNER)),
    "bridges.max": (90, (AWS, HETZNER)),
    "bridges.graceful_shutdown_max_minutes": (30, (AWS, HETZNER)),
    "bridges.websockets": (True, (AWS, HETZNER)),
    "bridges.instance_type": ("c6i.4xlarge", (AWS,)),
    "bridges.scale_on": ("cpu", (AWS,)),
    "bridges.refresh_on_change": (True, (AWS,)),
    "tls.mode": ("self-signed", (AWS,)),
    "tls.email": ("events@example.org", (AWS,)),
    "network.cidr": ("10.8.0.0/16", (AWS, HETZNER)),
    "release.jitsi_meet": ("1.0.9999-1", (AWS,)),
    "release.jicofo": ("1.0-1200-1", (AWS,)),
    "release.jitsi_videobridge": ("2.3-400-gabcdef-1", (AWS, HETZNER)),
    "release.prosody": ("13.0.7*", (AWS,)),
    "signaling.instance_type": ("c7i.4xlarge", (AWS,)),
    "admin_cidrs": (["198.51.100.0/24"], (AWS, HETZNER)),
    "dns.zone": ("Z0123456789ABC", (AWS,)),
    "dns.ttl": (120, (AWS,)),
    "event.start": ("2026-12-03T16:00:00Z", (AWS,)),
    "event.end": ("2026-12-03T19:00:00Z", (AWS,)),
    "aws.ami": ("ami-0fedcba9876543210", (AWS,)),
    "aws.vpc_id": ("vpc-0123456789abcdef0", (AWS,)),
    "hetzner.location": ("nbg1", (HETZNER,)),
    "hetzner.network_zone": ("us-east", (HETZNER,)),
    "hetzner.image": ("debian-13-custom", (HETZNER,)),
    "hetzner.ssh_keys": (["ops laptop"], (HETZNER,)),
}
# Settings that are not changed in place by nature: the cloud is another stack altogether;
# the VPC's subnets come with `aws.vpc_id` (changed together, below).
NOT_CHANGED_ALONE: Final = {"cloud": "another cloud is another stack", "aws.subnet_ids": "vpc"}
TOGETHER: Final = {"aws.vpc_id": {"aws.subnet_ids": ["subnet-0a", "subnet-0b"]}}
# What a setting needs in place before it can change.
NEEDS: Final = {"dns.ttl": {"dns.zone": "Z0123456789ABC"}}


def test_every_setting_is_changed_below() -> None:
    from tests.test_settings import _leaf_keys

    leaves = {".".join(k) for k in _leaf_keys()}
    assert leaves == set(CHANGES) | set(NOT_CHANGED_ALONE)


def _run(config: dict[str, str], stack: str, now: datetime, mp: pytest.MonkeyPatch) -> OfflineRun:
    mp.setattr(deployment, "utc_now", lambda: now)
    return run_program(config, stack)


def base_config(stack: str, key: str = "") -> dict[str, str]:
    config = config_of(stack)
    config["jitsi-xxl:event"] = WINDOW
    for needed, value in NEEDS.get(key, {}).items():
        config = _set(config, needed, value)
    return config


CASES = [(key, stack) for key, (_, stacks) in CHANGES.items() for stack in stacks]


@pytest.mark.parametrize(("key", "stack"), CASES, ids=[f"{s}-{k}" for k, s in CASES])
def test_each_setting_is_live_or_refused_never_a_silent_replacement(
    key: str, stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    value, _ = CHANGES[key]
    config = base_config(stack, key)
    changed = _set(config, key, value)
    for extra, extra_value in TOGETHER.get(key, {}).items():
        changed = _set(changed, extra, extra_value)
    before = _run(config, stack, DURING, monkeypatch)
    after = _run(changed, stack, DURING, monkeypatch)
    steps = preview(before, after)
    assert steps, f"changing {key} changed nothing: the case tests nothing"
    found = [d for s in steps if (d := disruption(s)) is not None]
    old_doc = before.outputs["settings"].value
    new = parse_settings(after.outputs["settings"].value)
    lines = refusals(found, setting_changes(old_doc, new))
    # what would take the signaling VM away, or stop it, is always among the refused
    for s in steps:
        vm = s.type in {"aws:ec2/instance:Instance", "hcloud:index/server:Server"}
        if vm and s.under(("jitsi-xxl:signaling:",)) and (s.op != "update" or s.replace_keys):
            assert any(d.step == s for d in found), f"{key}: {s.name} {s.op} not refused"
    # and every refusal names the setting that led there
    for line in lines:
        assert key in line, line
    # the window of either deployment guards (moving it cannot open a gap)
    assert guarded([new, parse_settings(old_doc)], DURING)


LIVE: Final = {
    AWS: ("bridges.min", "bridges.max", "bridges.graceful_shutdown_max_minutes",
          "bridges.scale_on", "event.start", "event.end", "dns.ttl", "admin_cidrs"),
    # the bridges' template and bounds are the scaler VM's: it is replaced, no session lost
    HETZNER: ("bridges.min", "bridges.max", "bridges.graceful_shutdown_max_minutes",
              "bridges.websockets", "event.start", "event.end", "admin_cidrs"),
}  # fmt: skip
LIVE_CASES = [(stack, key) for stack, keys in LIVE.items() for key in keys]


@pytest.mark.parametrize(("stack", "key"), LIVE_CASES, ids=[f"{s}-{k}" for s, k in LIVE_CASES])
def test_live_settings_are_not_refused(
    stack: str, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an operator changes during an event applies in place: pool bounds, the drain bound
    (new bridges only, no roll), the scaling signal, the window (an overrun), the DNS TTL,
    SSH sources."""
    value, _ = CHANGES[key]
    config = base_config(stack, key)
    before = _run(config, stack, DURING, monkeypatch)
    after = _run(_set(config, key, value), stack, DURING, monkeypatch)
    steps = preview(before, after)
    assert steps, f"changing {key} changed nothing: the case tests nothing"
    found = [d for s in steps if (d := disruption(s)) is not None]
    assert not found, (key, found)


def test_a_roll_is_refused_only_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    config = base_config(AWS)
    changed = _set(config, "bridges.graceful_shutdown_max_minutes", 30)
    rolling = _set(config, "bridges.refresh_on_change", True)
    plain = preview(_run(config, AWS, DURING, monkeypatch), _run(changed, AWS, DURING, monkeypatch))
    assert not [s for s in plain if disruption(s)]
    base = _run(rolling, AWS, DURING, monkeypatch)
    after = _run(_set(rolling, "bridges.graceful_shutdown_max_minutes", 30), AWS, DURING,
                 monkeypatch)  # fmt: skip
    # the launch template's new version reaches the group: with refresh on, that rolls
    steps = preview(base, after)
    template = next(s for s in steps if s.type == "aws:ec2/launchTemplate:LaunchTemplate")
    # (the mocks give every template version 1: the group's new version is the engine's)
    kind = "aws:autoscaling/group:Group"
    group_urn = template.urn.replace("aws:ec2/launchTemplate:LaunchTemplate", kind)
    refresh = {"instanceRefresh": {"strategy": "Rolling"}}
    group = Step("update", group_urn, kind, ("launchTemplate",), new_inputs=refresh)
    found = disruption(group)
    assert found is not None
    assert "roll" in found.what


# --- the rule itself on single steps -----------------------------------------------------------


def urn(chain: str, name: str) -> str:
    return f"urn:pulumi:e::jitsi-xxl::jitsi-xxl:{chain}::{name}"


SIG = urn("signaling:AwsSignaling$aws:ec2/instance:Instance", "e-vm")
HSIG = urn("signaling:HetznerSignaling$hcloud:index/server:Server", "v")
SWEEP = urn("bridges:HetznerBridgePool$pulumi-python:dynamic:Resource", "sweep")
SCALER = urn("scaler:HetznerScaler$hcloud:index/server:Server", "scaler-vm")
DYNAMIC = "pulumi-python:dynamic:Resource"
ASG = urn("bridges:AwsBridgePool$aws:autoscaling/group:Group", "g")
SECRET = urn("secrets:StackSecrets$random:index/randomPassword:RandomPassword", "p")
INSTANCE, SERVER = "aws:ec2/instance:Instance", "hcloud:index/server:Server"


@pytest.mark.parametrize(
    ("step", "harmful"),
    [
        (Step("replace", SIG, INSTANCE, ("userDataBase64",), ("userDataBase64",)), True),
        (Step("delete", SIG, INSTANCE), True),
        (Step("update", SIG, INSTANCE, ("tags", "tagsAll")), False),
        (Step("update", SIG, INSTANCE, ("instanceType",)), True),
        (Step("update", SIG, INSTANCE, ("vpcSecurityGroupIds",)), False),
        (Step("update", HSIG, SERVER, ("serverType",)), True),
        (Step("update", HSIG, SERVER, ("labels",)), False),
        (Step("delete", SWEEP, DYNAMIC), True),  # it would delete every bridge
        (Step("update", SWEEP, DYNAMIC, ("token",)), False),
        (Step("replace", SCALER, SERVER, ("userData",), ("userData",)), False),  # no session
        (Step("update", ASG, "aws:autoscaling/group:Group", ("launchTemplate",),
              new_inputs={"instanceRefresh": {"strategy": "Rolling"}}), True),
        (Step("update", ASG, "aws:autoscaling/group:Group", ("launchTemplate",),
              new_inputs={}), False),
        (Step("update", ASG, "aws:autoscaling/group:Group", ("maxSize",),
              new_inputs={"instanceRefresh": {"strategy": "Rolling"}}), False),
        (Step("replace", SECRET, "random:index/randomPassword:RandomPassword"), False),
        (Step("create", SIG, INSTANCE), False),
    ],
)  # fmt: skip
def test_which_steps_cut_viewers_off(step: Step, harmful: bool) -> None:
    assert (disruption(step) is not None) == harmful


def test_the_window_runs_from_growth_to_shrink() -> None:
    s = parse_settings(
        json.loads(json.dumps({"cloud": "aws", "domain": "meet.example.org",
                               "tls": {"mode": "self-signed"},
                               "event": json.loads(WINDOW)}))
    )  # fmt: skip
    assert not guarded([s], START - timedelta(minutes=31))
    assert guarded([s], START - timedelta(minutes=30))
    assert guarded([s], START + timedelta(hours=4, minutes=14))
    assert not guarded([s], START + timedelta(hours=4, minutes=15))
    assert not guarded([None], START)


def test_changes_are_traced_to_the_vm_they_reach() -> None:
    old = parse_settings({"cloud": "aws", "domain": "meet.example.org",
                          "tls": {"mode": "self-signed"}})  # fmt: skip
    doc = old.model_dump(mode="json")
    bridges = {**doc["bridges"], "graceful_shutdown_max_minutes": 30}
    new = parse_settings({**doc, "audience": 12000, "bridges": bridges})
    reached = {c.key: c.reaches for c in setting_changes(doc, new)}
    assert reached["bridges.graceful_shutdown_max_minutes"] == {BRIDGES}
    assert SIGNALING in reached["audience"]


# --- xxl event up ----------------------------------------------------------------------------


class FakeStack:
    """What `events.up` uses of an Automation API stack: preview events, outputs, up."""

    def __init__(self, steps: list[dict[str, Any]], previous: Mapping[str, Any] | None) -> None:
        self.steps = steps
        self.previous = previous
        self.upped = False

    def preview(self, on_event: Callable[[Any], None]) -> None:
        for i, metadata in enumerate(self.steps):
            on_event(engine.EngineEvent.from_json(
                {"sequence": i, "timestamp": 0, "resourcePreEvent": {"metadata": metadata}}
            ))  # fmt: skip

    def outputs(self) -> dict[str, Any]:
        if self.previous is None:
            return {}
        return {"settings": _Output(self.previous)}

    def up(self, on_output: Callable[[str], None]) -> Any:
        self.upped = True
        return _Result()


class _Output:
    def __init__(self, value: Any) -> None:
        self.value = value
        self.secret = False


class _Result:
    outputs: dict[str, Any] = {"url": _Output("https://live.example.org/")}  # noqa: RUF012


def event_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, audience: int) -> Path:
    monkeypatch.setattr(events, "STACKS_DIR", tmp_path)
    window = json.loads(WINDOW)
    config = events.event_config(
        cloud="aws", audience=audience, domain="live.example.org", **window
    )
    events.create("summit", config, tmp_path, now=START - timedelta(days=3))
    return tmp_path


REPLACE_VM = {
    "op": "replace",
    "urn": SIG,
    "type": INSTANCE,
    "provider": "",
    "keys": ["userDataBase64"],
    "diffs": ["userDataBase64"],
}


def test_event_up_refuses_to_replace_the_vm_during_the_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_stack(tmp_path, monkeypatch, audience=12000)
    old = load_stack_file(events.stack_path("summit", tmp_path)).settings
    previous = {**old.model_dump(mode="json"), "audience": 10000}
    stack = FakeStack([REPLACE_VM], previous)
    with pytest.raises(events.DisruptionRefusedError) as refused:
        events.up("summit", lambda _: None, now=DURING, stack=stack)
    assert not stack.upped
    (line,) = refused.value.lines
    assert "e-vm" in line
    assert "would be replaced: userDataBase64" in line
    assert "audience (10000 -> 12000)" in line
    # told to, it deploys
    allowed = FakeStack([REPLACE_VM], previous)
    events.up("summit", lambda _: None, now=DURING, stack=allowed, allow_disruption=True)
    assert allowed.upped
    # before the window, the same change deploys with a note
    notes: list[str] = []
    early = FakeStack([REPLACE_VM], previous)
    events.up("summit", notes.append, now=START - timedelta(days=1), stack=early)
    assert early.upped
    assert any(n.startswith("note: ") and "e-vm" in n for n in notes)


def test_cli_says_what_it_refused_and_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    event_stack(tmp_path, monkeypatch, audience=10000)

    def refuse(name: str, allow_disruption: bool) -> Mapping[str, Any]:
        assert not allow_disruption
        raise events.DisruptionRefusedError(["e-vm (aws:ec2/instance:Instance) would be replaced"])

    monkeypatch.setattr(events, "up", refuse)
    assert cli.main(["event", "up", "summit"]) == cli.EXIT_REFUSED
    err = capsys.readouterr().err
    assert "would be replaced" in err
    assert "--allow-disruption" in err
    assert "Traceback" not in err
