"""jitsi-xxl: settings -> plan -> secrets -> rendered VMs -> cloud components -> outputs."""

from dataclasses import asdict

import pulumi

from components.cloud.deployment import Deployment, utc_now
from components.cloud.dns import DnsRecordArgs
from components.cloud.outputs import (
    OUTPUT_BRIDGE_POOL,
    OUTPUT_CAPACITY,
    OUTPUT_COST,
    OUTPUT_JICOFO_VISITORS_CONFIG,
    OUTPUT_JWT_APP_SECRET,
    OUTPUT_PLAN,
    OUTPUT_S2S_CONFIG,
    OUTPUT_SETTINGS,
    OUTPUT_SIGNALING_PRIVATE_IP,
    OUTPUT_SIGNALING_PUBLIC_IP,
    OUTPUT_SSH_PRIVATE_KEY,
    OUTPUT_URL,
)
from components.cloud.stack_config import hetzner_api_token, load_settings, tls_material
from components.cloud.stack_secrets import StackSecrets, StackSecretsArgs
from components.model import naming
from components.model.planner import plan
from components.model.pricing import estimate
from components.model.project import Cloud
from components.rendering.bridge_files import bridge_bundle
from components.rendering.scaler_files import scaler_bundle
from components.rendering.signaling_files import s2s_snippet, signaling_bundle

stack = pulumi.get_stack()
settings = load_settings()
# read with the settings: a stack without it stops before anything is registered
token = hetzner_api_token(settings)
the_plan = plan(settings)
prefix = naming.resource_prefix(stack)
creds = StackSecrets(f"{prefix}-secrets", StackSecretsArgs()).credentials
# rendered once: the user data and the jicofo output come from the same bundle
signaling = pulumi.Output.all(creds, tls_material(settings)).apply(
    lambda ct: signaling_bundle(settings, the_plan, ct[0], ct[1], stack=stack)
)
signaling_user_data = signaling.apply(lambda b: b.user_data)
# What the bridge pool is made from, rendered for its cloud only: AWS's launch template takes
# the bridges' own; on Hetzner the scaler VM carries them, with the autoscaler and its token.
pool_user_data = (
    creds.apply(lambda c: bridge_bundle(settings, the_plan, c, stack=stack).user_data)
    if settings.cloud is Cloud.aws
    else pulumi.Output.all(creds, token).apply(
        lambda ct: scaler_bundle(settings, the_plan, ct[0], stack=stack, api_token=ct[1]).user_data
    )
)
dns = settings.dns
deployment = Deployment(
    stack=stack,
    prefix=prefix,
    settings=settings,
    plan=the_plan,
    credentials=creds,
    signaling_user_data=pulumi.Output.secret(signaling_user_data),
    pool_user_data=pulumi.Output.secret(pool_user_data),
    dns=DnsRecordArgs(cloud=settings.cloud, zone=dns.zone, domain=settings.domain, ttl=dns.ttl)
    if dns
    else None,
    now=utc_now(),
)
# one provider SDK per stack: each takes a second and tens of MiB to load
if settings.cloud is Cloud.aws:
    from components.cloud.aws.stack import deploy_aws as deploy
else:
    from components.cloud.hetzner.stack import deploy_hetzner as deploy
deployed = deploy(deployment)
pool = the_plan.bridges
cost = estimate(
    settings.cloud.value,
    settings.signaling_type(),
    settings.bridge_type(),
    pool.desired,
    settings.audience,
)

pulumi.export(OUTPUT_URL, f"https://{settings.domain}/")
pulumi.export(OUTPUT_SIGNALING_PUBLIC_IP, deployed.public_ip)
pulumi.export(OUTPUT_SIGNALING_PRIVATE_IP, deployed.private_ip)
pulumi.export(OUTPUT_S2S_CONFIG, s2s_snippet(settings, the_plan))
pulumi.export(
    OUTPUT_JICOFO_VISITORS_CONFIG,
    pulumi.Output.secret(signaling.apply(lambda b: b.jicofo_visitors_config)),
)
pulumi.export(OUTPUT_JWT_APP_SECRET, pulumi.Output.secret(creds.apply(lambda c: c.jwt_app_secret)))
pulumi.export(
    OUTPUT_BRIDGE_POOL,
    {"instance_type": settings.bridge_type(), "min": pool.min, "desired": pool.desired,
     "max": pool.max, "health": deployed.bridge_health, **deployed.pool},
)  # fmt: skip
pulumi.export(OUTPUT_CAPACITY, asdict(the_plan.capacity))
pulumi.export(OUTPUT_COST, asdict(cost))
pulumi.export(
    OUTPUT_PLAN,
    {"visitor_nodes": [n.name for n in the_plan.nodes], "warnings": list(the_plan.warnings)},
)
pulumi.export(OUTPUT_SSH_PRIVATE_KEY, pulumi.Output.secret(deployed.ssh_private_key))
# what this deployment was made from: `xxl event up` names the settings behind a change
pulumi.export(OUTPUT_SETTINGS, settings.model_dump(mode="json"))
