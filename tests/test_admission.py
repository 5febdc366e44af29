"""Admission limits for the join storm, over plans of 1..64 nodes and every per-node cap.

What would really break: a queue shorter than the busiest second (connections dropped at
the door), a process whose open files cannot hold its connections (accept fails with
EMFILE), a limit above what the kernel lets a process have (the service does not start),
a per-address limit that refuses a company's viewers, or a node room that admits its
viewers slower than the storm lasts.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from components.model.admission import (
    DEFAULT_NR_OPEN,
    MAX_LISTEN_BACKLOG,
    MAX_VIEWERS_PER_ADDRESS,
    MIB,
    MIN_LISTEN_BACKLOG,
    MIN_NODE_BACKLOG,
    MIN_NOFILE,
    NGINX_MAX_CONNECTION_LIMIT,
    OPENS_PER_VIEWER,
    PEAK_FACTOR,
    STORM_SECONDS,
    Admission,
    admission,
    audience_capacity,
    power_of_two_at_least,
)
from components.model.planner import MAX_NODES, Plan, plan
from components.model.settings import MAX_PER_NODE, parse_settings

MIN_VIEWERS_PER_ADDRESS = 10


def settings_for(
    nodes: int, max_per_node: int, main: int, per_bridge: int, per_address: int
) -> dict[str, Any]:
    return {
        "cloud": "aws",
        "domain": "meet.example.org",
        # an audience every node count holds: the plan's capacity decides every limit
        "audience": nodes,
        "tls": {"mode": "self-signed"},
        "visitors": {
            "nodes": nodes,
            "max_per_node": max_per_node,
            "main_participants": main,
            "viewers_per_address": per_address,
        },
        "bridges": {"participants_per_bridge": per_bridge},
    }


@st.composite
def plans(draw: st.DrawFn) -> tuple[Plan, int]:
    raw = settings_for(
        draw(st.integers(1, MAX_NODES)),
        draw(st.integers(50, MAX_PER_NODE)),
        draw(st.integers(1, 500)),
        draw(st.integers(10, 2000)),
        draw(st.integers(MIN_VIEWERS_PER_ADDRESS, MAX_VIEWERS_PER_ADDRESS)),
    )
    settings = parse_settings(raw)
    return plan(settings), settings.visitors.viewers_per_address


def limits(drawn: tuple[Plan, int]) -> tuple[Plan, int, Admission]:
    the_plan, per_address = drawn
    return the_plan, per_address, admission(the_plan, per_address)


def busiest_second(viewers: int) -> float:
    return OPENS_PER_VIEWER * viewers * PEAK_FACTOR / STORM_SECONDS


def is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


@given(plans())
def test_the_accept_queue_holds_the_busiest_second(drawn: tuple[Plan, int]) -> None:
    the_plan, _, a = limits(drawn)
    backlog = a.listen_backlog
    assert MIN_LISTEN_BACKLOG <= backlog <= MAX_LISTEN_BACKLOG
    assert is_power_of_two(backlog) or backlog == MAX_LISTEN_BACKLOG
    assert backlog >= min(MAX_LISTEN_BACKLOG, busiest_second(audience_capacity(the_plan)))
    # half-open connections of the same second wait in the SYN queue first
    assert a.syn_backlog >= 2 * backlog


@given(plans())
def test_no_listener_asks_for_more_than_the_kernel_gives(drawn: tuple[Plan, int]) -> None:
    """The kernel cuts every backlog down to somaxconn: one above it would be a value that
    only looks sized."""
    the_plan, _, a = limits(drawn)
    assert a.node_backlog <= a.main_backlog <= a.listen_backlog
    assert a.main_backlog == a.listen_backlog  # every viewer passes the main prosody first
    assert a.node_backlog >= MIN_NODE_BACKLOG
    assert is_power_of_two(a.node_backlog) or a.node_backlog in {
        MIN_NODE_BACKLOG,
        a.listen_backlog,
    }
    assert a.node_backlog >= min(a.listen_backlog, busiest_second(the_plan.max_per_node))


@given(plans())
def test_every_process_can_hold_its_connections(drawn: tuple[Plan, int]) -> None:
    the_plan, _, a = limits(drawn)
    capacity = audience_capacity(the_plan)
    # nginx: four connections per viewer, all of them possibly in one worker, each a file
    assert a.worker_connections >= 4 * capacity
    assert a.worker_rlimit_nofile > a.worker_connections
    # the main prosody: every viewer's first connection, twice over; a node: its viewers
    assert a.main_nofile >= 2 * capacity
    assert a.node_nofile >= 4 * the_plan.max_per_node
    assert min(a.main_nofile, a.node_nofile) >= MIN_NOFILE


@given(plans())
def test_nr_open_is_raised_exactly_when_a_limit_needs_it(drawn: tuple[Plan, int]) -> None:
    """A limit above fs.nr_open keeps its service from starting; fs.nr_open rendered where
    none needs it would fail in a container, which cannot set it."""
    _, _, a = limits(drawn)
    highest = max(a.nofile_limits)
    if highest <= DEFAULT_NR_OPEN:
        assert a.nr_open is None
    else:
        assert a.nr_open is not None
        assert a.nr_open >= highest
        assert a.nr_open % 1024 == 0
        assert a.nr_open - highest < 1024


@given(plans())
def test_a_company_behind_one_address_gets_in(drawn: tuple[Plan, int]) -> None:
    _, per_address, a = limits(drawn)
    ws, request = a.websocket, a.conference_request
    # all of them at once (two WebSocket opens each), then reconnecting at the storm's pace
    assert ws.burst >= OPENS_PER_VIEWER * per_address
    assert ws.rate * STORM_SECONDS >= OPENS_PER_VIEWER * per_address
    assert a.connections_per_address >= OPENS_PER_VIEWER * per_address
    # and nginx takes the limit (a limit_conn of 65,536 or more fails `nginx -t`)
    assert a.connections_per_address <= NGINX_MAX_CONNECTION_LIMIT
    # one conference request each at once, then the client's retries about once a second
    assert request.burst >= per_address
    assert request.rate * STORM_SECONDS >= 2 * per_address
    assert min(ws.rate, request.rate) >= 1
    assert len({ws.zone, request.zone, a.connection_zone}) == 3


@given(plans())
def test_the_address_zones_hold_every_viewer(drawn: tuple[Plan, int]) -> None:
    """A full zone forgets the least recently used addresses, whose counts start over: sized
    for every viewer on an address of its own, none is forgotten during the storm."""
    the_plan, _, a = limits(drawn)
    assert a.address_zone_mib * MIB // 64 >= audience_capacity(the_plan)
    assert a.address_zone_mib >= 10
    assert a.upstream_zone_kib >= 16 * (len(the_plan.nodes) + 1)


@given(plans())
def test_a_full_node_is_admitted_within_the_storm(drawn: tuple[Plan, int]) -> None:
    the_plan, _, a = limits(drawn)
    assert a.node_muc_joins * STORM_SECONDS >= 2 * the_plan.max_per_node
    assert a.node_muc_joins >= 30
    assert a.node_muc_leaves == a.node_muc_joins


@given(plans())
def test_each_bridge_takes_at_most_half_its_share_per_interval(drawn: tuple[Plan, int]) -> None:
    the_plan, _, a = limits(drawn)
    per_interval = a.bridge_participants_per_interval
    assert per_interval >= 30
    assert 2 * per_interval >= the_plan.participants_per_bridge
    assert per_interval == 30 or per_interval == math.ceil(the_plan.participants_per_bridge / 2)


@given(
    st.integers(1, MAX_NODES - 1),
    st.integers(50, MAX_PER_NODE - 1),
    st.integers(1, 500),
    st.integers(MIN_VIEWERS_PER_ADDRESS, MAX_VIEWERS_PER_ADDRESS),
)
def test_a_larger_plan_never_lowers_a_limit(
    nodes: int, max_per_node: int, main: int, per_address: int
) -> None:
    def numbers(n: int, cap: int) -> tuple[int, ...]:
        a = admission(
            plan(parse_settings(settings_for(n, cap, main, 200, per_address))), per_address
        )
        return (
            a.listen_backlog, a.syn_backlog, a.main_backlog, a.node_backlog, a.main_nofile,
            a.node_nofile, a.worker_connections, a.worker_rlimit_nofile, a.upstream_zone_kib,
            a.address_zone_mib, a.nr_open or 0, a.node_muc_joins,
        )  # fmt: skip

    base = numbers(nodes, max_per_node)
    for bigger in (numbers(nodes + 1, max_per_node), numbers(nodes, max_per_node + 1)):
        assert all(b >= a for a, b in zip(base, bigger, strict=True)), (base, bigger)


@given(st.integers(1, 1 << 24))
def test_power_of_two_at_least(value: int) -> None:
    power = power_of_two_at_least(value)
    assert is_power_of_two(power)
    assert value <= power < 2 * value


def test_the_largest_plan_raises_nr_open_and_caps_the_backlog() -> None:
    the_plan = plan(parse_settings(settings_for(MAX_NODES, MAX_PER_NODE, 500, 200, 1000)))
    a = admission(the_plan, 1000)
    assert a.listen_backlog == MAX_LISTEN_BACKLOG
    assert a.nr_open is not None
    assert a.nr_open >= a.worker_rlimit_nofile > DEFAULT_NR_OPEN


def test_the_example_sizes() -> None:
    """10,000 viewers on 8 nodes of 2,000, 30 on stage, bridges of 200, companies of 1,000."""
    a = admission(plan(parse_settings(settings_for(8, 2000, 30, 200, 1000))), 1000)
    assert (a.listen_backlog, a.main_backlog, a.node_backlog) == (4096, 4096, 512)
    assert (a.main_nofile, a.node_nofile) == (65536, 65536)
    assert (a.worker_connections, a.worker_rlimit_nofile, a.nr_open) == (65144, 66168, None)
    assert (a.websocket.rate, a.websocket.burst, a.connections_per_address) == (34, 2000, 2000)
    assert (a.conference_request.rate, a.conference_request.burst) == (34, 1000)
    assert (a.node_muc_joins, a.bridge_participants_per_interval) == (67, 100)
