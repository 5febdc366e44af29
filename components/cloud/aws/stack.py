"""The stack on AWS: network and security groups, signaling VM, autoscaled bridge pool."""

from __future__ import annotations

import pulumi

from components.cloud.aws.iam import VmSecrets
from components.cloud.aws.jvb_pool import AwsBridgePool, AwsBridgePoolArgs
from components.cloud.aws.network import AwsNetwork, AwsNetworkArgs
from components.cloud.aws.signaling import AwsSignaling, AwsSignalingArgs
from components.cloud.deployment import Deployed, Deployment
from components.cloud.firewall import bridge_rules, signaling_rules
from components.model import naming
from components.model.credentials import BRIDGE_SECRETS, SIGNALING_SECRETS, env_name
from components.model.schedule import timeline
from components.rendering import bridge_files, signaling_files
from components.rendering.bridge_files import STRESS_METRIC, STRESS_NAMESPACE
from components.rendering.userdata import aws_user_data_base64


def vm_secrets(d: Deployment, path: str, fields: tuple[str, ...]) -> VmSecrets:
    """The values a role's parameters hold: secret Outputs of the stack's credentials."""

    def value(field: str) -> pulumi.Output[str]:
        return pulumi.Output.secret(d.credentials.apply(lambda c: str(getattr(c, field))))

    # under the names the bootstrap asks for, in the role's folder
    return VmSecrets(path=path, values={env_name(f): value(f) for f in fields})


def deploy_aws(d: Deployment) -> Deployed:
    s, pool = d.settings, d.plan.bridges
    network = AwsNetwork(
        f"{d.prefix}-net",
        AwsNetworkArgs(
            cidr=s.network.cidr,
            subnet_cidrs=d.plan.network.subnets,
            signaling_rules=signaling_rules(s),
            bridge_rules=bridge_rules(s),
            tags=naming.tags(d.stack, "network"),
            existing_vpc_id=s.aws.vpc_id,
            existing_subnet_ids=s.aws.subnet_ids,
        ),
    )
    signaling = AwsSignaling(
        f"{d.prefix}-signaling",
        AwsSignalingArgs(
            instance_type=s.signaling_type(),
            subnet_id=network.subnet_ids[0],
            private_ip=d.plan.network.signaling_private_ip,
            security_group_id=network.signaling_group_id,
            user_data_base64=d.signaling_user_data.apply(aws_user_data_base64),
            tags=naming.tags(d.stack, "signaling"),
            secrets=vm_secrets(d, signaling_files.secrets(s, d.stack).path, SIGNALING_SECRETS),
            ami=s.aws.ami,
            dns=d.dns,
        ),
    )
    bridges = AwsBridgePool(
        f"{d.prefix}-jvb",
        AwsBridgePoolArgs(
            instance_type=s.bridge_type(),
            subnet_ids=network.subnet_ids,
            security_group_id=network.bridge_group_id,
            user_data_base64=d.pool_user_data.apply(aws_user_data_base64),
            sizes=timeline(pool, s.event.window() if s.event else None, d.now),
            refresh_on_change=s.bridges.refresh_on_change,
            scale_on=s.bridges.scale_on,
            metric_namespace=STRESS_NAMESPACE,
            metric_name=STRESS_METRIC,
            tags=naming.tags(d.stack, "jvb"),
            secrets=vm_secrets(d, bridge_files.secrets(s, d.stack).path, BRIDGE_SECRETS),
            ami=s.aws.ami,
        ),
    )
    return Deployed(
        public_ip=signaling.public_ip,
        private_ip=signaling.private_ip,
        pool={"autoscaling_group": bridges.group_name},
        bridge_health=(
            "the Auto Scaling group replaces a bridge whose videobridge fails its health check "
            "for a few minutes (the agent reports it) or whose bootstrap failed (it powers "
            "off); its activity history says which: aws autoscaling "
            "describe-scaling-activities --auto-scaling-group-name <bridge_pool.autoscaling_group>"
        ),
        # Session Manager, not SSH keys
        ssh_private_key=pulumi.Output.from_input(None),
    )
