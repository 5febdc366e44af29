"""HetznerNetwork: where the stack lives on Hetzner Cloud, and who may reach what.

Creates a private network with one cloud subnet (the signaling VM, the scaler VM and every
bridge share it), and the firewalls of the signaling VM, of the bridges and of the scaler VM
with the rules of `components.cloud.firewall`. The bridges' firewall applies by label
selector, so every bridge the autoscaler makes is covered from its first boot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_hcloud as hcloud

from components.cloud.firewall import Rule


@dataclass(frozen=True, kw_only=True)
class HetznerNetworkArgs:
    """Arguments of HetznerNetwork."""

    cidr: str
    subnet_cidr: str
    network_zone: str
    signaling_rules: Sequence[Rule]
    bridge_rules: Sequence[Rule]
    bridge_selector: str
    scaler_rules: Sequence[Rule]
    labels: dict[str, str]


def firewall_rules(rules: Sequence[Rule]) -> list[hcloud.FirewallRuleArgs]:
    return [
        hcloud.FirewallRuleArgs(
            direction="in",
            protocol=rule.protocol,
            port=str(rule.port),
            source_ips=list(rule.sources),
            description=rule.description,
        )
        for rule in rules
        if rule.sources  # peers talk over the private network, which firewalls do not filter
    ]


class HetznerNetwork(pulumi.ComponentResource):
    """Private network, subnet, and the two firewalls."""

    network_id: pulumi.Output[int]
    subnet: hcloud.NetworkSubnet
    signaling_firewall_id: pulumi.Output[int]
    scaler_firewall_id: pulumi.Output[int]

    def __init__(
        self, name: str, args: HetznerNetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jitsi-xxl:network:HetznerNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        network = hcloud.Network(
            f"{name}-private",
            hcloud.NetworkArgs(ip_range=args.cidr, labels=args.labels),
            opts=child,
        )
        self.network_id = network.id.apply(int)
        self.subnet = hcloud.NetworkSubnet(
            f"{name}-subnet",
            hcloud.NetworkSubnetArgs(
                network_id=self.network_id,
                type="cloud",
                network_zone=args.network_zone,
                ip_range=args.subnet_cidr,
            ),
            opts=child,
        )
        signaling = hcloud.Firewall(
            f"{name}-signaling",
            hcloud.FirewallArgs(rules=firewall_rules(args.signaling_rules), labels=args.labels),
            opts=child,
        )
        hcloud.Firewall(
            f"{name}-bridges",
            hcloud.FirewallArgs(
                rules=firewall_rules(args.bridge_rules),
                apply_tos=[hcloud.FirewallApplyToArgs(label_selector=args.bridge_selector)],
                labels=args.labels,
            ),
            opts=child,
        )
        scaler = hcloud.Firewall(
            f"{name}-scaler",
            hcloud.FirewallArgs(rules=firewall_rules(args.scaler_rules), labels=args.labels),
            opts=child,
        )
        self.signaling_firewall_id = signaling.id.apply(int)
        self.scaler_firewall_id = scaler.id.apply(int)
        self.register_outputs({"network_id": self.network_id})
