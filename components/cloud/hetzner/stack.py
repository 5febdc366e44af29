"""The stack on Hetzner Cloud: network and firewalls, signaling VM, a planner-sized pool."""

from __future__ import annotations

from components.cloud.deployment import Deployed, Deployment
from components.cloud.firewall import bridge_rules, signaling_rules
from components.cloud.hetzner.jvb_pool import HetznerBridgePool, HetznerBridgePoolArgs
from components.cloud.hetzner.network import HetznerNetwork, HetznerNetworkArgs
from components.cloud.hetzner.signaling import HetznerSignaling, HetznerSignalingArgs
from components.model import naming
from components.model.planner import placement_groups


def deploy_hetzner(d: Deployment) -> Deployed:
    s, hz, pool = d.settings, d.settings.hetzner, d.plan.bridges
    network = HetznerNetwork(
        f"{d.prefix}-net",
        HetznerNetworkArgs(
            cidr=s.network.cidr,
            subnet_cidr=d.plan.network.subnets[0],
            network_zone=hz.network_zone,
            signaling_rules=signaling_rules(s),
            bridge_rules=bridge_rules(s),
            bridge_selector=naming.label_selector(d.stack, "jvb"),
            labels=naming.labels(d.stack, "network"),
        ),
    )
    signaling = HetznerSignaling(
        f"{d.prefix}-signaling",
        HetznerSignalingArgs(
            server_type=s.signaling_type(),
            image=hz.image,
            location=hz.location,
            network_id=network.network_id,
            subnet=network.subnet,
            private_ip=d.plan.network.signaling_private_ip,
            firewall_id=network.signaling_firewall_id,
            user_data=d.signaling_user_data,
            labels=naming.labels(d.stack, "signaling"),
            dns=d.dns,
        ),
    )
    HetznerBridgePool(
        f"{d.prefix}-jvb",
        HetznerBridgePoolArgs(
            size=pool.desired,
            server_type=s.bridge_type(),
            image=hz.image,
            location=hz.location,
            network_id=network.network_id,
            subnet=network.subnet,
            user_data=d.bridge_user_data,
            labels=naming.labels(d.stack, "jvb"),
        ),
    )
    return Deployed(
        public_ip=signaling.public_ip,
        private_ip=signaling.private_ip,
        pool={
            "servers": pool.desired,
            "placement_groups": len(set(placement_groups(pool.desired))),
        },
    )
