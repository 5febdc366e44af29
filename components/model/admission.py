"""Admission control for the join storm: every limit that decides whether the signaling VM
takes, queues or refuses a connection, derived from the plan.

At an event the audience clicks the link within about a minute. Each limit below is sized
for that minute's busiest second, and the rendering only places the values: the kernel's
accept queues, each prosody's listen backlog and open files, nginx's connections, files and
per-address limits, the visitor nodes' MUC join rate and jicofo's per-bridge pace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from components.model.planner import Plan

# The whole audience joins within one minute of the start.
STORM_SECONDS: Final = 60
# In the busiest second, connection opens arrive at five times the minute's average.
PEAK_FACTOR: Final = 5
# A joining viewer opens two WebSockets: one to the main prosody for the conference
# request, then one to the visitor node it is sent to.
OPENS_PER_VIEWER: Final = 2

# Linux's own somaxconn since 5.4: a queue sized for a smaller storm stays at it.
MIN_LISTEN_BACKLOG: Final = 4096
# Older kernels kept a listener's backlog in 16 bits and wrapped larger values; this is the
# largest every kernel and nginx take as given.
MAX_LISTEN_BACKLOG: Final = 65535
# nginx's own default backlog on Linux: no node gets a shorter queue than that.
MIN_NODE_BACKLOG: Final = 511

# Open files no prosody gets less of: room for jicofo, the bridges and the s2s links besides
# the viewers; an unused limit costs nothing.
MIN_NOFILE: Final = 65536
# Every viewer's first connection may be open on the main prosody at once during the storm
# (a viewer leaves for its node only once jicofo answers); twice that leaves room for
# viewers who reconnect before prosody has closed their old connection.
MAIN_FILES_PER_VIEWER: Final = 2
# A node holds one connection from nginx per viewer; a BOSH viewer holds two requests at a
# time, and a reconnecting viewer's old socket lingers until prosody notices it is gone.
NODE_FILES_PER_VIEWER: Final = 4

# nginx: a WebSocket viewer holds four connections (the client's on 443, the multiplexer's
# to the https server and that server's end of it, and the one to its prosody), and nothing
# spreads viewers evenly over the workers, so each worker may get the whole audience.
NGINX_CONNECTIONS_PER_VIEWER: Final = 4
MIN_WORKER_CONNECTIONS: Final = 4096
# Connections besides the viewers': jicofo's REST calls, colibri WebSockets, health checks.
SPARE_CONNECTIONS: Final = 1024
# Files a worker opens besides its connections: logs, listeners, the files it serves.
SPARE_FILES: Final = 1024
# Linux's default fs.nr_open: no process may raise its open-file limit above it.
DEFAULT_NR_OPEN: Final = 1 << 20
# fs.nr_open is rendered in whole steps of this, as its default is.
NR_OPEN_STEP: Final = 1024

# nginx's shared zones. The upstream zone holds every upstream's state: 16 KiB each is ample.
UPSTREAM_ZONE_KIB_EACH: Final = 16
# A per-address zone keeps one state of about 64 bytes per client address (10 MiB hold
# 160,000 addresses); it is never smaller than that.
ADDRESS_STATE_BYTES: Final = 64
MIN_ADDRESS_ZONE_MIB: Final = 10
MIB: Final = 1 << 20
# Zone names: one each for WebSocket upgrades, HTTP conference requests, and
# concurrent WebSocket and BOSH connections, all keyed by the client's address.
WEBSOCKET_ZONE: Final = "jitsi_xxl_ws"
CONFERENCE_REQUEST_ZONE: Final = "jitsi_xxl_conference_request"
CONNECTION_ZONE: Final = "jitsi_xxl_conn"
# nginx refuses a `limit_conn` of 65,536 or more (`nginx -t` fails, and the VM with it), and a
# company's viewers hold two connections each while joining: the most one address may bring.
NGINX_MAX_CONNECTION_LIMIT: Final = 65535
MAX_VIEWERS_PER_ADDRESS: Final = NGINX_MAX_CONNECTION_LIMIT // OPENS_PER_VIEWER
# Refused clients get 429, so they can tell a limit from a failure.
REFUSED_STATUS: Final = 429

# Jitsi's mod_muc_rate_limit admits 3 joins a second per room unless told otherwise; a
# node's room takes at least this many.
MIN_MUC_RATE: Final = 30
# jicofo's suggested per-bridge pace (participants a conference may add to one bridge per
# interval); a bridge takes at least this many.
MIN_BRIDGE_PER_INTERVAL: Final = 30


def power_of_two_at_least(value: int) -> int:
    """The smallest power of two not below `value` (1 for anything below 2).

    >>> power_of_two_at_least(2672), power_of_two_at_least(4096)
    (4096, 4096)
    """
    return 1 << max(0, value - 1).bit_length()


def audience_capacity(plan: Plan) -> int:
    """Endpoints the plan can hold: every node full, and the main room."""
    return plan.max_per_node * len(plan.nodes) + plan.main_participants


def peak_opens(viewers: int) -> int:
    """Connection opens in the storm's busiest second when `viewers` join."""
    return math.ceil(OPENS_PER_VIEWER * viewers * PEAK_FACTOR / STORM_SECONDS)


