"""The stack on Hetzner Cloud: network and firewalls, signaling VM, and a pool of bridges that
the autoscaler on the scaler VM makes and deletes (Pulumi keeps its sweep)."""

from __future__ import annotations

import pulumi

from components.cloud.deployment import Deployed, Deployment
from components.cloud.firewall import bridge_rules, scaler_rules, signaling_rules
from components.cloud.hetzner.jvb_pool import HetznerBridgePool, HetznerBridgePoolArgs
from components.cloud.hetzner.network import HetznerNetwork, HetznerNetworkArgs
from components.cloud.hetzner.scaler import HetznerScaler, HetznerScalerArgs
from components.cloud.hetzner.server import ServerSpec
from components.cloud.hetzner.signaling import HetznerSignaling, HetznerSignalingArgs
from components.cloud.hetzner.ssh_keys import RootKeys, RootKeysArgs
from components.model import naming
from components.rendering import scaler_files
from components.rendering.userdata import READY_REPORT


def deploy_hetzner(d: Deployment) -> Deployed:
    s, hz = d.settings, d.settings.hetzner
    network = HetznerNetwork(
        f"{d.prefix}-net",
        HetznerNetworkArgs(
            cidr=s.network.cidr,
            subnet_cidr=d.plan.network.subnets[0],
            network_zone=hz.network_zone,
            signaling_rules=signaling_rules(s),
            bridge_rules=bridge_rules(s),
            bridge_selector=naming.label_selector(d.stack, naming.ROLE_BRIDGES),
            scaler_rules=scaler_rules(s),
            labels=naming.labels(d.stack, naming.ROLE_NETWORK),
        ),
    )
    keys = RootKeys(
        f"{d.prefix}-root-keys",
        RootKeysArgs(keys=hz.ssh_keys, labels=naming.labels(d.stack, naming.ROLE_ACCESS)),
    )
    signaling = HetznerSignaling(
        f"{d.prefix}-signaling",
        HetznerSignalingArgs(
            server=ServerSpec(
                server_type=s.signaling_type(),
                image=hz.image,
                location=hz.location,
                user_data=d.signaling_user_data,
                labels=naming.labels(d.stack, naming.ROLE_SIGNALING),
                ssh_keys=keys.names,
            ),
            network_id=network.network_id,
            subnet=network.subnet,
            private_ip=d.plan.network.signaling_private_ip,
            firewall_id=network.signaling_firewall_id,
            dns=d.dns,
        ),
    )
    jvb = naming.label_selector(d.stack, naming.ROLE_BRIDGES)
    pool_sweep = HetznerBridgePool(
        f"{d.prefix}-jvb",
        HetznerBridgePoolArgs(
            selector=jvb,
            subnet=network.subnet,
            token=pulumi.Config("hcloud").get_secret("token"),
        ),
    )
    HetznerScaler(
        f"{d.prefix}-scaler",
        HetznerScalerArgs(
            server=ServerSpec(
                server_type=scaler_files.SERVER_TYPE,
                image=hz.image,
                location=hz.location,
                user_data=d.pool_user_data,
                labels=naming.labels(d.stack, naming.ROLE_SCALER),
                ssh_keys=keys.names,
            ),
            network_id=network.network_id,
            subnet=network.subnet,
            firewall_id=network.scaler_firewall_id,
            after=[pool_sweep.sweep],
        ),
    )
    return Deployed(
        public_ip=signaling.public_ip,
        private_ip=signaling.private_ip,
        pool={
            "scaler": f"{scaler_files.UNIT} on the scaler VM "
            f"({naming.label_selector(d.stack, 'scaler')})",
            "policy": scaler_files.policy(s, d.plan),
        },
        bridge_health=(
            "each bridge's agent writes its videobridge's health into "
            f"{READY_REPORT} (`health`); list the bridges with `hcloud server list -l "
            f"{jvb}` and read it with `ssh root@<address> "
            f"cat {READY_REPORT}`"
        ),
        ssh_private_key=keys.private_key,
    )
