"""IAM for the VMs: the documents as pure functions (the grants can be read and tested), and
the role every VM of the stack starts from."""

from __future__ import annotations

import json
from typing import Final

import pulumi
import pulumi_aws as aws

SSM_CORE: Final = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"


def ec2_assume_role() -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )


def bridge_agent_policy(group_arn: str, namespace: str) -> str:
    """What a bridge's agent may do: publish its stress metric, and keep alive and complete
    lifecycle actions of its own group. Nothing wider."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "StressMetric",
                    "Effect": "Allow",
                    "Action": "cloudwatch:PutMetricData",
                    "Resource": "*",
                    "Condition": {"StringEquals": {"cloudwatch:namespace": namespace}},
                },
                {
                    "Sid": "DrainLifecycle",
                    "Effect": "Allow",
                    "Action": [
                        "autoscaling:RecordLifecycleActionHeartbeat",
                        "autoscaling:CompleteLifecycleAction",
                    ],
                    "Resource": group_arn,
                },
            ],
        }
    )


def ssm_instance_role(
    name: str, tags: dict[str, str], opts: pulumi.ResourceOptions
) -> tuple[aws.iam.Role, aws.iam.InstanceProfile]:
    """A role and instance profile with SSM Session Manager only (no SSH keys needed);
    callers add what their VM needs beyond that. Children of the caller (`opts`)."""
    role = aws.iam.Role(
        f"{name}-role", aws.iam.RoleArgs(assume_role_policy=ec2_assume_role(), tags=tags), opts=opts
    )
    aws.iam.RolePolicyAttachment(
        f"{name}-ssm",
        aws.iam.RolePolicyAttachmentArgs(role=role.name, policy_arn=SSM_CORE),
        opts=opts,
    )
    profile = aws.iam.InstanceProfile(
        f"{name}-profile", aws.iam.InstanceProfileArgs(role=role.name), opts=opts
    )
    return role, profile