def listen_backlog(capacity: int) -> int:
    """The kernel's accept queue (somaxconn) and every public listener's backlog: the busiest
    second's opens wait there while nginx accepts them."""
    wanted = power_of_two_at_least(peak_opens(capacity))
    return min(MAX_LISTEN_BACKLOG, max(MIN_LISTEN_BACKLOG, wanted))


def node_backlog(max_per_node: int, public_backlog: int) -> int:
    """A visitor node's listen backlog: its share of the storm, counted like the public
    listener's, which leaves room for its viewers' retries. Never above the kernel's queue,
    which would cut it down anyway."""
    wanted = power_of_two_at_least(peak_opens(max_per_node))
    return min(public_backlog, max(MIN_NODE_BACKLOG, wanted))


def main_nofile(capacity: int) -> int:
    return max(MIN_NOFILE, MAIN_FILES_PER_VIEWER * capacity)


def node_nofile(max_per_node: int) -> int:
    """One value for every node: the nodes share one unit template."""
    return max(MIN_NOFILE, NODE_FILES_PER_VIEWER * max_per_node)


def worker_connections(capacity: int) -> int:
    return max(MIN_WORKER_CONNECTIONS, NGINX_CONNECTIONS_PER_VIEWER * capacity + SPARE_CONNECTIONS)


def nr_open(limits: tuple[int, ...]) -> int | None:
    """`fs.nr_open` when a limit is above Linux's default, else None (nothing to render).

    fs.* is the whole machine's, not a network namespace's: a container cannot set it, so it
    is rendered only where a limit needs it.
    """
    highest = max(limits)
    if highest <= DEFAULT_NR_OPEN:
        return None
    return math.ceil(highest / NR_OPEN_STEP) * NR_OPEN_STEP


def address_zone_mib(capacity: int) -> int:
    """A per-address zone that holds every viewer's address, were each on its own."""
    return max(MIN_ADDRESS_ZONE_MIB, math.ceil(capacity * ADDRESS_STATE_BYTES / MIB))


@dataclass(frozen=True)
class RequestLimit:
    """One nginx `limit_req` zone, and how the locations that use it apply it."""

    zone: str
    # requests per second one address keeps, once its burst is spent
    rate: int
    # requests one address may make at once, without delay
    burst: int


def websocket_limit(viewers_per_address: int) -> RequestLimit:
    """WebSocket upgrades: a whole company behind one address joins at once (two opens each),
    then reconnects at the storm's pace. BOSH polls are not counted here (a request each)."""
    opens = OPENS_PER_VIEWER * viewers_per_address
    return RequestLimit(zone=WEBSOCKET_ZONE, rate=math.ceil(opens / STORM_SECONDS), burst=opens)


def conference_request_limit(viewers_per_address: int) -> RequestLimit:
    """The web client's HTTP conference request (moderated promotion): one per viewer at
    once, and the client asks again about once a second while jicofo starts the room, so
    twice the storm's pace."""
    return RequestLimit(
        zone=CONFERENCE_REQUEST_ZONE,
        rate=2 * math.ceil(viewers_per_address / STORM_SECONDS),
        burst=viewers_per_address,
    )


