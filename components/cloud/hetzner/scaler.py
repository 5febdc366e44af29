"""HetznerScaler: the small VM that runs the bridges' autoscaler on Hetzner Cloud.

Why a VM of its own rather than the signaling VM: `rendering/scaler_files.py`. It is on
the private network (it reads each bridge's stress there), reaches Hetzner's API over the
internet, and takes no connection from it but SSH from the admin networks. It depends on
the pool's sweep, so a destroy deletes it first: nothing adds a bridge behind the sweep.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_hcloud as hcloud

from components.cloud.hetzner.server import ServerSpec


@dataclass(frozen=True, kw_only=True)
class HetznerScalerArgs:
    """Arguments of HetznerScaler."""

    server: ServerSpec
    network_id: pulumi.Input[int]
    subnet: pulumi.Resource
    firewall_id: pulumi.Input[int]  # inbound: SSH from the admin networks, if any
    after: Sequence[pulumi.Resource]  # the pool's sweep: deleted after this VM


class HetznerScaler(pulumi.ComponentResource):
    """The scaler VM."""

    server_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: HetznerScalerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jitsi-xxl:scaler:HetznerScaler", name, None, opts)
        server = hcloud.Server(
            f"{name}-vm",
            args.server.args(
                firewall_id=args.firewall_id,
                network=hcloud.ServerNetworkArgs(network_id=args.network_id),
                public_net=hcloud.ServerPublicNetArgs(ipv4_enabled=True, ipv6_enabled=True),
            ),
            # it holds no session: a changed template replaces it, the old one gone first (two
            # autoscalers would each act on the same pool)
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[args.subnet, *args.after], delete_before_replace=True
            ),
        )
        self.server_id = server.id
        self.register_outputs({"server_id": self.server_id})
