"""Run the real Pulumi program without the Pulumi CLI, a cloud account or credentials.

`xxl plan` and the tests both use this: the program (`__main__.py`) runs under the SDK's
mocks, which stand in for the engine and the providers. Every resource the program
registers is recorded with its URN, id, inputs, parent and dependencies, so that tests can
follow the wiring (an id found in an input names exactly one resource); the providers'
computed outputs (ids, addresses, names) are filled with documentation addresses
(RFC 5737) and ids derived from type and name; an invoke that is not answered here fails
loudly instead of returning nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import runpy
import threading
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pulumi
from pulumi.runtime.mocks import MockMonitor

from components.cloud.stack_config import STAND_IN_API_TOKEN
from components.model.project import PROJECT, Cloud
from components.model.settings import API_TOKEN_KEY, SECRET_KEYS, is_secure

PROGRAM: Final = Path(__file__).resolve().parents[2] / "__main__.py"
OFFLINE_AMI: Final = "ami-0123456789abcdef0"
ZONES: Final = ("zone-a", "zone-b", "zone-c")


@dataclass
class Registered:
    """One resource the program registered.

    `parent` and `dependencies` are URNs. `dependencies` is what the engine would order
    the resource after: `depends_on` (a component there stands for its resources) and every
    resource whose output feeds an input; `property_dependencies` is the latter by input.
    """

    type: str
    name: str
    inputs: dict[str, Any]
    ignore_changes: list[str] = field(default_factory=list)
    parent: str = ""
    secret_inputs: frozenset[str] = frozenset()
    id: str = ""
    urn: str = ""
    dependencies: frozenset[str] = frozenset()
    property_dependencies: dict[str, frozenset[str]] = field(default_factory=dict)


class OfflineMocks(pulumi.runtime.Mocks):
    """Stands in for the providers: records resources, answers computed outputs and the
    invokes the program makes, and refuses any other invoke."""

    def __init__(self, region: str = "eu-central-1") -> None:
        self.resources: list[Registered] = []
        self.region = region
        self._ids: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        # the monitor completes each record (URN, parent, dependencies) on the thread that
        # registered it: the record made last on that thread
        self._last = threading.local()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        secret = frozenset(k for k, v in args.inputs.items() if _secret_value(v) is not None)
        inputs = {k: _unwrap(v) for k, v in args.inputs.items()}
        with self._lock:
            id_ = self._new_id(args.typ, args.name)
            registered = Registered(args.typ, args.name, inputs, secret_inputs=secret, id=id_)
            self.resources.append(registered)
        self._last.record = registered
        outputs = dict(args.inputs)
        outputs.update(_computed(args.typ, args.name, int(id_), self.region, outputs))
        return id_, outputs

    def _new_id(self, typ: str, name: str) -> str:
        """A number from type and name (the same plan, the same ids; Hetzner's ids are
        integers), never one already given to another resource."""
        digest = int.from_bytes(hashlib.sha256(f"{typ}::{name}".encode()).digest()[:8], "big")
        # twelve digits: distinct from any port, size or count, and exact as a float
        number = 10**11 + digest % (9 * 10**11)
        while self._ids.get(str(number), (typ, name)) != (typ, name):
            number += 1
        self._ids[str(number)] = (typ, name)
        return str(number)

    def take_last(self) -> Registered | None:
        """The record `new_resource` made last on this thread, once."""
        record: Registered | None = getattr(self._last, "record", None)
        self._last.record = None
        return record

    # The SDK accepts a plain dict here (its annotation says tuple, and a (dict, None) tuple
    # fails inside the SDK): hence the ignore.
    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        token = args.token
        if token == "aws:ec2/getAmi:getAmi":  # noqa: S105 - an invoke token, not a password
            return {"id": OFFLINE_AMI, "architecture": "x86_64", "name": "debian-13-amd64-offline"}
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":  # noqa: S105
            names = [f"{self.region}{z[-1]}" for z in ZONES]
            return {"names": names, "zoneIds": names, "id": self.region}
        raise NotImplementedError(f"no offline answer for invoke {token}")


def _computed(  # noqa: PLR0911 - one answer per resource type
    typ: str, name: str, number: int, region: str, inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Outputs a real provider would compute."""
    arn = f"arn:aws:service:{region}:000000000000:{name}"
    # from the name, not the registration order (which varies): the same plan, the same text
    host = 10 + zlib.crc32(name.encode()) % 200
    match typ:
        case "aws:ec2/eip:Eip":
            return {"publicIp": f"203.0.113.{host}", "allocationId": f"eipalloc-{number}"}
        case "aws:ec2/instance:Instance":
            return {"privateIp": inputs.get("privateIp", "10.0.16.10"), "arn": arn}
        case "aws:autoscaling/group:Group":
            return {"name": name, "arn": arn}
        case "aws:ec2/launchTemplate:LaunchTemplate":
            return {"latestVersion": 1, "arn": arn}
        case "aws:iam/role:Role" | "aws:iam/instanceProfile:InstanceProfile":
            return {"name": name, "arn": arn}
        case "aws:ssm/parameter:Parameter":
            return {"arn": f"arn:aws:ssm:{region}:000000000000:parameter{inputs.get('name', '')}"}
        case "hcloud:index/primaryIp:PrimaryIp":
            return {"ipAddress": f"198.51.100.{host}"}
        case "random:index/randomPassword:RandomPassword":
            return {"result": f"offline-{name}"}
        case "tls:index/privateKey:PrivateKey":
            # the shape of an ed25519 key, nothing that logs in anywhere
            return {
                "publicKeyOpenssh": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{number:043d} {name}",
                "privateKeyOpenssh": f"offline-private-key-{name}",
            }
    return {}


