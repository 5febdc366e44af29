"""Topology planner: pure functions from settings to names, ports, counts and capacity.

Nothing here touches Pulumi, jinja or the file system, so every rule is property-tested.

Port scheme: visitor node N (1-based, `vN`) listens on c2s 52220+N, s2s 52690+N and http
52800+N. For N <= 9 that equals upstream's string-built 5222N/5269N/5280N; unlike the
string concatenation it stays correct for N >= 10 (upstream's v10 would get 526910).
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Final

from components.model.ports import node_ports
from components.model.project import PROJECT, VISITOR_DOMAIN_SUFFIX, Cloud

if TYPE_CHECKING:  # the model imports the planner for its rules between sections
    from components.model.settings import Settings

MAX_NODES: Final = 64

# Plan a node to be at most two-thirds full at the expected audience: jicofo picks a
# random unused node once one reaches its soft limit, and the viewers of a node that
# restarts reconnect to the others. 10,000 viewers at 2,000 per node gives 8 nodes, the
# upstream recommendation.
NODE_TARGET_FILL: Final = Fraction(2, 3)

# visitors_component keeps the vnodes of one room in a cache of 16 entries; a room spread
# over more nodes loses promotion requests from the evicted ones.
MAX_NODES_PER_ROOM: Final = 16

# Hetzner: a network holds at most 100 servers, and a new project starts with a small server
# limit; both are raised on request (peers-and-pulumi.md, B.8).
HETZNER_SERVERS_PER_NETWORK: Final = 100
# Hetzner: a spread placement group holds at most 10 servers.
HETZNER_SPREAD_GROUP_SIZE: Final = 10

# jicofo sends a viewer to the least-loaded node that has the conference until that node holds
# `max-visitors-per-node`, opens another node only then, and once every node holds that many
# picks a random node (ConferenceUtil.selectVisitorNode). With the even share as the limit the
# join storm would hit one node at a time, and one node admits only so many joins a second
# (README, "Capacity, measured"). A small limit opens every node after nodes x this many joins
# and spreads the rest of the storm over all of them at once; the hard cap per node stays
# prosody's `muc_max_occupants` (max_per_node), far above a random spread's share.
SPREAD_AFTER: Final = 50

# Ceiling of the bridge pool over what the audience needs, for stress-driven scale-out.
BRIDGE_HEADROOM: Final = Fraction(3, 2)


@dataclass(frozen=True)
class VisitorNode:
    """One visitor prosody (`vN`) and everything named after it."""

    index: int
    name: str
    domain: str
    muc: str
    polls: str
    c2s_port: int
    s2s_port: int
    http_port: int

    @property
    def config_dir(self) -> str:
        return f"/etc/prosody-{self.name}"

    @property
    def data_dir(self) -> str:
        return f"/var/lib/prosody-{self.name}"

    @property
    def log_dir(self) -> str:
        return f"/var/log/prosody-{self.name}"

    @property
    def run_dir(self) -> str:
        return f"/run/prosody-{self.name}"

    @property
    def unit(self) -> str:
        return f"prosody-v@{self.index}.service"

    @property
    def s2s_names(self) -> tuple[str, str, str]:
        """Names the main prosody reaches on this node over s2s."""
        return (self.muc, self.domain, self.polls)


def node_names(index: str) -> tuple[str, str, str, str]:
    """Name, domain, MUC and polls component of node `index` (a number, or a placeholder that
    stands for one): `v3`, `v3.meet.jitsi`, `conference.v3.meet.jitsi`, `polls.v3.meet.jitsi`."""
    name = f"v{index}"
    domain = f"{name}.{VISITOR_DOMAIN_SUFFIX}"
    return name, domain, f"conference.{domain}", f"polls.{domain}"


def visitor_node(index: int) -> VisitorNode:
    """Name and number visitor node `index` (1-based)."""
    if not 1 <= index <= MAX_NODES:
        raise ValueError(f"visitor node index must be 1..{MAX_NODES}, got {index}")
    name, domain, muc, polls = node_names(str(index))
    c2s, s2s, http = node_ports(index)
    return VisitorNode(
        index=index,
        name=name,
        domain=domain,
        muc=muc,
        polls=polls,
        c2s_port=c2s,
        s2s_port=s2s,
        http_port=http,
    )


def reserved_port_ranges(nodes: tuple[VisitorNode, ...]) -> str:
    """`net.ipv4.ip_local_reserved_ports` for the nodes: one range per kind of port."""
    if not nodes:
        return ""
    kinds = ((n.c2s_port, n.s2s_port, n.http_port) for n in nodes)
    columns = list(zip(*kinds, strict=True))
    return ",".join(f"{min(c)}-{max(c)}" for c in columns)


def visitor_nodes(count: int) -> tuple[VisitorNode, ...]:
    return tuple(visitor_node(i) for i in range(1, count + 1))


def default_node_count(audience: int, max_per_node: int) -> int:
    """Nodes for an audience when `visitors.nodes` is not set (see NODE_TARGET_FILL)."""
    wanted = math.ceil(Fraction(audience) / (max_per_node * NODE_TARGET_FILL))
    return max(1, min(MAX_NODES, wanted))


def visitors_per_node(audience: int, nodes: int, max_per_node: int) -> int:
    """Viewers a node is expected to hold: the audience spread evenly, never past the cap."""
    return max(1, min(max_per_node, math.ceil(audience / nodes)))


def node_soft_limit(visitors_per_node: int) -> int:
    """jicofo's `max-visitors-per-node` (see SPREAD_AFTER)."""
    return max(1, min(visitors_per_node, SPREAD_AFTER))


