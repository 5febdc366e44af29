"""The rules of the jitsi-xxl policy pack, as plain functions.

Each rule takes a resource's type, its input properties (as CrossGuard hands them over,
Pulumi's wire names) and its ignore_changes option, and returns the violations it finds
(empty when the resource complies). `__main__.py` wraps them for CrossGuard; the tests call
them directly with one resource that passes and one that fails.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from components.model.pricing import AWS_TYPES, HETZNER_TYPES

Rule = Callable[[str, Mapping[str, Any], Sequence[str]], list[str]]

INSTANCE: Final = "aws:ec2/instance:Instance"
TEMPLATE: Final = "aws:ec2/launchTemplate:LaunchTemplate"
GROUP: Final = "aws:autoscaling/group:Group"
INGRESS: Final = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SECURITY_GROUP: Final = "aws:ec2/securityGroup:SecurityGroup"
VOLUME: Final = "aws:ebs/volume:Volume"
SERVER: Final = "hcloud:index/server:Server"
FIREWALL: Final = "hcloud:index/firewall:Firewall"
ANYWHERE: Final = frozenset({"0.0.0.0/0", "::/0"})

# Prosody's c2s, s2s, component, http and https ports, the visitor nodes' ranges, jicofo's
# and the videobridge's REST ports: all loopback or private by design.
PRIVATE_PORTS: Final = (
    (5222, 5222), (5269, 5269), (5280, 5281), (5347, 5347), (8080, 8080), (8888, 8888),
    (52221, 52284), (52691, 52754), (52801, 52864),
)  # fmt: skip


def _overlaps(low: int, high: int, ranges: Sequence[tuple[int, int]]) -> bool:
    return any(low <= b and a <= high for a, b in ranges)


def _port_range(port: Any) -> tuple[int, int]:
    """Hetzner ports are text: "22", "1000-2000", or "any"."""
    text = str(port or "any")
    if text == "any":
        return 0, 65535
    low, _, high = text.partition("-")
    return int(low), int(high or low)


def _public_ingress(resource_type: str, props: Mapping[str, Any]) -> list[tuple[int, int, str]]:
    """(low port, high port, source) of every rule open to anywhere."""
    found = []
    if resource_type == INGRESS:
        source = props.get("cidrIpv4") or props.get("cidrIpv6")
        if source in ANYWHERE:
            low = int(props.get("fromPort", 0) or 0)
            high = int(props.get("toPort", low) or low)
            if props.get("ipProtocol") == "-1":
                low, high = 0, 65535
            found.append((low, high, str(source)))
    elif resource_type == SECURITY_GROUP:
        for rule in props.get("ingress") or []:
            for source in [*(rule.get("cidrBlocks") or []), *(rule.get("ipv6CidrBlocks") or [])]:
                if source in ANYWHERE:
                    found.append((int(rule.get("fromPort", 0)), int(rule.get("toPort", 0)), source))
    elif resource_type == FIREWALL:
        for rule in props.get("rules") or []:
            if rule.get("direction", "in") != "in":
                continue
            for source in rule.get("sourceIps") or []:
                if source in ANYWHERE:
                    found.append((*_port_range(rule.get("port")), source))
    return found


def imdsv2_required(resource_type: str, props: Mapping[str, Any], _: Sequence[str]) -> list[str]:
    """Instances and launch templates require IMDSv2 (session tokens)."""
    if resource_type not in (INSTANCE, TEMPLATE):
        return []
    tokens = (props.get("metadataOptions") or {}).get("httpTokens")
    return [] if tokens == "required" else [f"metadata httpTokens is {tokens!r}, not 'required'"]


def no_ssh_from_anywhere(
    resource_type: str, props: Mapping[str, Any], _: Sequence[str]
) -> list[str]:
    """SSH (22/tcp) is never open to the whole internet."""
    return [
        f"port 22 open to {source}"
        for low, high, source in _public_ingress(resource_type, props)
        if low <= 22 <= high  # noqa: PLR2004
    ]


def no_public_prosody_ports(
    resource_type: str, props: Mapping[str, Any], _: Sequence[str]
) -> list[str]:
    """Prosody's c2s/s2s/http ports, the visitor nodes' ports and the REST ports stay private."""
    return [
        f"ports {low}-{high} open to {source} include prosody's or a visitor node's"
        for low, high, source in _public_ingress(resource_type, props)
        if _overlaps(low, high, PRIVATE_PORTS)
    ]


def encrypted_volumes(resource_type: str, props: Mapping[str, Any], _: Sequence[str]) -> list[str]:
    """Every disk is encrypted."""
    if resource_type == INSTANCE:
        root = props.get("rootBlockDevice") or {}
        return [] if root.get("encrypted") is True else ["root volume not encrypted"]
    if resource_type == TEMPLATE:
        return [
            f"block device {m.get('deviceName')} not encrypted"
            for m in props.get("blockDeviceMappings") or []
            if str((m.get("ebs") or {}).get("encrypted")).lower() != "true"
        ]
    if resource_type == VOLUME:
        return [] if props.get("encrypted") is True else ["volume not encrypted"]
    return []


_CREDENTIAL: Final = re.compile(r"PRIVATE KEY|password\s*[=:]|secret\s*[=:]", re.IGNORECASE)


def _user_data_text(resource_type: str, props: Mapping[str, Any]) -> str | None:
    if resource_type == SERVER:
        return props.get("userData")
    encoded = props.get("userDataBase64") if resource_type == INSTANCE else props.get("userData")
    if not encoded:
        return None
    try:
        raw = base64.b64decode(encoded)
        return (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode(errors="replace")
    except (binascii.Error, OSError, ValueError):
        return str(encoded)


def no_credentials_in_clear_user_data(
    resource_type: str, props: Mapping[str, Any], _: Sequence[str]
) -> list[str]:
    """User data is readable through the cloud's API and the instance metadata: no credential
    may sit in it as clear text. (Its secrecy in the Pulumi state is the program's job and is
    tested there: CrossGuard hands policies the values without their secret marks.)"""
    if resource_type not in (INSTANCE, TEMPLATE, SERVER):
        return []
    text = _user_data_text(resource_type, props)
    match = _CREDENTIAL.search(text or "")
    return [f"user data shows a credential in clear text near {match.group(0)!r}"] if match else []


def desired_capacity_ignored(
    resource_type: str, props: Mapping[str, Any], ignore_changes: Sequence[str]
) -> list[str]:
    """The bridge group's size belongs to its scaling policy and schedules, not to `pulumi up`."""
    if resource_type != GROUP:
        return []
    ignored = {c.replace("_", "").lower() for c in ignore_changes}
    return [] if "desiredcapacity" in ignored else ["desiredCapacity is not in ignore_changes"]


def documented_instance_sizes(
    resource_type: str, props: Mapping[str, Any], _: Sequence[str]
) -> list[str]:
    """Machines come from the documented families and sizes (components/model/pricing.py)."""
    if resource_type in (INSTANCE, TEMPLATE):
        kind, table = props.get("instanceType"), AWS_TYPES
    elif resource_type == SERVER:
        kind, table = props.get("serverType"), HETZNER_TYPES
    else:
        return []
    if kind in table:
        return []
    return [f"{kind!r} is not one of {', '.join(table)}"]


RULES: Final[dict[str, Rule]] = {
    "imdsv2-required": imdsv2_required,
    "no-ssh-from-anywhere": no_ssh_from_anywhere,
    "no-public-prosody-ports": no_public_prosody_ports,
    "encrypted-volumes": encrypted_volumes,
    "no-credentials-in-clear-user-data": no_credentials_in_clear_user_data,
    "bridge-desired-capacity-ignored": desired_capacity_ignored,
    "documented-instance-sizes": documented_instance_sizes,
}
