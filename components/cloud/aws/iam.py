"""IAM for the VMs: the documents as pure functions (the grants can be read and tested), and
the role every VM of the stack starts from: Session Manager, and its own secrets."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_aws as aws

# What the SSM agent needs for Session Manager shells and nothing more (the managed policy
# AmazonSSMManagedInstanceCore also grants Run Command's messages and every parameter of the
# account: ssm:GetParameter(s) on "*").
SESSION_MANAGER_ACTIONS: Final = (
    "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
)


def session_manager_policy() -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "SessionManager",
                    "Effect": "Allow",
                    "Action": list(SESSION_MANAGER_ACTIONS),
                    # these actions take no resource-level permissions
                    "Resource": "*",
                }
            ],
        }
    )


def own_secrets_policy(parameter_arns: Sequence[str]) -> str:
    """Read (and decrypt through SSM) exactly these parameters, which share one folder."""
    arns = sorted(parameter_arns)
    if not arns:
        raise ValueError("a role with secrets has at least one parameter")
    folders = {arn.rsplit("/", 1)[0] for arn in arns}
    if len(folders) != 1:
        raise ValueError(f"parameters of one role live in one folder, not {sorted(folders)}")
    region = arns[0].split(":")[3]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "OwnParameters",
                    "Effect": "Allow",
                    "Action": ["ssm:GetParameter", "ssm:GetParameters"],
                    "Resource": arns,
                },
                {
                    "Sid": "OwnFolder",
                    "Effect": "Allow",
                    "Action": "ssm:GetParametersByPath",
                    "Resource": folders.pop(),
                },
                {
                    "Sid": "DecryptOwnParameters",
                    "Effect": "Allow",
                    "Action": "kms:Decrypt",
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {"kms:ViaService": f"ssm.{region}.amazonaws.com"},
                        "ForAnyValue:StringEquals": {"kms:EncryptionContext:PARAMETER_ARN": arns},
                    },
                },
            ],
        }
    )


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
    """What a bridge's agent may do: publish its stress metric, keep alive and complete
    lifecycle actions of its own group, and mark an instance of it unhealthy. Nothing wider."""
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
                {
                    "Sid": "ReportHealth",
                    "Effect": "Allow",
                    "Action": "autoscaling:SetInstanceHealth",
                    "Resource": group_arn,
                },
            ],
        }
    )


@dataclass(frozen=True, kw_only=True)
class VmSecrets:
    """One role's secrets: SecureString parameters `<path><NAME>` (path from
    `naming.secrets_path`), values as secret Outputs."""

    path: str
    values: Mapping[str, pulumi.Input[str]]


@dataclass(frozen=True)
class VmRole:
    role: aws.iam.Role
    profile: aws.iam.InstanceProfile
    parameters: tuple[aws.ssm.Parameter, ...]  # the VM must not boot before these exist


def ssm_instance_role(
    name: str, tags: dict[str, str], opts: pulumi.ResourceOptions, secrets: VmSecrets
) -> VmRole:
    """A role and instance profile with Session Manager (no SSH keys needed) and read access
    to this VM's own secrets, which it creates in Parameter Store; callers add what their VM
    needs beyond that. Children of the caller (`opts`)."""
    role = aws.iam.Role(
        f"{name}-role", aws.iam.RoleArgs(assume_role_policy=ec2_assume_role(), tags=tags), opts=opts
    )
    aws.iam.RolePolicy(
        f"{name}-session-manager",
        aws.iam.RolePolicyArgs(role=role.id, policy=session_manager_policy()),
        opts=opts,
    )
    parameters = tuple(
        aws.ssm.Parameter(
            f"{name}-secret-{env.lower().replace('_', '-')}",
            aws.ssm.ParameterArgs(
                name=f"{secrets.path}{env}",
                type="SecureString",
                value=pulumi.Output.secret(value),
                tags=tags,
            ),
            opts=opts,
        )
        for env, value in sorted(secrets.values.items())
    )
    aws.iam.RolePolicy(
        f"{name}-secrets",
        aws.iam.RolePolicyArgs(
            role=role.id,
            policy=pulumi.Output.all(*(p.arn for p in parameters)).apply(
                lambda arns: own_secrets_policy([str(a) for a in arns])
            ),
        ),
        opts=opts,
    )
    profile = aws.iam.InstanceProfile(
        f"{name}-profile", aws.iam.InstanceProfileArgs(role=role.name), opts=opts
    )
    return VmRole(role, profile, parameters)
