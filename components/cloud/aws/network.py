"""AwsNetwork: where the stack lives on AWS, and who may reach what.

Creates (unless an existing VPC and subnets are given) a VPC, an internet gateway, a route
table and one public subnet in each of two zones; and, always, the security groups of the
signaling VM and of the bridges with the rules of `components.cloud.firewall`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.cloud.firewall import Peer, Rule


@dataclass(frozen=True, kw_only=True)
class AwsNetworkArgs:
    """Arguments of AwsNetwork."""

    cidr: str
    subnet_cidrs: Sequence[str]
    signaling_rules: Sequence[Rule]
    bridge_rules: Sequence[Rule]
    tags: dict[str, str]
    existing_vpc_id: str | None = None
    existing_subnet_ids: Sequence[str] | None = None


class AwsNetwork(pulumi.ComponentResource):
    """VPC, public subnets in two zones, and the two security groups."""

    vpc_id: pulumi.Output[str]
    subnet_ids: list[pulumi.Output[str]]
    signaling_group_id: pulumi.Output[str]
    bridge_group_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: AwsNetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jitsi-xxl:network:AwsNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if args.existing_vpc_id and args.existing_subnet_ids:
            self.vpc_id = pulumi.Output.from_input(args.existing_vpc_id)
            self.subnet_ids = [pulumi.Output.from_input(s) for s in args.existing_subnet_ids]
        else:
            self._create_vpc(name, args, child)
        self._create_groups(name, args, child)
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "subnet_ids": self.subnet_ids,
                "signaling_group_id": self.signaling_group_id,
                "bridge_group_id": self.bridge_group_id,
            }
        )

    def _create_vpc(self, name: str, args: AwsNetworkArgs, child: pulumi.ResourceOptions) -> None:
        zones = aws.get_availability_zones(
            state="available", opts=pulumi.InvokeOptions(parent=self)
        ).names
        if len(zones) < len(args.subnet_cidrs):
            raise pulumi.RunError(f"the region has {len(zones)} zones; the plan needs two")
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            aws.ec2.VpcArgs(
                cidr_block=args.cidr,
                enable_dns_hostnames=True,
                enable_dns_support=True,
                tags=args.tags,
            ),
            opts=child,
        )
        gateway = aws.ec2.InternetGateway(
            f"{name}-igw", aws.ec2.InternetGatewayArgs(vpc_id=vpc.id, tags=args.tags), opts=child
        )
        routes = aws.ec2.RouteTable(
            f"{name}-routes",
            aws.ec2.RouteTableArgs(
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=gateway.id)],
                tags=args.tags,
            ),
            opts=child,
        )
        self.vpc_id = vpc.id
        self.subnet_ids = []
        for i, cidr in enumerate(args.subnet_cidrs):
            subnet = aws.ec2.Subnet(
                f"{name}-public-{i + 1}",
                aws.ec2.SubnetArgs(
                    vpc_id=vpc.id,
                    cidr_block=cidr,
                    availability_zone=zones[i],
                    map_public_ip_on_launch=True,
                    tags=args.tags,
                ),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{i + 1}-routes",
                aws.ec2.RouteTableAssociationArgs(subnet_id=subnet.id, route_table_id=routes.id),
                opts=child,
            )
            self.subnet_ids.append(subnet.id)

    def _create_groups(
        self, name: str, args: AwsNetworkArgs, child: pulumi.ResourceOptions
    ) -> None:
        groups = {
            role: aws.ec2.SecurityGroup(
                f"{name}-{role}",
                aws.ec2.SecurityGroupArgs(
                    vpc_id=self.vpc_id,
                    description=f"jitsi-xxl {role}",
                    tags={**args.tags, "jitsi-xxl:role": role},
                ),
                opts=child,
            )
            for role in ("signaling", "bridges")
        }
        self.signaling_group_id = groups["signaling"].id
        self.bridge_group_id = groups["bridges"].id
        peers = {Peer.signaling: groups["signaling"].id, Peer.bridges: groups["bridges"].id}
        for role, rules in (("signaling", args.signaling_rules), ("bridges", args.bridge_rules)):
            group = groups[role]
            for rule in rules:
                for j, source in enumerate(rule.sources or ("",)):
                    aws.vpc.SecurityGroupIngressRule(
                        f"{name}-{role}-{rule.protocol}-{rule.port}-{j}",
                        aws.vpc.SecurityGroupIngressRuleArgs(
                            security_group_id=group.id,
                            ip_protocol=rule.protocol,
                            from_port=rule.port,
                            to_port=rule.port,
                            cidr_ipv4=source if source and ":" not in source else None,
                            cidr_ipv6=source if ":" in source else None,
                            referenced_security_group_id=peers[rule.peer] if rule.peer else None,
                            description=rule.description,
                        ),
                        opts=child,
                    )
            for family, cidr in (("v4", "0.0.0.0/0"), ("v6", "::/0")):
                aws.vpc.SecurityGroupEgressRule(
                    f"{name}-{role}-egress-{family}",
                    aws.vpc.SecurityGroupEgressRuleArgs(
                        security_group_id=group.id,
                        ip_protocol="-1",
                        cidr_ipv4=cidr if family == "v4" else None,
                        cidr_ipv6=cidr if family == "v6" else None,
                    ),
                    opts=child,
                )
