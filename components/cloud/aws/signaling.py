"""AwsSignaling: the signaling VM on AWS.

Creates an IAM role and instance profile (Session Manager, and its own secrets in Parameter
Store), an Elastic IP, the DNS
record pointing at it (optional), then the instance (IMDSv2 required, encrypted root volume,
the rendered user data as a secret, a fixed private address the bridges connect to), and the
association of address and instance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pulumi
import pulumi_aws as aws

from components.cloud.aws.iam import VmSecrets, ssm_instance_role
from components.cloud.dns import DnsRecord, DnsRecordArgs
from components.cloud.images import aws_debian_ami

ROOT_VOLUME_GIB = 40


@dataclass(frozen=True, kw_only=True)
class AwsSignalingArgs:
    """Arguments of AwsSignaling."""

    instance_type: str
    subnet_id: pulumi.Input[str]
    private_ip: str
    security_group_id: pulumi.Input[str]
    user_data_base64: pulumi.Input[str]
    tags: dict[str, str]
    secrets: VmSecrets  # fetched at boot; the user data holds none
    ami: str | None = None
    dns: DnsRecordArgs | None = None  # its `address` is filled with the Elastic IP


class AwsSignaling(pulumi.ComponentResource):
    """The 16-vCPU VM of prosody, the visitor prosodies, jicofo, nginx and coturn."""

    public_ip: pulumi.Output[str]
    private_ip: pulumi.Output[str]
    instance_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: AwsSignalingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jitsi-xxl:signaling:AwsSignaling", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        vm_role = ssm_instance_role(name, args.tags, child, args.secrets)
        profile = vm_role.profile
        address = aws.ec2.Eip(
            f"{name}-ip", aws.ec2.EipArgs(domain="vpc", tags=args.tags), opts=child
        )
        boot_after: list[pulumi.Resource] = list(vm_role.parameters)
        if args.dns is not None:
            record = DnsRecord(
                f"{name}-dns", replace(args.dns, address=address.public_ip), opts=child
            )
            boot_after.append(record)
        ami, pinned = aws_debian_ami(args.ami, self)
        instance = aws.ec2.Instance(
            f"{name}-vm",
            aws.ec2.InstanceArgs(
                ami=ami,
                instance_type=args.instance_type,
                subnet_id=args.subnet_id,
                private_ip=args.private_ip,
                vpc_security_group_ids=[args.security_group_id],
                iam_instance_profile=profile.name,
                user_data_base64=args.user_data_base64,
                # the user data is the VM's whole configuration and cloud-init reads it once:
                # a change means a new VM (refused during an event: offline/disruption.py)
                user_data_replace_on_change=True,
                metadata_options=aws.ec2.InstanceMetadataOptionsArgs(
                    http_endpoint="enabled",
                    http_tokens="required",
                    http_put_response_hop_limit=1,
                ),
                root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                    encrypted=True, volume_size=ROOT_VOLUME_GIB, volume_type="gp3"
                ),
                tags=args.tags,
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=boot_after,
                ignore_changes=[] if pinned else ["ami"],
                # a new VM cannot take the fixed private address while the old one holds it
                delete_before_replace=True,
            ),
        )
        aws.ec2.EipAssociation(
            f"{name}-ip-association",
            aws.ec2.EipAssociationArgs(
                instance_id=instance.id, allocation_id=address.allocation_id
            ),
            opts=child,
        )
        self.public_ip = address.public_ip
        self.private_ip = instance.private_ip
        self.instance_id = instance.id
        self.register_outputs(
            {"public_ip": self.public_ip, "private_ip": self.private_ip, "instance_id": instance.id}
        )