def bridges_needed(audience: int, main_participants: int, participants_per_bridge: int) -> int:
    """Bridges that carry every endpoint (viewers plus the main room) at the per-bridge cap."""
    return max(1, math.ceil((audience + main_participants) / participants_per_bridge))


@dataclass(frozen=True)
class BridgePool:
    """Size of the videobridge pool."""

    needed: int
    min: int
    desired: int
    max: int


def bridge_pool(needed: int, floor: int | None = None, ceiling: int | None = None) -> BridgePool:
    """Pool bounds: the floor defaults to what is needed (an event must not start short),
    the ceiling to 1.5x that; desired is what is needed, within the bounds."""
    lo = floor if floor is not None else needed if ceiling is None else min(needed, ceiling)
    hi = max(lo, math.ceil(needed * BRIDGE_HEADROOM)) if ceiling is None else ceiling
    return BridgePool(needed=needed, min=lo, desired=min(max(needed, lo), hi), max=hi)


@dataclass(frozen=True)
class Capacity:
    """What the plan can hold and which limit binds first."""

    audience: int
    viewers: int
    by_visitor_nodes: int
    by_bridges: int
    binding: str

    @property
    def fits(self) -> bool:
        return self.viewers >= self.audience


def capacity(
    *,
    audience: int,
    nodes: int,
    max_per_node: int,
    main_participants: int,
    bridges_max: int,
    participants_per_bridge: int,
) -> Capacity:
    by_nodes = nodes * max_per_node
    by_bridges = max(0, bridges_max * participants_per_bridge - main_participants)
    binding = "visitor nodes" if by_nodes <= by_bridges else "bridges"
    return Capacity(
        audience=audience,
        viewers=min(by_nodes, by_bridges),
        by_visitor_nodes=by_nodes,
        by_bridges=by_bridges,
        binding=binding,
    )


@dataclass(frozen=True)
class NetworkPlan:
    """Private addressing shared by both clouds."""

    cidr: str
    subnets: tuple[str, ...]
    signaling_private_ip: str


def network_plan(cidr: str, zones: int = 2) -> NetworkPlan:
    """Carve subnets 1..zones out of the range; the signaling VM is host .10 of the first.

    Subnets are /20 where the range allows (4,091 hosts each: a 500-bridge pool fits in one),
    else two prefix lengths below the range. Subnet 0 is left free: AWS and Hetzner both
    reserve addresses at the start of a range.
    """
    net = ipaddress.IPv4Network(cidr)
    size = max(20, net.prefixlen + 2)
    subnets = tuple(str(s) for s in list(net.subnets(new_prefix=size))[1 : zones + 1])
    first = ipaddress.IPv4Network(subnets[0])
    return NetworkPlan(
        cidr=cidr, subnets=subnets, signaling_private_ip=str(first.network_address + 10)
    )


_OCTET: Final = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"


def colibri_ws_route(cidr: str, port: int) -> tuple[str, str]:
    """nginx location regex and proxy_pass target for `/colibri-ws/jvb-A-B-C-D/...`.

    A bridge's server-id is `jvb-` plus its private address with dashes (bridge_server_id),
    so a new bridge in the pool needs no nginx change. The regex matches only addresses
    inside `cidr`, which keeps the route from proxying anywhere outside the bridges' network.
    """
    net = ipaddress.IPv4Network(cidr)
    patterns: list[str] = []
    octets: list[str] = []
    group = 0
    for lo, hi in zip(net.network_address.packed, net.broadcast_address.packed, strict=True):
        if lo == hi:
            patterns.append(str(lo))
            octets.append(str(lo))
            continue
        group += 1
        octets.append(f"${group}")
        if lo == 0 and hi == 255:  # noqa: PLR2004
            patterns.append(_OCTET)
        else:
            patterns.append("(" + "|".join(str(v) for v in range(lo, hi + 1)) + ")")
    regex = r"^/colibri-ws/jvb-" + "-".join(patterns) + r"/(.*)$"
    address = ".".join(octets)
    server_id = "jvb-" + "-".join(octets)
    target = f"http://{address}:{port}/colibri-ws/{server_id}/${group + 1}$is_args$args"
    return regex, target