class RecordingMonitor(MockMonitor):
    """The SDK's mock monitor, also keeping what Mocks do not see: the URN, options, the
    parent and the dependencies of each registration."""

    def __init__(self, mocks: OfflineMocks) -> None:
        super().__init__(mocks)
        self.offline = mocks

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
        self.offline.take_last()
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        # registrations come from several threads; the mocks ran on this one
        registered = self.offline.take_last()
        if registered is not None:
            registered.urn = response.urn
            registered.ignore_changes = list(request.ignoreChanges)
            registered.parent = request.parent
            registered.dependencies = frozenset(request.dependencies)
            registered.property_dependencies = {
                key: frozenset(deps.urns) for key, deps in request.propertyDependencies.items()
            }
        return response


class Wiring:
    """The recorded resources indexed for following references: by URN and by id."""

    def __init__(self, resources: list[Registered]) -> None:
        self.resources = resources
        self.by_urn = {r.urn: r for r in resources if r.urn}
        self.by_id = {r.id: r for r in resources if r.id}

    def resolve(self, value: Any) -> Registered | None:
        """The resource whose id `value` is (a Hetzner id arrives as a number), or None."""
        if isinstance(value, bool):
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int | str):
            return self.by_id.get(str(value))
        return None

    def references(self, r: Registered, key: str) -> list[Registered]:
        """The resources whose ids appear anywhere in input `key` of `r`, in order."""
        return [x for v in _leaves(r.inputs.get(key)) if (x := self.resolve(v)) is not None]

    def parent(self, r: Registered) -> Registered | None:
        return self.by_urn.get(r.parent)

    def dependencies(self, r: Registered, key: str | None = None) -> list[Registered]:
        """What `r` depends on (of input `key` only, if given); the stack is not recorded."""
        urns = r.dependencies if key is None else r.property_dependencies.get(key, frozenset())
        return [self.by_urn[u] for u in sorted(urns) if u in self.by_urn]


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    elif value is not None:
        yield value


