"""The machine image every VM boots: Debian 13 (trixie), amd64, the release the twin proves.

jicofo (openjdk-17|21) and jitsi-videobridge2 (openjdk-17|21, libssl3) install on Debian 13:
it has openjdk-21-jre-headless, and libssl3t64 provides libssl3.
"""

from __future__ import annotations

from typing import Final

import pulumi
import pulumi_aws as aws

# Debian's own AWS account (the cloud team's official images) and its names for trixie.
DEBIAN: Final = "136693071363"
TRIXIE_AMI_NAME: Final = "debian-13-amd64-*"
HETZNER_IMAGE: Final = "debian-13"


def aws_debian_ami(pinned: str | None, parent: pulumi.Resource) -> tuple[str, bool]:
    """The AMI id, and whether it is pinned.

    Unpinned, the newest Debian 13 image is looked up, and the instance and launch template
    ignore later changes of it: a new image would otherwise replace the signaling VM, or
    roll every bridge, in the middle of an event. Pin `aws.ami` to move on deliberately.
    """
    if pinned:
        return pinned, True
    image = aws.ec2.get_ami(
        most_recent=True,
        owners=[DEBIAN],
        filters=[
            aws.ec2.GetAmiFilterArgs(name="name", values=[TRIXIE_AMI_NAME]),
            aws.ec2.GetAmiFilterArgs(name="architecture", values=["x86_64"]),
        ],
        opts=pulumi.InvokeOptions(parent=parent),
    )
    return image.id, False