def muc_rate(max_per_node: int) -> int:
    """Joins (and leaves) a node's room admits per second: a full node within half the
    storm. Beyond that rate the module queues the joins (up to 1000 waiting; past that it lets
    them through at once), so the room does not take them all in the same second. The end of
    the event is the same storm, of leaves."""
    return max(MIN_MUC_RATE, math.ceil(2 * max_per_node / STORM_SECONDS))


def bridge_participants_per_interval(participants_per_bridge: int) -> int:
    """jicofo's `max-bridge-participants-per-interval`.

    Bridges report their stress only every few seconds, so a burst of joins would land on
    the first bridges picked; with this cap each bridge takes at most half its share per
    interval (jicofo's default minute) and the storm spreads over the pool.
    `max-bridge-participants` stays the hard limit.
    """
    return max(MIN_BRIDGE_PER_INTERVAL, math.ceil(participants_per_bridge / 2))


@dataclass(frozen=True)
class Admission:
    """Every admission limit of the signaling VM, for one plan."""

    # kernel: net.core.somaxconn, and every public listener's backlog (nginx on 443, the
    # https server behind it)
    listen_backlog: int
    # kernel: net.ipv4.tcp_max_syn_backlog, half-open connections of the same storm
    syn_backlog: int
    # prosody network_settings.tcp_backlog: main, and each visitor node
    main_backlog: int
    node_backlog: int
    # LimitNOFILE: main prosody, and each visitor node
    main_nofile: int
    node_nofile: int
    # nginx
    worker_connections: int
    worker_rlimit_nofile: int
    upstream_zone_kib: int
    address_zone_mib: int
    websocket: RequestLimit
    conference_request: RequestLimit
    connection_zone: str
    connections_per_address: int
    refused_status: int
    # fs.nr_open, only where a limit is above Linux's default
    nr_open: int | None
    # mod_muc_rate_limit on each node's MUC
    node_muc_joins: int
    node_muc_leaves: int
    # jicofo bridge.max-bridge-participants-per-interval
    bridge_participants_per_interval: int

    @property
    def nofile_limits(self) -> tuple[int, ...]:
        """Every open-file limit a process of the VM is given."""
        return (self.main_nofile, self.node_nofile, self.worker_rlimit_nofile)


def admission(plan: Plan, viewers_per_address: int) -> Admission:
    """The limits for `plan`, with `viewers_per_address` viewers allowed behind one address."""
    capacity = audience_capacity(plan)
    backlog = listen_backlog(capacity)
    connections = worker_connections(capacity)
    main_files, node_files = main_nofile(capacity), node_nofile(plan.max_per_node)
    worker_files = connections + SPARE_FILES
    rate = muc_rate(plan.max_per_node)
    return Admission(
        listen_backlog=backlog,
        syn_backlog=2 * backlog,
        # every viewer passes through the main prosody first
        main_backlog=backlog,
        node_backlog=node_backlog(plan.max_per_node, backlog),
        main_nofile=main_files,
        node_nofile=node_files,
        worker_connections=connections,
        worker_rlimit_nofile=worker_files,
        upstream_zone_kib=UPSTREAM_ZONE_KIB_EACH * (len(plan.nodes) + 1),
        address_zone_mib=address_zone_mib(capacity),
        websocket=websocket_limit(viewers_per_address),
        conference_request=conference_request_limit(viewers_per_address),
        connection_zone=CONNECTION_ZONE,
        # a whole company's WebSockets open at once, two per viewer while it switches nodes
        connections_per_address=OPENS_PER_VIEWER * viewers_per_address,
        refused_status=REFUSED_STATUS,
        nr_open=nr_open((main_files, node_files, worker_files)),
        node_muc_joins=rate,
        node_muc_leaves=rate,
        bridge_participants_per_interval=bridge_participants_per_interval(
            plan.participants_per_bridge
        ),
    )
