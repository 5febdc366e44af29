"""IAM documents for the VMs: pure functions, so the grants can be read and tested."""

from __future__ import annotations

import json
from typing import Final

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
