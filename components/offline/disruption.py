"""What a deployment would do to a running event, read from its preview, and what is refused.

During an event (from when the pool grows before the start until it is emptied after the
end) three things would cut viewers off, and `xxl event up` refuses them unless told
`--allow-disruption`:

- replacing or deleting the signaling VM, its address or its network (every viewer is
  connected to that one VM; a new one also needs a new certificate), or changing the VM in
  a way the cloud applies by stopping it (machine type, user data, image);
- replacing or deleting the bridge pool, or rolling its bridges onto a new template (each
  drains, then drops who is left); on Hetzner, deleting or replacing the pool's sweep (its
  delete removes every bridge).

Replacing Hetzner's scaler VM is not among them: it holds no session, and its autoscaler
picks the pool up where the old one left it (servers, drains and names are in the API).

Each refusal names the resource, what in it would change, and the settings changed since
the last deployment that lead there (found by rendering the VMs with one change at a time).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from components.model.credentials import Credentials
from components.model.planner import plan
from components.model.schedule import grow_at, shrink_at
from components.model.settings import ConfigError, Settings, parse_settings
from components.rendering.bridge_files import bridge_bundle
from components.rendering.signaling_files import signaling_bundle

# Engine operations that take a resource away (pulumi's OpType values).
GONE_OPS: Final = frozenset(
    {"replace", "create-replacement", "delete-replaced", "delete", "discard", "discard-replaced"}
)
# Components whose resources an event cannot lose (their type appears in a child's URN):
# everything of the signaling VM's; of the network, what carries traffic (a replaced rule is
# made before the old one goes); of the pool, the group, its drain hook and Hetzner's sweep.
SIGNALING_COMPONENTS: Final = ("jitsi-xxl:signaling:",)
NETWORK_COMPONENTS: Final = ("jitsi-xxl:network:",)
BRIDGE_COMPONENTS: Final = ("jitsi-xxl:bridges:",)
NETWORK_TYPES: Final = frozenset(
    {
        "aws:ec2/vpc:Vpc",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/routeTable:RouteTable",
        "aws:ec2/routeTableAssociation:RouteTableAssociation",
        "hcloud:index/network:Network",
        "hcloud:index/networkSubnet:NetworkSubnet",
        "hcloud:index/firewall:Firewall",
    }
)
BRIDGE_TYPES: Final = frozenset(
    {
        "aws:autoscaling/group:Group",
        "aws:autoscaling/lifecycleHook:LifecycleHook",
        "pulumi-python:dynamic:Resource",  # Hetzner's sweep
    }
)
# Properties of the VMs the clouds change only with the VM stopped (EC2: instance type and
# user data; Hetzner: a resize powers the server off, a new image rebuilds it).
STOPPING_KEYS: Final = {
    "aws:ec2/instance:Instance": frozenset(
        {"instanceType", "userData", "userDataBase64", "ebsOptimized"}
    ),
    "hcloud:index/server:Server": frozenset({"serverType", "image", "userData"}),
}
GROUP_TYPE: Final = "aws:autoscaling/group:Group"
# Which rendered VM a disrupted resource belongs to: the settings behind it are looked for there.
SIGNALING, BRIDGES = "signaling VM", "bridges"


@dataclass(frozen=True)
class Step:
    """One step of a preview, as much of it as the decision needs."""

    op: str
    urn: str
    type: str
    diffs: tuple[str, ...] = ()
    replace_keys: tuple[str, ...] = ()
    new_inputs: Mapping[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    def under(self, components: Iterable[str]) -> bool:
        chain = self.urn.split("::")[2] if self.urn.count("::") >= 3 else ""  # noqa: PLR2004
        return any(c in chain for c in components)


@dataclass(frozen=True)
class Disruption:
    """A step that would cut viewers off, and why."""

    step: Step
    what: str  # e.g. "would be replaced"
    keys: tuple[str, ...]  # the resource's properties behind it
    vm: str  # SIGNALING or BRIDGES


def disruption(step: Step) -> Disruption | None:
    """The harm `step` would do to a running event, or None."""
    signaling = step.under(SIGNALING_COMPONENTS) or (
        step.under(NETWORK_COMPONENTS) and step.type in NETWORK_TYPES
    )
    bridges = step.under(BRIDGE_COMPONENTS) and step.type in BRIDGE_TYPES
    if not (signaling or bridges):
        return None
    vm = SIGNALING if signaling else BRIDGES
    keys = step.replace_keys or step.diffs
    if step.op in GONE_OPS:
        verb = "deleted" if step.op.startswith("delete") or step.op == "discard" else "replaced"
        return Disruption(step, f"would be {verb}", keys, vm)
    if step.op != "update":
        return None
    if signaling and step.type in STOPPING_KEYS:
        stopping = tuple(k for k in step.diffs if k in STOPPING_KEYS[step.type])
        if stopping:
            return Disruption(step, "would be stopped to change", stopping, vm)
    if step.type == GROUP_TYPE and (step.new_inputs or {}).get("instanceRefresh"):
        rolled = tuple(k for k in step.diffs if k in {"launchTemplate", "mixedInstancesPolicy"})
        if rolled:
            return Disruption(step, "would roll every bridge (instance refresh)", rolled, vm)
    return None


def guarded(settings: Iterable[Settings | None], now: datetime) -> bool:
    """Whether `now` lies in the window of any of these settings (old or new): from the
    pool's growth before the start to its shrink after the end."""
    windows = [s.event for s in settings if s is not None and s.event is not None]
    return any(grow_at(w.start) <= now < shrink_at(w.end) for w in windows)


