"""HetznerBridgePool: what Pulumi keeps of the videobridge pool on Hetzner Cloud.

Hetzner has no autoscaling service: the bridges are made and deleted by the autoscaler on
the scaler VM (see `hetzner/scaler.py`), labelled with the stack, covered by the bridges'
firewall through those labels. Pulumi keeps the template (in the scaler VM's user data),
the floor and ceiling (its config) and this sweep, whose delete removes every server and
placement group of the stack's bridge labels: `pulumi destroy` leaves no bridge behind.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.cloud.hetzner.sweep import LabelledServerSweep, LabelledServerSweepArgs


@dataclass(frozen=True, kw_only=True)
class HetznerBridgePoolArgs:
    """Arguments of HetznerBridgePool."""

    selector: str  # the bridges' labels
    subnet: pulumi.Resource  # swept before the network goes (a server still on it blocks that)
    token: pulumi.Input[str] | None  # the engine's Hetzner token (else HCLOUD_TOKEN at delete)


class HetznerBridgePool(pulumi.ComponentResource):
    """The sweep of the stack's bridges."""

    sweep: LabelledServerSweep

    def __init__(
        self, name: str, args: HetznerBridgePoolArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jitsi-xxl:bridges:HetznerBridgePool", name, None, opts)
        self.sweep = LabelledServerSweep(
            f"{name}-sweep",
            LabelledServerSweepArgs(selector=args.selector, token=args.token),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.subnet]),
        )
        self.register_outputs({"selector": args.selector})