# How the SDK marks a secret on the wire (pulumi/sdk/python/lib/pulumi/runtime/rpc.py).
_SIG_KEY: Final = "4dabf18193072939515e22adb298388d"
_SECRET_SIG: Final = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 - a marker, not a secret


def _secret_value(value: Any) -> tuple[Any] | None:
    """`(inner,)` if `value` is a secret as the mocks receive it, else None."""
    if isinstance(value, dict) and value.get(_SIG_KEY) == _SECRET_SIG:
        return (value.get("value"),)
    return None


def _unwrap(value: Any) -> Any:
    """The plain value, secrets opened (the record is for assertions and plan output)."""
    if (inner := _secret_value(value)) is not None:
        return _unwrap(inner[0])
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def stack_config(doc: Mapping[str, Any], stack_secrets: Mapping[str, str]) -> dict[str, str]:
    """A stack file's `config` as the CLI hands it to the program: objects as JSON text,
    scalars as text; encrypted values replaced by `stack_secrets` (offline stand-ins)."""
    config: dict[str, str] = {}
    for key, value in (doc.get("config") or {}).items():
        if is_secure(value):
            name = str(key).removeprefix(f"{PROJECT}:")
            if name in SECRET_KEYS and name in stack_secrets:
                config[key] = stack_secrets[name]
            continue
        config[key] = json.dumps(value) if isinstance(value, dict | list) else str(value)
    # a Hetzner stack needs the autoscaler's token: offline, a stand-in that no API takes
    token_key = f"{PROJECT}:{API_TOKEN_KEY}"
    if config.get(f"{PROJECT}:cloud") == Cloud.hetzner.value and token_key not in config:
        config[token_key] = stack_secrets.get(API_TOKEN_KEY, STAND_IN_API_TOKEN)
    return config


@dataclass(frozen=True)
class OutputValue:
    """A resolved stack output and whether it is secret."""

    value: Any
    secret: bool


@dataclass
class OfflineRun:
    """The resources and outputs of one run of the program under mocks."""

    resources: list[Registered]
    outputs: dict[str, OutputValue]


def run_program(
    config: Mapping[str, str],
    stack: str,
    program: Path = PROGRAM,
    mocks: OfflineMocks | None = None,
    *,
    preview: bool = False,
) -> OfflineRun:
    """Run `program` under the mocks with `config`; returns what it registered and exported."""
    mocks = mocks or OfflineMocks(region=str(config.get("aws:region", "eu-central-1")))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        pulumi.runtime.settings.ROOT.set(None)
        pulumi.runtime.set_mocks(
            mocks, project=PROJECT, stack=stack, preview=preview, monitor=RecordingMonitor(mocks)
        )
        pulumi.runtime.set_all_config(dict(config))
        loop.run_until_complete(pulumi.runtime.stack.wait_for_rpcs())

        @pulumi.runtime.test  # type: ignore[untyped-decorator]
        def program_run() -> None:
            runpy.run_path(str(program), run_name="__main__")

        program_run()
        root = pulumi.runtime.settings.get_root_resource()
        exported: dict[str, Any] = dict(getattr(root, "outputs", {}) or {})
        outputs = {
            key: OutputValue(*loop.run_until_complete(_resolve(value)))
            for key, value in exported.items()
        }
        return OfflineRun(resources=mocks.resources, outputs=outputs)
    finally:
        _settle(loop)
        asyncio.set_event_loop(None)
        loop.close()


def _settle(loop: asyncio.AbstractEventLoop) -> None:
    """Leave nothing of this run behind: a program that failed part-way (an error in an
    `apply`) leaves tasks and RPCs that the next run, on a new loop, would wait for."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    settings = pulumi.runtime.settings.SETTINGS
    with settings.lock:
        settings.outputs.clear()
    settings.rpc_manager.clear()


async def _resolve(value: Any) -> tuple[Any, bool]:
    output = pulumi.Output.from_input(value)
    return await output.future(), bool(await output.is_secret())
