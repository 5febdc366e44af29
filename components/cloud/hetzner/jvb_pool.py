"""HetznerBridgePool: the videobridge pool on Hetzner Cloud, sized by the planner.

Hetzner has no autoscaling service: the pool is as large as the plan says, and is resized
by changing the stack and running `pulumi up`. Servers sit in spread placement groups of at
most 10 (Hetzner's limit), on the private network, covered by the bridges' firewall through
their labels, and are shut down before deletion, which runs their drain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_hcloud as hcloud

from components.model.planner import placement_groups


@dataclass(frozen=True, kw_only=True)
class HetznerBridgePoolArgs:
    """Arguments of HetznerBridgePool."""

    size: int
    server_type: str
    image: str
    location: str
    network_id: pulumi.Input[int]
    subnet: pulumi.Resource
    user_data: pulumi.Input[str]
    labels: dict[str, str]
    ssh_keys: Sequence[pulumi.Input[str]]  # root's keys: no password is mailed


class HetznerBridgePool(pulumi.ComponentResource):
    """`size` bridge servers in spread placement groups."""

    server_count: int

    def __init__(
        self, name: str, args: HetznerBridgePoolArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jitsi-xxl:bridges:HetznerBridgePool", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        assignment = placement_groups(args.size)
        groups = [
            hcloud.PlacementGroup(
                f"{name}-spread-{g + 1}",
                hcloud.PlacementGroupArgs(type="spread", labels=args.labels),
                opts=child,
            )
            for g in range(len(set(assignment)))
        ]
        for i, g in enumerate(assignment):
            hcloud.Server(
                f"{name}-{i + 1}",
                hcloud.ServerArgs(
                    server_type=args.server_type,
                    image=args.image,
                    location=args.location,
                    user_data=args.user_data,
                    labels=args.labels,
                    ssh_keys=list(args.ssh_keys),
                    placement_group_id=groups[g].id.apply(int),
                    networks=[hcloud.ServerNetworkArgs(network_id=args.network_id)],
                    public_nets=[hcloud.ServerPublicNetArgs(ipv4_enabled=True, ipv6_enabled=True)],
                    # the drain unit empties the bridge while the server shuts down
                    shutdown_before_deletion=True,
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[args.subnet]),
            )
        self.server_count = args.size
        self.register_outputs({"servers": args.size, "placement_groups": len(groups)})
