"""Instance types we deploy, their sizes and list prices, and the hourly cost of a plan.

The table is also the allow-list of instance types: a type whose price and size we do not
know cannot be planned. Prices are list prices as of the date below; they move (Hetzner's
twice in 2026), so the estimate is a guide for an event budget, not an invoice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

PRICES_AS_OF: Final = "2026-11"

AWS_SOURCE: Final = (
    "AWS EC2 on-demand Linux list prices, us-east-1 (other regions differ, eu-central-1 by "
    "about +15%); internet egress at the first tier, $0.09/GB; public IPv4 $0.005/h"
)
HETZNER_SOURCE: Final = (
    "Hetzner Cloud list prices (monthly price / 730 h, excl. VAT, May-2026 level); 20 TB "
    "egress included per server and month in EU locations, then EUR 1/TB"
)


@dataclass(frozen=True)
class InstanceType:
    """A machine we may deploy: vCPUs, memory, and price per hour."""

    name: str
    vcpus: int
    memory_gib: int
    per_hour: float


AWS_TYPES: Final = {
    t.name: t
    for t in (
        InstanceType("c6i.2xlarge", 8, 16, 0.34),
        InstanceType("c6a.2xlarge", 8, 16, 0.306),
        InstanceType("c7i.2xlarge", 8, 16, 0.357),
        InstanceType("c7a.2xlarge", 8, 16, 0.41),
        InstanceType("c6i.4xlarge", 16, 32, 0.68),
        InstanceType("c6a.4xlarge", 16, 32, 0.612),
        InstanceType("c7i.4xlarge", 16, 32, 0.714),
        InstanceType("c7a.4xlarge", 16, 32, 0.82),
    )
}
# Dedicated vCPUs only: the videobridge's stress counts CPU steal, which shared vCPUs inflate.
HETZNER_TYPES: Final = {
    t.name: t
    for t in (
        InstanceType("ccx33", 8, 32, round(52 / 730, 4)),
        InstanceType("ccx43", 16, 64, round(100 / 730, 4)),
    )
}

# The Hetzner scaler VM's: shared vCPUs suffice for a loop that polls every 30 s. A few
# euros a month, left out of the hourly estimate.
HETZNER_SCALER_TYPE: Final = "cx23"

DEFAULT_SIGNALING = {"aws": "c6i.4xlarge", "hetzner": "ccx43"}
DEFAULT_BRIDGE = {"aws": "c6i.2xlarge", "hetzner": "ccx33"}
MIN_SIGNALING_VCPUS: Final = 16
MIN_BRIDGE_VCPUS: Final = 8

AWS_EGRESS_PER_GB: Final = 0.09
AWS_IPV4_PER_HOUR: Final = 0.005
HETZNER_INCLUDED_GB_PER_SERVER_HOUR: Final = 20_000 / 730
HETZNER_EGRESS_PER_GB: Final = 1.0 / 1000

# What one viewer receives: the stage in HD plus thumbnails, about 1.5 Mbit/s. An assumption
# for budgeting; the real figure depends on the layout and the senders.
VIEWER_MBITS: Final = 1.5


def types_for(cloud: str) -> dict[str, InstanceType]:
    return AWS_TYPES if cloud == "aws" else HETZNER_TYPES


def egress_gb_per_hour(audience: int) -> float:
    return audience * VIEWER_MBITS * 1e6 / 8 * 3600 / 1e9


@dataclass(frozen=True)
class CostEstimate:
    """Estimated cost of one hour at the planned size."""

    currency: str
    compute: float
    egress: float
    total: float
    egress_gb: float
    assumptions: str
    prices_as_of: str
    source: str


def estimate(
    cloud: str, signaling_type: str, bridge_type: str, bridges: int, audience: int
) -> CostEstimate:
    """Compute plus egress per hour, for the signaling VM and `bridges` bridges."""
    table = types_for(cloud)
    compute = table[signaling_type].per_hour + bridges * table[bridge_type].per_hour
    gb = egress_gb_per_hour(audience)
    if cloud == "aws":
        compute += (bridges + 1) * AWS_IPV4_PER_HOUR
        egress = gb * AWS_EGRESS_PER_GB
        currency, source = "USD", AWS_SOURCE
    else:
        included = (bridges + 1) * HETZNER_INCLUDED_GB_PER_SERVER_HOUR
        egress = max(0.0, gb - included) * HETZNER_EGRESS_PER_GB
        currency, source = "EUR", HETZNER_SOURCE
    return CostEstimate(
        currency=currency,
        compute=round(compute, 2),
        egress=round(egress, 2),
        total=round(compute + egress, 2),
        egress_gb=math.ceil(gb),
        assumptions=f"{audience} viewers at {VIEWER_MBITS} Mbit/s each; {bridges} bridges",
        prices_as_of=PRICES_AS_OF,
        source=source,
    )
