"""Bridge twins: videobridge VMs booted from their exact user data beside a signaling twin.

Each bridge is a second Debian 13 container on the signaling twin's private network, booted
from `bridge_bundle`'s user data, rendered for the twin's archive (the one render option that
differs from the cloud's: `packages`). What the cloud would provide is stood in for:

- the instance metadata service and AWS's APIs (`cloud_stub`), in a `cloud` host on the
  private network; each bridge reaches the metadata address on-link, as on EC2 and Hetzner;
- on AWS, the environment that points boto3 at the API stand-in (`AWS_ENDPOINT_URL`), as a
  systemd `DefaultEnvironment` drop-in in the container's root (never in the rendered files);
  the bridge's secrets sit in the SSM stand-in, under the path its bootstrap asks for;
- on Hetzner, the public address on the interface (where Hetzner puts it);
- the videobridge itself: the `jitsi-videobridge2` stand-in package (`standins/jvb.py`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from components.model.credentials import BRIDGE_SECRETS
from components.model.ports import JVB_PRIVATE_PORT
from components.model.project import METADATA_ADDRESS, Cloud
from components.model.settings import Settings
from components.rendering.bridge_files import bridge_bundle
from components.rendering.bridge_files import secrets as bridge_secrets
from components.rendering.package_sources import image_archive_only
from components.rendering.secrets_delivery import OFFLINE_STACK
from components.rendering.userdata import VmBundle, user_data_bytes
from components.twin import container, image
from components.twin.cloud_stub import CloudStub, Instance, serving
from components.twin.rig import (
    PUBLIC_PREFIX,
    Twin,
    TwinError,
    Vm,
    archive_version,
    default_environment,
    seed,
    vm_root,
)

# Hosts of the signaling VM's subnet (it is .10): bridges from .100, the API stand-in at .250.
FIRST_BRIDGE_HOST: Final = 100
AWS_API_HOST: Final = 250
FIRST_PUBLIC: Final = "203.0.113.30"
AWS_REGION: Final = "eu-central-1"
HETZNER_REGION: Final = "eu-central"
AUTOSCALING_GROUP: Final = "jitsi-xxl-jvb"
ENVIRONMENT_DROP_IN: Final = "/etc/systemd/system.conf.d/90-jitsi-xxl-twin-aws.conf"
POWEROFF_TIMEOUT: Final = 300.0


@dataclass(frozen=True)
class CloudSide:
    """The stand-ins' recorded state and where the bridges reach them."""

    stub: CloudStub
    netns: Path
    aws_endpoint: str


def subnet_of(twin: Twin) -> tuple[ipaddress.IPv4Address, int]:
    """The first host address of the signaling VM's subnet, and the private range's prefix."""
    first = ipaddress.IPv4Network(twin.plan.network.subnets[0]).network_address
    return first, int(twin.settings.network.cidr.split("/")[1])


@contextlib.contextmanager
def cloud(twin: Twin) -> Iterator[CloudSide]:
    """The metadata service and AWS's APIs on the twin's private network."""
    first, prefix = subnet_of(twin)
    api = str(first + AWS_API_HOST)
    stub = CloudStub()
    with container.host_netns(twin.lan, "cloud", METADATA_ADDRESS, 32) as netns:
        container.add_address(netns, api, prefix)
        with serving(netns, stub, api):
            yield CloudSide(stub, netns, f"http://{api}")


