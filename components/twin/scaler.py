"""The scaler twin: Hetzner's scaler VM booted from its exact user data beside the signaling
twin and its bridges, with Hetzner's API stood in for.

The scaler VM is a Debian 13 container on the twin's private network, booted from
`scaler_bundle`'s user data (rendered for the twin's archive, the one render option that
differs from the cloud's: the bridges' `packages`). Its autoscaler runs with Debian's own
`python3-hcloud`. What Hetzner would provide is stood in for:

- the Hetzner Cloud API (`hcloud_api.HcloudApi`), served in the `cloud` host of the bridge
  twins; the autoscaler reaches it through `HCLOUD_ENDPOINT` (the variable Hetzner's own CLI
  reads), set as a systemd `DefaultEnvironment` drop-in in the container's root, never in the
  rendered files;
- the servers it lists: the test registers the bridge twins there, with the stack's labels
  and their private addresses, so the autoscaler reads their real stress boards.
"""

from __future__ import annotations

import contextlib
import functools
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from components.agents.hetzner_autoscaler import ENDPOINT_VARIABLE
from components.model.planner import plan
from components.model.project import Cloud
from components.model.settings import Settings
from components.rendering.package_sources import image_archive_only
from components.rendering.scaler_files import scaler_bundle
from components.rendering.userdata import VmBundle, user_data_bytes
from components.twin import container, image
from components.twin.bridges import AWS_API_HOST, CloudSide, subnet_of
from components.twin.hcloud_api import HcloudApi, make_server, serving
from components.twin.rig import (
    Twin,
    TwinError,
    Vm,
    archive_version,
    default_environment,
    seed,
    vm_root,
)

# The scaler VM's host in the signaling VM's subnet; the API stand-in beside AWS's.
SCALER_HOST: Final = 240
HCLOUD_API_PORT: Final = 8090
ENVIRONMENT_DROP_IN: Final = "/etc/systemd/system.conf.d/90-jitsi-xxl-twin-hcloud.conf"


@dataclass(kw_only=True)
class Scaler(Vm):
    """A booted scaler twin."""

    settings: Settings
    bundle: VmBundle = field(repr=False)  # its user data carries the bridges' login
    private_ip: str


@contextlib.contextmanager
def hcloud(twin: Twin, side: CloudSide, api: HcloudApi) -> Iterator[HcloudApi]:
    """`api` served on the twin's private network, in the cloud host; `api.url` says where."""
    first, _prefix = subnet_of(twin)
    address = str(first + AWS_API_HOST)
    make = functools.partial(
        container.run_in_netns,
        side.netns,
        functools.partial(make_server, api, address, HCLOUD_API_PORT),
    )
    with serving(api, make) as served:
        yield served


def scaler_render(twin: Twin, settings: Settings) -> VmBundle:
    """The scaler VM's user data for `settings` (the twin's stack on Hetzner, its pool bounds
    as the test wants them), without an API token: the test gives one, or not."""
    packages = image_archive_only(archive_version(twin.archive, "prosody"))
    return scaler_bundle(settings, plan(settings), twin.creds, packages=packages)


@contextlib.contextmanager
def running(
    twin: Twin, settings: Settings, api_url: str, *, keep: Path | None = None
) -> Iterator[Scaler]:
    """Boot the scaler VM of `settings` beside `twin`, its autoscaler pointed at `api_url`;
    everything is undone on exit."""
    if settings.cloud is not Cloud.hetzner:
        raise TwinError("the scaler VM is Hetzner's")
    bundle = scaler_render(twin, settings)
    first, prefix = subnet_of(twin)
    private_ip = str(first + SCALER_HOST)
    try:
        with contextlib.ExitStack() as stack:
            scratch, root = vm_root(stack, "scaler-", image.base_root(), keep)
            seed(root, user_data_bytes(bundle.user_data, Cloud.hetzner), "scaler", "scaler")
            default_environment(
                root,
                ENVIRONMENT_DROP_IN,
                "The twin's Hetzner: the autoscaler reaches the API stand-in.",
                f"{ENDPOINT_VARIABLE}={api_url}",
            )
            netns = stack.enter_context(container.host_netns(twin.lan, "sc", private_ip, prefix))
            vm = Scaler(
                root=root, netns=netns, console=scratch / "console.log", archive=twin.archive,
                settings=settings, bundle=bundle, private_ip=private_ip,
            )  # fmt: skip
            stack.callback(vm.shutdown)
            vm.boot()
            yield vm
    except (container.ContainerError, image.ImageError, subprocess.CalledProcessError) as exc:
        raise TwinError(f"scaler VM: {exc}") from None
