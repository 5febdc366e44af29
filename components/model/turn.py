"""coturn's policy on the signaling VM: where it may relay to, how much, and for how long.

Viewers whose networks block UDP to the bridges relay their media through coturn. A relay is
a door into whatever the VM can reach, so coturn relays only to public addresses: never into
the private network, to loopback, to link-local (the clouds' metadata services) or to any
prefix that embeds an IPv4 address (a translator would deliver to that address), and never to
the VM itself, whose own addresses the bootstrap adds at boot (`turn_addresses`).

Credentials follow the TURN REST API that prosody's mod_external_services implements: the
username is the expiry time, the password an HMAC of it under the shared secret.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum, unique
from typing import Final

from components.model.admission import STORM_SECONDS
from components.model.ports import TURN_RELAY_MAX_PORT, TURN_RELAY_MIN_PORT
from components.model.project import Cloud

# (range, why coturn must not relay there). Documentation ranges (192.0.2.0/24,
# 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are routed nowhere, so there is nothing
# behind them to protect; multicast is refused by `no-multicast-peers`.
DENIED_PEERS: Final = (
    ("0.0.0.0/8", "this network: 0.0.0.0 reaches the VM's own services"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT, some clouds' internal services)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local: the metadata services of AWS and Hetzner (169.254.169.254)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking, used inside some networks"),
    ("240.0.0.0/4", "reserved, and broadcast"),
    ("::/96", "loopback (::1) and IPv4-compatible addresses (coturn refuses :: itself)"),
    ("::ffff:0:0/96", "IPv4-mapped: would reach the IPv4 address around the IPv4 ranges"),
    ("64:ff9b::/96", "NAT64 (AWS offers it): translated to an embedded, maybe private, IPv4"),
    ("64:ff9b:1::/48", "local-use NAT64, as above"),
    ("2001::/32", "Teredo: embeds an IPv4 address"),
    ("2002::/16", "6to4: embeds an IPv4 address"),
    ("fc00::/7", "unique local, including AWS's IPv6 metadata address fd00:ec2::254"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "deprecated site-local, still routed privately in places"),
)

# TLS application protocols of TURN clients (RFC 7443). Browsers offer none on turns:, so a
# TLS client that offers no protocol is taken for a TURN client too.
TURN_ALPNS: Final = ("stun.turn", "stun.nat-discovery")

# A browser allocates one relay on every TURN service it is given: turn (UDP) and turns (TLS
# on 443). An ICE restart allocates again while the old allocations run out: twice that.
ALLOCATIONS_PER_CLIENT: Final = 2
RESTART_HEADROOM: Final = 2
# How fast the audience may arrive: all of it within the join storm.
ARRIVAL_SECONDS: Final = STORM_SECONDS
# Per relayed session and direction: above a main participant's simulcast (about 2.5 + 0.5 +
# 0.15 Mbit/s and audio) and a viewer's HD stage; far below what bulk transfer would want.
SESSION_MBITS: Final = 5
# Credentials outlive a viewing session: coturn ends an allocation when its credentials
# expire, and the web app fetches them once, when it connects. Without an event window
# credentials last a long session; with one, the longest bound (see credential_ttl).
DEFAULT_CREDENTIAL_TTL: Final = timedelta(hours=8)
MAX_CREDENTIAL_TTL: Final = timedelta(hours=12)


def coturn_range(network: str) -> str:
    """A CIDR as coturn's `denied-peer-ip` writes it: first-last, or one address.

    coturn (4.6, `ioa_addr_in_range`) reads a range that starts at the unspecified address as
    open below, and orders IPv4 before IPv6: a range from `::` would hold every IPv4 address.
    So an IPv6 range starts after `::`, which coturn refuses as a peer on its own.

    >>> coturn_range("10.0.0.0/8")
    '10.0.0.0-10.255.255.255'
    >>> coturn_range("::/96")
    '::1-::ffff:ffff'
    """
    net = ipaddress.ip_network(network)
    first, last = net.network_address, net.broadcast_address
    if isinstance(first, ipaddress.IPv6Address) and first.is_unspecified:
        first += 1
    return str(first) if first == last else f"{first}-{last}"


def denied_peers(private_network: str) -> tuple[tuple[str, str], ...]:
    """Every range coturn refuses to relay to, with its reason: the fixed list and the stack's
    private network (named even where a fixed range covers it, so any range it is given
    stays closed)."""
    return (*DENIED_PEERS, (private_network, "this stack's private network"))


@dataclass(frozen=True)
class RelayLimits:
    """coturn's quotas: allocations per username, in total, and bytes per second per session."""

    user_quota: int
    total_quota: int
    max_bps: int


def relay_limits(clients: int) -> RelayLimits:
    """Quotas for `clients` (viewers and main participants) that never refuse a planned one.

    The REST username prosody hands out is the expiry second alone, so every client that got
    its credentials in the same second counts against one user quota: it must hold a second's
    worth of the arrival. The total holds every client's allocations, and no more than the
    relay ports coturn has.
    """
    per_client = ALLOCATIONS_PER_CLIENT * RESTART_HEADROOM
    per_second = math.ceil(clients / ARRIVAL_SECONDS)
    ports = TURN_RELAY_MAX_PORT - TURN_RELAY_MIN_PORT + 1
    return RelayLimits(
        user_quota=per_client * max(1, per_second),
        total_quota=min(ports, per_client * max(1, clients)),
        max_bps=SESSION_MBITS * 1_000_000 // 8,
    )


def credential_ttl(event_start: datetime | None, event_end: datetime | None) -> int:
    """Seconds a TURN credential lives (prosody's `external_service_ttl`).

    With a window, the longest lifetime whatever the window says: the window may move during
    the event (an overrun), and this value lives in the signaling VM's configuration, which a
    running event cannot have replaced. A viewer from the start of any event up to 11 hours
    long stays relayed."""
    if event_start is None or event_end is None:
        return math.ceil(DEFAULT_CREDENTIAL_TTL.total_seconds())
    return math.ceil(MAX_CREDENTIAL_TTL.total_seconds())


@unique
class PublicAddress(StrEnum):
    """Where the signaling VM learns its public address at boot."""

    interface = "interface"  # on a network interface (Hetzner)
    imds = "imds"  # behind the cloud's 1:1 NAT, named by EC2's instance metadata (AWS)


def public_address(cloud: Cloud) -> PublicAddress:
    return PublicAddress.imds if cloud is Cloud.aws else PublicAddress.interface