def bridge_server_id(private_ip: str) -> str:
    """The server-id a bridge at `private_ip` announces (see colibri_ws_route)."""
    return "jvb-" + str(ipaddress.IPv4Address(private_ip)).replace(".", "-")


@dataclass(frozen=True)
class Plan:
    """The whole topology derived from one stack's settings."""

    domain: str
    nodes: tuple[VisitorNode, ...]
    visitors_per_node: int
    node_soft_limit: int  # jicofo's max-visitors-per-node
    max_per_node: int
    main_participants: int
    participants_per_bridge: int
    bridges: BridgePool
    capacity: Capacity
    network: NetworkPlan
    warnings: tuple[str, ...]

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(p for n in self.nodes for p in (n.c2s_port, n.s2s_port, n.http_port))


def node_count(settings: Settings) -> int:
    v = settings.visitors
    return v.nodes if v.nodes is not None else default_node_count(settings.audience, v.max_per_node)


def check_plan(settings: Settings) -> list[str]:
    """Rules between sections; one line per problem, naming the keys."""
    v, b = settings.visitors, settings.bridges
    problems: list[str] = []
    nodes = node_count(settings)
    if nodes * v.max_per_node < settings.audience:
        least = math.ceil(settings.audience / v.max_per_node)
        hint = (
            f"at least {least} nodes"
            if least <= MAX_NODES
            else f"visitors.max_per_node of at least {math.ceil(settings.audience / MAX_NODES)}"
        )
        problems.append(
            f"{PROJECT}:visitors.nodes: {nodes} nodes x max_per_node {v.max_per_node} hold "
            f"{nodes * v.max_per_node} viewers, fewer than audience {settings.audience}; "
            f"allowed: {hint}"
        )
    needed = bridges_needed(settings.audience, v.main_participants, b.participants_per_bridge)
    pool = bridge_pool(needed, b.min, b.max)
    if pool.min > pool.max:
        problems.append(
            f"{PROJECT}:bridges.min: {pool.min} is above bridges.max {pool.max}; "
            f"allowed: a floor at most the ceiling"
        )
    elif pool.max < needed:
        problems.append(
            f"{PROJECT}:bridges.max: {pool.max} bridges of {b.participants_per_bridge} carry "
            f"fewer than audience {settings.audience} + {v.main_participants} main "
            f"participants; allowed: at least {needed} (or raise "
            f"bridges.participants_per_bridge)"
        )
    return problems


def plan(settings: Settings) -> Plan:
    """Derive the topology. Assumes `check_plan(settings)` is empty (parse_settings ensures it)."""
    v, b = settings.visitors, settings.bridges
    count = node_count(settings)
    needed = bridges_needed(settings.audience, v.main_participants, b.participants_per_bridge)
    pool = bridge_pool(needed, b.min, b.max)
    warnings = []
    if settings.cloud is Cloud.hetzner and pool.desired + 1 > HETZNER_SERVERS_PER_NETWORK:
        warnings.append(
            f"Hetzner: {pool.desired} bridges and the signaling server exceed the "
            f"{HETZNER_SERVERS_PER_NETWORK} servers a network holds by default; ask Hetzner "
            "to raise the network and project limits before the event, or use fewer, "
            "larger bridges"
        )
    if count > MAX_NODES_PER_ROOM:
        warnings.append(
            f"{count} visitor nodes: one conference uses at most {MAX_NODES_PER_ROOM} of them "
            "reliably (visitors_component tracks 16 nodes per room); more serve more rooms"
        )
    per_node = visitors_per_node(settings.audience, count, v.max_per_node)
    return Plan(
        domain=settings.domain,
        nodes=visitor_nodes(count),
        visitors_per_node=per_node,
        node_soft_limit=node_soft_limit(per_node),
        max_per_node=v.max_per_node,
        main_participants=v.main_participants,
        participants_per_bridge=b.participants_per_bridge,
        bridges=pool,
        capacity=capacity(
            audience=settings.audience,
            nodes=count,
            max_per_node=v.max_per_node,
            main_participants=v.main_participants,
            bridges_max=pool.max,
            participants_per_bridge=b.participants_per_bridge,
        ),
        network=network_plan(settings.network.cidr),
        warnings=tuple(warnings),
    )