# --- which settings lead there -------------------------------------------------------------


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the leaves that differ (objects are compared key by key)."""
    keys: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            keys += changed_keys(a, b, f"{path}.")
        elif a != b:
            keys.append(path)
    return keys


def _leaf(doc: Mapping[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _with_leaf(doc: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(doc))
    head, *rest = path.split(".")
    if not rest:
        copy[head] = value
    else:
        inner = copy.get(head)
        copy[head] = _with_leaf(inner if isinstance(inner, Mapping) else {}, ".".join(rest), value)
    return copy


def _renders(settings: Settings) -> dict[str, str]:
    the_plan = plan(settings)
    creds = Credentials.placeholders()
    return {
        SIGNALING: signaling_bundle(settings, the_plan, creds).user_data,
        BRIDGES: bridge_bundle(settings, the_plan, creds).user_data,
    }


@dataclass(frozen=True)
class Change:
    """One setting changed since the last deployment, and the VMs its change reaches."""

    key: str
    old: Any
    new: Any
    reaches: frozenset[str]

    def describe(self) -> str:
        return f"{self.key} ({json.dumps(self.old)} -> {json.dumps(self.new)})"


def setting_changes(old: Mapping[str, Any], new: Settings) -> list[Change]:
    """Each changed setting with the VMs whose render it changes, one change at a time."""
    new_doc = new.model_dump(mode="json")
    try:
        base = _renders(parse_settings(old))
    except (ConfigError, ValueError):
        base = None
    changes = []
    for key in changed_keys(old, new_doc):
        reaches = frozenset({SIGNALING, BRIDGES})  # if it cannot be told apart: both
        if base is not None:
            try:
                one = _renders(parse_settings(_with_leaf(old, key, _leaf(new_doc, key))))
                reaches = frozenset(vm for vm, text in one.items() if text != base[vm])
            except (ConfigError, ValueError):
                pass  # valid only together with another change
        changes.append(Change(key, _leaf(old, key), _leaf(new_doc, key), reaches))
    return changes


def refusals(disruptions: Iterable[Disruption], changes: Iterable[Change]) -> list[str]:
    """One line per disruption: the resource, what would happen, and the settings behind it."""
    changes = list(changes)
    lines = []
    for d in disruptions:
        line = f"{d.step.name} ({d.step.type}) {d.what}"
        if d.keys:
            line += f": {', '.join(d.keys)}"
        causes = [c.describe() for c in changes if d.vm in c.reaches]
        if causes:
            line += f"; changed settings that reach the {d.vm}: {', '.join(causes)}"
        elif changes:
            line += "; no changed setting reaches it alone: " + ", ".join(
                c.describe() for c in changes
            )
        lines.append(line)
    return lines
