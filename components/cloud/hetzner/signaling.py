"""HetznerSignaling: the signaling VM on Hetzner Cloud.

Creates a primary IPv4 that outlives the server (user data is immutable on Hetzner, so a
changed configuration replaces the server; the address, and the DNS pointing at it, stay),
the DNS record (optional), then the server: dedicated vCPUs, the signaling firewall, a fixed
address on the private network, the rendered user data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pulumi
import pulumi_hcloud as hcloud

from components.cloud.dns import DnsRecord, DnsRecordArgs
from components.cloud.hetzner.server import ServerSpec


@dataclass(frozen=True, kw_only=True)
class HetznerSignalingArgs:
    """Arguments of HetznerSignaling."""

    server: ServerSpec
    network_id: pulumi.Input[int]
    subnet: pulumi.Resource
    private_ip: str
    firewall_id: pulumi.Input[int]
    dns: DnsRecordArgs | None = None  # its `address` is filled with the primary IP


class HetznerSignaling(pulumi.ComponentResource):
    """The 16-vCPU server of prosody, the visitor prosodies, jicofo, nginx and coturn."""

    public_ip: pulumi.Output[str]
    private_ip: pulumi.Output[str]

    def __init__(
        self, name: str, args: HetznerSignalingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jitsi-xxl:signaling:HetznerSignaling", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        address = hcloud.PrimaryIp(
            f"{name}-ip",
            hcloud.PrimaryIpArgs(
                type="ipv4",
                assignee_type="server",
                auto_delete=False,
                location=args.server.location,
                labels=args.server.labels,
            ),
            opts=child,
        )
        boot_after: list[pulumi.Resource] = [args.subnet]
        if args.dns is not None:
            boot_after.append(
                DnsRecord(f"{name}-dns", replace(args.dns, address=address.ip_address), opts=child)
            )
        server = hcloud.Server(
            f"{name}-vm",
            args.server.args(
                firewall_id=args.firewall_id,
                network=hcloud.ServerNetworkArgs(network_id=args.network_id, ip=args.private_ip),
                public_net=hcloud.ServerPublicNetArgs(
                    ipv4_enabled=True, ipv4=address.id.apply(int), ipv6_enabled=True
                ),
                shutdown_before_deletion=True,
            ),
            # the fixed private address and the primary IP belong to one server at a time;
            # a replacement (refused during an event: offline/disruption.py) frees them first
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=boot_after, delete_before_replace=True
            ),
        )
        self.public_ip = address.ip_address
        self.private_ip = pulumi.Output.from_input(args.private_ip)
        self.server_id = server.id
        self.register_outputs({"public_ip": self.public_ip, "private_ip": self.private_ip})