@dataclass(kw_only=True)
class Bridge(Vm):
    """A booted bridge twin, with its cloud's view of it."""

    index: int
    settings: Settings
    bundle: VmBundle = field(repr=False)  # the user data may carry secrets (Hetzner)
    instance: Instance
    side: CloudSide

    @property
    def private_ip(self) -> str:
        return self.instance.private_ip

    def set_lifecycle_state(self, state: str) -> None:
        """What EC2's metadata says about this instance's Auto Scaling lifecycle."""
        self.side.stub.set_lifecycle_state(self.private_ip, state)

    def _jvb(self, method: str, path: str, body: dict[str, Any] | None = None) -> str:
        argv = ["curl", "-fsS", "-m", "5", "-X", method]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
        done = self.run(*argv, f"http://127.0.0.1:{JVB_PRIVATE_PORT}{path}", check=True)
        return done.stdout

    def set_load(self, **load: float) -> dict[str, Any]:
        """The stand-in's load (participants, octo_endpoints, stress_level, leave_seconds,
        exit_delay_seconds): a control of the stand-in only, see standins/jvb.py."""
        stats: dict[str, Any] = json.loads(self._jvb("POST", "/twin/load", dict(load)))
        return stats

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = json.loads(self._jvb("GET", "/colibri/stats"))
        return stats

    def poweroff(self, timeout: float = POWEROFF_TIMEOUT) -> None:
        """`systemctl poweroff` inside, and wait until the container is gone; the root stays
        (mounted) for reading its journal."""
        if self.box is None:
            raise TwinError("the bridge is not running")
        self.run("systemctl", "poweroff", "--no-block", check=True)
        try:
            self.box.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TwinError(f"bridge {self.index} did not power off in {timeout:.0f} s") from None
        finally:
            self.shutdown()

    def journal(self, *args: str) -> str:
        """The journal of the stopped bridge, read from its kept root (its own journalctl)."""
        if self.box is not None:
            raise TwinError("power the bridge off first")
        done = subprocess.run(
            [image.tool("chroot"), str(self.root), "journalctl", "--directory=/var/log/journal",
             "--no-pager", "-o", "short-iso-precise", *args],
            check=False, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if done.returncode != 0:
            raise TwinError(f"journalctl in the bridge's root: {done.stderr.strip()}")
        return done.stdout


def bridge_render(twin: Twin, cloud_name: Cloud) -> tuple[Settings, VmBundle]:
    """The bridge's user data: the twin's stack on `cloud_name`, for the twin's archive."""
    settings = twin.settings.model_copy(update={"cloud": cloud_name})
    packages = image_archive_only(archive_version(twin.archive, "prosody"))
    return settings, bridge_bundle(settings, twin.plan, twin.creds, packages=packages)


def _instance(twin: Twin, side: CloudSide, index: int, cloud_name: Cloud) -> Instance:
    first, _prefix = subnet_of(twin)
    if cloud_name is Cloud.aws:
        instance_id, region = "i-0" + secrets.token_hex(8)[:16], AWS_REGION
    else:
        instance_id, region = str(40_000_000 + secrets.randbelow(10_000_000)), HETZNER_REGION
    return Instance(
        cloud=cloud_name,
        private_ip=str(first + FIRST_BRIDGE_HOST + index),
        instance_id=instance_id,
        public_ip=str(ipaddress.IPv4Address(FIRST_PUBLIC) + index),
        region=region,
        group=AUTOSCALING_GROUP,
        network=twin.settings.network.cidr,
    )


@contextlib.contextmanager
def running(
    twin: Twin, side: CloudSide, index: int, cloud_name: Cloud, *, keep: Path | None = None
) -> Iterator[Bridge]:
    """Boot bridge `index` of `cloud_name` beside `twin`; everything is undone on exit."""
    settings, bundle = bridge_render(twin, cloud_name)
    instance = _instance(twin, side, index, cloud_name)
    _first, prefix = subnet_of(twin)
    if cloud_name is Cloud.aws:
        how = bridge_secrets(settings, OFFLINE_STACK)
        for name, value in twin.creds.env(BRIDGE_SECRETS).items():
            side.stub.parameters[how.path.rstrip("/") + "/" + name] = value
    try:
        with contextlib.ExitStack() as stack:
            scratch, root = vm_root(stack, f"bridge{index}-", image.base_root(), keep)
            seed(root, user_data_bytes(bundle.user_data, cloud_name), instance.instance_id,
                 f"bridge-{index}")  # fmt: skip
            if cloud_name is Cloud.aws:
                _aws_environment(root, side.aws_endpoint)
            netns = stack.enter_context(
                container.host_netns(twin.lan, f"b{index}", instance.private_ip, prefix)
            )
            # the cloud's link-local metadata address is on-link, as a cloud's DHCP routes it
            subprocess.run(
                [image.tool("ip"), "-n", netns.name, "route", "add", f"{METADATA_ADDRESS}/32",
                 "dev", "eth0"],
                check=True, capture_output=True,
            )  # fmt: skip
            if cloud_name is Cloud.hetzner:
                container.add_address(netns, instance.public_ip, PUBLIC_PREFIX)
            side.stub.instances[instance.private_ip] = instance
            stack.callback(side.stub.instances.pop, instance.private_ip, None)
            bridge = Bridge(
                root=root, netns=netns, console=scratch / "console.log", archive=twin.archive,
                index=index, settings=settings, bundle=bundle, instance=instance, side=side,
            )  # fmt: skip
            stack.callback(bridge.shutdown)
            bridge.boot()
            yield bridge
    except (container.ContainerError, image.ImageError, subprocess.CalledProcessError) as exc:
        raise TwinError(f"bridge {index}: {exc}") from None


def _aws_environment(root: Path, endpoint: str) -> None:
    """What the cloud gives every service of an EC2 instance here: boto3's endpoint."""
    default_environment(
        root,
        ENVIRONMENT_DROP_IN,
        "The twin's AWS: boto3 reaches the API stand-in on the private network.",
        f"AWS_ENDPOINT_URL={endpoint}",
    )


def wait_for(what: str, check: Any, timeout: float, step: float = 1.0) -> Any:
    """`check()` until it returns something true; TwinError naming `what` past `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(step)
    raise TwinError(f"{what}: not within {timeout:.0f} s")
