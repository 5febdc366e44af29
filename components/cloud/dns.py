"""DnsRecord: the A record of the conference domain, in Route53 or Hetzner DNS.

Made before the signaling VM boots (the VMs depend on it), so that Let's Encrypt can reach
the domain on first boot.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.model.naming import relative_record
from components.model.project import Cloud


@dataclass(frozen=True, kw_only=True)
class DnsRecordArgs:
    """Arguments of DnsRecord."""

    cloud: Cloud
    zone: str
    domain: str
    ttl: int
    address: pulumi.Input[str] = ""  # set by the VM component that owns the address


class DnsRecord(pulumi.ComponentResource):
    """`<domain> A <address>` in the stack's cloud."""

    record: pulumi.Resource

    def __init__(
        self, name: str, args: DnsRecordArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jitsi-xxl:dns:DnsRecord", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # each stack imports one provider SDK only: they take a second to load
        if args.cloud is Cloud.aws:
            import pulumi_aws as aws  # noqa: PLC0415

            self.record = aws.route53.Record(
                f"{name}-a",
                aws.route53.RecordArgs(
                    zone_id=args.zone,
                    name=args.domain,
                    type="A",
                    ttl=args.ttl,
                    records=[args.address],
                ),
                opts=child,
            )
        else:
            import pulumi_hcloud as hcloud  # noqa: PLC0415

            self.record = hcloud.ZoneRrset(
                f"{name}-a",
                hcloud.ZoneRrsetArgs(
                    zone=args.zone,
                    name=relative_record(args.domain, args.zone),
                    type="A",
                    ttl=args.ttl,
                    records=[hcloud.ZoneRrsetRecordArgs(value=args.address)],
                ),
                opts=child,
            )
        self.register_outputs({"fqdn": args.domain})
