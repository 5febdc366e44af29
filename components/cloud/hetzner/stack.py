"""The stack on Hetzner Cloud: network and firewalls, signaling VM, a planner-sized pool."""

from __future__ import annotations

from components.cloud.deployment import Deployed, Deployment
from components.cloud.firewall import bridge_rules, signaling_rules
from components.cloud.hetzner.jvb_pool import HetznerBridgePool, HetznerBridgePoolArgs
from components.cloud.hetzner.network import HetznerNetwork, HetznerNetworkArgs
from components.cloud.hetzner.signaling import HetznerSignaling, HetznerSignalingArgs
from components.cloud.hetzner.ssh_keys import RootKeys, RootKeysArgs
from components.model import naming
from components.model.planner import placement_groups
from components.rendering.userdata import READY_REPORT


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
    keys = RootKeys(
        f"{d.prefix}-root-keys",
        RootKeysArgs(keys=hz.ssh_keys, labels=naming.labels(d.stack, "access")),
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
            ssh_keys=keys.names,
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
            ssh_keys=keys.names,
        ),
    )
    return Deployed(
        public_ip=signaling.public_ip,
        private_ip=signaling.private_ip,
        pool={
            "servers": pool.desired,
            "placement_groups": len(set(placement_groups(pool.desired))),
        },
        bridge_health=(
            "each bridge's agent writes its videobridge's health into "
            f"{READY_REPORT} (`health`); list the bridges with `hcloud server list -l "
            f"{naming.label_selector(d.stack, 'jvb')}` and read it with `ssh root@<address> "
            f"cat {READY_REPORT}`"
        ),
        ssh_private_key=keys.private_key,
    )
