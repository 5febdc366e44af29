"""The machine image every VM boots: Ubuntu 24.04 LTS (noble), amd64."""

from __future__ import annotations

from typing import Final

import pulumi
import pulumi_aws as aws

# Canonical's AWS account, and its image names for noble on gp3.
CANONICAL: Final = "099720109477"
NOBLE_AMI_NAME: Final = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"


def aws_ubuntu_ami(pinned: str | None, parent: pulumi.Resource) -> tuple[str, bool]:
    """The AMI id, and whether it is pinned.

    Unpinned, the newest noble image is looked up, and the instance and launch template
    ignore later changes of it: a new image would otherwise replace the signaling VM, or
    roll every bridge, in the middle of an event. Pin `aws.ami` to move on deliberately.
    """
    if pinned:
        return pinned, True
    image = aws.ec2.get_ami(
        most_recent=True,
        owners=[CANONICAL],
        filters=[
            aws.ec2.GetAmiFilterArgs(name="name", values=[NOBLE_AMI_NAME]),
            aws.ec2.GetAmiFilterArgs(name="architecture", values=["x86_64"]),
        ],
        opts=pulumi.InvokeOptions(parent=parent),
    )
    return image.id, False
