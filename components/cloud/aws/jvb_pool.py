"""AwsBridgePool: the autoscaled videobridge pool on AWS.

Creates an IAM role and instance profile (SSM, plus the agent's narrow policy), a launch
template (IMDSv2 required with instance tags readable, encrypted root volume, the bridge
user data as a secret), an Auto Scaling group across the subnets, the termination lifecycle
hook the drain agent completes, a target tracking policy on the bridges' stress (or CPU),
and, with an event window, the scheduled sizes still to come (components/model/schedule.py).

Sizes: every `pulumi up` sets the floor and ceiling the event wants at that moment (what the
schedule has set by then: an up after the end-of-event shrink keeps the pool empty, one
during the event applies a changed `bridges.min`); `desired_capacity` is the scaling
policy's once the group exists. A changed template is used by bridges started later; the
running ones are rolled onto it only when `refresh_on_change` asks (each drains first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pulumi
import pulumi_aws as aws

from components.agents.bridge_agent import LIFECYCLE_HOOK
from components.cloud.aws.iam import VmSecrets, bridge_agent_policy, ssm_instance_role
from components.cloud.images import aws_debian_ami
from components.model.scaling import STRESS_TARGET, WARMUP_SECONDS
from components.model.schedule import PoolSize, PoolTimeline
from components.model.settings import ScaleOn

ROOT_VOLUME_GIB = 20
# Heartbeat timeout of the lifecycle hook; the agent beats every minute.
HOOK_HEARTBEAT_SECONDS = 300
CPU_TARGET = 50.0
# A rolling refresh (only when asked) keeps nine in ten bridges serving while it drains one.
REFRESH_MIN_HEALTHY_PERCENT = 90


@dataclass(frozen=True, kw_only=True)
class AwsBridgePoolArgs:
    """Arguments of AwsBridgePool."""

    instance_type: str
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    user_data_base64: pulumi.Input[str]
    sizes: PoolTimeline
    refresh_on_change: bool
    scale_on: ScaleOn
    metric_namespace: str
    metric_name: str
    tags: dict[str, str]
    secrets: VmSecrets  # the bridges' login, fetched at boot; the user data holds none
    ami: str | None = None


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class AwsBridgePool(pulumi.ComponentResource):
    """Launch template, Auto Scaling group, drain hook, scaling policy, schedules."""

    group_name: pulumi.Output[str]
    launch_template_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: AwsBridgePoolArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jitsi-xxl:bridges:AwsBridgePool", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        vm_role = ssm_instance_role(name, args.tags, child, args.secrets)
        role, profile = vm_role.role, vm_role.profile
        ami, pinned = aws_debian_ami(args.ami, self)
        template = aws.ec2.LaunchTemplate(
            f"{name}-template",
            aws.ec2.LaunchTemplateArgs(
                image_id=ami,
                instance_type=args.instance_type,
                iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=profile.arn),
                vpc_security_group_ids=[args.security_group_id],
                user_data=args.user_data_base64,
                update_default_version=True,
                metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                    http_endpoint="enabled",
                    http_tokens="required",
                    http_put_response_hop_limit=1,
                    # the agent reads its group's name from the instance's tags
                    instance_metadata_tags="enabled",
                ),
                block_device_mappings=[
                    aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                        device_name="/dev/sda1",
                        ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                            encrypted="true",
                            volume_size=ROOT_VOLUME_GIB,
                            volume_type="gp3",
                            delete_on_termination="true",
                        ),
                    )
                ],
                tag_specifications=[
                    aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=args.tags)
                    for kind in ("instance", "volume")
                ],
                tags=args.tags,
            ),
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=[] if pinned else ["image_id"]),
        )
        initial: PoolSize = args.sizes.initial
        group = aws.autoscaling.Group(
            f"{name}-asg",
            aws.autoscaling.GroupArgs(
                min_size=initial.min,
                max_size=initial.max,
                desired_capacity=initial.desired,
                vpc_zone_identifiers=list(args.subnet_ids),
                launch_template=aws.autoscaling.GroupLaunchTemplateArgs(
                    id=template.id, version=template.latest_version.apply(str)
                ),
                # EC2 status, plus what the agent reports: a videobridge failing its health
                # check, or a failed bootstrap (which stops the instance)
                health_check_type="EC2",
                health_check_grace_period=WARMUP_SECONDS,
                default_instance_warmup=WARMUP_SECONDS,
                instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
                    strategy="Rolling",
                    preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                        min_healthy_percentage=REFRESH_MIN_HEALTHY_PERCENT
                    ),
                )
                if args.refresh_on_change
                else None,
                tags=[
                    aws.autoscaling.GroupTagArgs(key=k, value=v, propagate_at_launch=True)
                    for k, v in args.tags.items()
                ],
            ),
            # no bridge boots before its secrets exist
            opts=pulumi.ResourceOptions(
                parent=self,
                # the scaling policy's wish (and the schedule's, at its times)
                ignore_changes=["desired_capacity"],
                depends_on=list(vm_role.parameters),
            ),
        )
        aws.autoscaling.LifecycleHook(
            f"{name}-drain-hook",
            aws.autoscaling.LifecycleHookArgs(
                name=LIFECYCLE_HOOK,
                autoscaling_group_name=group.name,
                lifecycle_transition="autoscaling:EC2_INSTANCE_TERMINATING",
                heartbeat_timeout=HOOK_HEARTBEAT_SECONDS,
                # if the agent never answers, terminate anyway once the heartbeats stop
                default_result="CONTINUE",
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-agent",
            aws.iam.RolePolicyArgs(
                role=role.id,
                policy=group.arn.apply(lambda arn: bridge_agent_policy(arn, args.metric_namespace)),
            ),
            opts=child,
        )
        self._scaling_policy(name, args, group, child)
        for scheduled in args.sizes.scheduled:
            aws.autoscaling.Schedule(
                f"{name}-{scheduled.name}",
                aws.autoscaling.ScheduleArgs(
                    scheduled_action_name=f"{name}-{scheduled.name}",
                    autoscaling_group_name=group.name,
                    start_time=_iso(scheduled.at),
                    min_size=scheduled.size.min,
                    max_size=scheduled.size.max,
                    desired_capacity=scheduled.size.desired,
                ),
                opts=child,
            )
        self.group_name = group.name
        self.launch_template_id = template.id
        self.register_outputs({"group_name": group.name, "launch_template_id": template.id})

    def _scaling_policy(
        self,
        name: str,
        args: AwsBridgePoolArgs,
        group: aws.autoscaling.Group,
        child: pulumi.ResourceOptions,
    ) -> None:
        if args.scale_on is ScaleOn.stress:
            tracking = aws.autoscaling.PolicyTargetTrackingConfigurationArgs(
                target_value=STRESS_TARGET,
                customized_metric_specification=aws.autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationArgs(
                    namespace=args.metric_namespace,
                    metric_name=args.metric_name,
                    statistic="Average",
                    metric_dimensions=[
                        aws.autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricDimensionArgs(
                            name="AutoScalingGroupName", value=group.name
                        )
                    ],
                ),
            )
        else:
            tracking = aws.autoscaling.PolicyTargetTrackingConfigurationArgs(
                target_value=CPU_TARGET,
                predefined_metric_specification=aws.autoscaling.PolicyTargetTrackingConfigurationPredefinedMetricSpecificationArgs(
                    predefined_metric_type="ASGAverageCPUUtilization"
                ),
            )
        aws.autoscaling.Policy(
            f"{name}-{args.scale_on.value}-tracking",
            aws.autoscaling.PolicyArgs(
                autoscaling_group_name=group.name,
                policy_type="TargetTrackingScaling",
                estimated_instance_warmup=WARMUP_SECONDS,
                target_tracking_configuration=tracking,
            ),
            opts=child,
        )
