"""ServerSpec: what every server the stack makes on Hetzner is made from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_hcloud as hcloud


@dataclass(frozen=True, kw_only=True)
class ServerSpec:
    """A server's machine, image, place, user data, labels and root's keys."""

    server_type: str
    image: str
    location: str
    user_data: pulumi.Input[str]
    labels: dict[str, str]
    ssh_keys: Sequence[pulumi.Input[str]]  # root's keys: no password is mailed

    def args(
        self,
        *,
        firewall_id: pulumi.Input[int],
        network: hcloud.ServerNetworkArgs,
        public_net: hcloud.ServerPublicNetArgs,
        shutdown_before_deletion: bool = False,
    ) -> hcloud.ServerArgs:
        """The server's arguments: on one firewall (by id) and the stack's network."""
        return hcloud.ServerArgs(
            server_type=self.server_type,
            image=self.image,
            location=self.location,
            user_data=self.user_data,
            labels=self.labels,
            ssh_keys=list(self.ssh_keys),
            firewall_ids=[firewall_id],
            networks=[network],
            public_nets=[public_net],
            shutdown_before_deletion=shutdown_before_deletion,
        )
