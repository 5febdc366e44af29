"""Names, tags and labels of cloud resources: pure, and within each provider's limits."""

from __future__ import annotations

import re
from typing import Final

# AWS names (Auto Scaling groups, IAM roles) allow 64 characters in the tightest case we use.
AWS_NAME_LIMIT: Final = 64
# Hetzner label values: 63 characters of [a-z0-9A-Z._-], starting and ending alphanumeric.
HETZNER_LABEL_LIMIT: Final = 63
LABEL_ROLE: Final = "jitsi-xxl/role"
LABEL_STACK: Final = "jitsi-xxl/stack"
# Roles (LABEL_ROLE's values on Hetzner): the stack's resources found by label, by Pulumi's
# firewall, the autoscaler and the sweep alike.
ROLE_SIGNALING: Final = "signaling"
ROLE_BRIDGES: Final = "jvb"
ROLE_SCALER: Final = "scaler"
ROLE_NETWORK: Final = "network"
ROLE_ACCESS: Final = "access"


def resource_prefix(stack: str) -> str:
    """`jitsi-xxl-<stack>`, cut to leave room for a suffix of up to 20 characters."""
    clean = re.sub(r"[^a-z0-9-]+", "-", stack.lower()).strip("-") or "stack"
    return f"jitsi-xxl-{clean}"[: AWS_NAME_LIMIT - 20].rstrip("-")


def label_value(value: str) -> str:
    """A Hetzner label value: allowed characters only, alphanumeric at both ends, 63 at most."""
    clean = re.sub(r"[^a-zA-Z0-9._-]+", "-", value)[:HETZNER_LABEL_LIMIT]
    return clean.strip("._-") or "x"


def labels(stack: str, role: str) -> dict[str, str]:
    return {LABEL_STACK: label_value(stack), LABEL_ROLE: label_value(role)}


def label_selector(stack: str, role: str) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels(stack, role).items()))


def tags(stack: str, role: str) -> dict[str, str]:
    return {
        "Name": f"{resource_prefix(stack)}-{role}",
        "jitsi-xxl:stack": stack,
        "jitsi-xxl:role": role,
    }


def relative_record(domain: str, zone: str) -> str:
    """The record name of `domain` inside `zone` (`@` for the apex)."""
    zone = zone.rstrip(".").lower()
    if domain == zone:
        return "@"
    if not domain.endswith("." + zone):
        raise ValueError(f"domain {domain} is not inside DNS zone {zone}")
    return domain.removesuffix("." + zone)


def secrets_path(stack: str, role: str) -> str:
    """The SSM Parameter Store folder of one role's secrets: `/jitsi-xxl/<stack>/<role>/`.

    One folder per role, so that an IAM grant on the folder gives each VM its own secrets and
    nothing else. Parameter names allow letters, digits and `.-_`; the stack name is cleaned
    the same way as resource names."""
    clean = re.sub(r"[^a-zA-Z0-9_.-]+", "-", stack).strip("-") or "stack"
    return f"/jitsi-xxl/{clean}/{role}/"
