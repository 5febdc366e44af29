"""What the per-cloud compositions take and give: one stack's rendered VMs and its results."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pulumi

from components.cloud.dns import DnsRecordArgs
from components.model.credentials import Credentials
from components.model.planner import Plan
from components.model.settings import Settings


@dataclass(frozen=True, kw_only=True)
class Deployment:
    """Everything a cloud composition needs: settings, plan, and the rendered user data."""

    stack: str
    prefix: str
    settings: Settings
    plan: Plan
    credentials: pulumi.Output[Credentials]  # secret; AWS keeps them in Parameter Store
    signaling_user_data: pulumi.Output[str]  # cloud-config text, secret
    # what the bridge pool is made from, secret: AWS, the bridges' cloud-config (the launch
    # template); Hetzner, the scaler VM's, which carries theirs to its autoscaler
    pool_user_data: pulumi.Output[str]
    dns: DnsRecordArgs | None
    now: datetime  # when the program runs: which scheduled sizes are still to come


def utc_now() -> datetime:
    """The program's clock (one place, so the tests can set it)."""
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Deployed:
    """What a cloud composition made, for the stack outputs."""

    public_ip: pulumi.Output[str]
    private_ip: pulumi.Output[str]
    pool: dict[str, object]
    # how an operator finds a bridge that is not serving
    bridge_health: str
    # the private half of a key generated for root's logins (Hetzner without `ssh_keys`)
    ssh_private_key: pulumi.Output[str | None]
