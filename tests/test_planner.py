"""Planner properties over node counts 1..64 and a wide range of audiences."""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pyhocon import ConfigFactory

from components.model.credentials import Credentials
from components.model.planner import (
    MAX_NODES,
    SPREAD_AFTER,
    bridge_pool,
    bridge_server_id,
    bridges_needed,
    colibri_ws_route,
    default_node_count,
    network_plan,
    node_soft_limit,
    plan,
    visitor_node,
    visitor_nodes,
    visitors_per_node,
)
from components.model.ports import STANDARD_PORTS
from components.model.settings import ConfigError, parse_settings
from components.rendering.signaling_files import (
    jicofo_visitors,
    signaling_bundle,
    vnode_s2s_names,
)

node_counts = st.integers(min_value=1, max_value=MAX_NODES)


def test_upstream_port_scheme_for_single_digit_nodes() -> None:
    for i in range(1, 10):
        n = visitor_node(i)
        assert (n.c2s_port, n.s2s_port, n.http_port) == (
            int(f"5222{i}"), int(f"5269{i}"), int(f"5280{i}"),
        )  # fmt: skip
    ten = visitor_node(10)
    assert (ten.c2s_port, ten.s2s_port, ten.http_port) == (52230, 52700, 52810)
    assert ten.domain == "v10.meet.jitsi"
    assert ten.s2s_names == ("conference.v10.meet.jitsi", "v10.meet.jitsi", "polls.v10.meet.jitsi")


@given(node_counts)
def test_ports_unique_and_clear_of_standard_ports(count: int) -> None:
    nodes = visitor_nodes(count)
    ports = [p for n in nodes for p in (n.c2s_port, n.s2s_port, n.http_port)]
    assert len(ports) == len(set(ports)) == 3 * count
    assert not set(ports) & STANDARD_PORTS
    assert all(1024 < p < 65536 for p in ports)
    # the three kinds stay in disjoint ranges whatever the count
    assert max(n.c2s_port for n in nodes) < min(n.s2s_port for n in visitor_nodes(MAX_NODES))
    assert max(n.s2s_port for n in nodes) < min(n.http_port for n in visitor_nodes(MAX_NODES))


@given(st.integers(1, 1_000_000), st.integers(50, 10_000))
def test_default_node_count_leaves_headroom(audience: int, max_per_node: int) -> None:
    nodes = default_node_count(audience, max_per_node)
    assert 1 <= nodes <= MAX_NODES
    if nodes < MAX_NODES:
        # each node is planned at most two-thirds full
        assert audience * 3 <= nodes * max_per_node * 2
    assert default_node_count(audience + 1, max_per_node) >= nodes


@given(st.integers(1, 1_000_000), node_counts, st.integers(50, 10_000))
def test_visitors_per_node_spreads_within_the_cap(audience: int, nodes: int, cap: int) -> None:
    per = visitors_per_node(audience, nodes, cap)
    assert 1 <= per <= cap
    if nodes * cap >= audience:
        assert per * nodes >= audience


@given(st.integers(1, 1_000_000), node_counts, st.integers(50, 10_000))
def test_jicofo_opens_every_node_early_in_the_storm(audience: int, nodes: int, cap: int) -> None:
    per = visitors_per_node(audience, nodes, cap)
    soft = node_soft_limit(per)
    # jicofo opens the next node once every open one holds `soft`: all are open after
    # nodes x soft joins, at most SPREAD_AFTER each, never more than the expected share
    assert 1 <= soft <= min(per, SPREAD_AFTER)
    # ... and a node that would be planned to take more than SPREAD_AFTER is opened early
    if per > SPREAD_AFTER:
        assert nodes * soft < nodes * per


@given(st.integers(1, 1_000_000), st.integers(1, 500), st.integers(10, 2000))
def test_bridges_carry_every_endpoint(audience: int, main: int, per_bridge: int) -> None:
    needed = bridges_needed(audience, main, per_bridge)
    assert needed * per_bridge >= audience + main
    assert (needed - 1) * per_bridge < audience + main or needed == 1
    pool = bridge_pool(needed)
    assert pool.min <= pool.desired <= pool.max
    assert pool.desired == needed
    assert pool.max == math.ceil(needed * 1.5)


@given(
    st.integers(1, 200_000),
    st.one_of(st.none(), node_counts),
    st.integers(50, 10_000),
    st.integers(10, 2000),
)
def test_valid_plans_hold_the_audience(
    audience: int, nodes: int | None, max_per_node: int, per_bridge: int
) -> None:
    raw: dict[str, Any] = {
        "cloud": "aws",
        "domain": "meet.example.org",
        "audience": audience,
        "tls": {"mode": "self-signed"},
        "visitors": {"nodes": nodes, "max_per_node": max_per_node},
        "bridges": {"participants_per_bridge": per_bridge},
    }
    problems: tuple[str, ...] = ()
    try:
        s = parse_settings(raw)
    except ConfigError as exc:
        problems = exc.problems
    if problems:
        # the only way these inputs can be refused: too few nodes for the audience
        assert all("visitors.nodes" in line for line in problems)
        return
    p = plan(s)
    assert p.capacity.fits
    assert p.capacity.viewers == min(p.capacity.by_visitor_nodes, p.capacity.by_bridges)
    assert p.capacity.binding in {"visitor nodes", "bridges"}


cidrs = st.builds(
    lambda a, b, prefix: str(ipaddress.IPv4Network((f"10.{a}.{b}.0", prefix), strict=False)),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(16, 22),
)


@given(cidrs, st.ip_addresses(v=4))
def test_colibri_route_matches_only_the_private_network(
    cidr: str, ip: ipaddress.IPv4Address
) -> None:
    regex, target = colibri_ws_route(cidr, 9090)
    net = ipaddress.IPv4Network(cidr)
    inside = net.network_address + (int(ip) % net.num_addresses)
    for addr in (ip, inside):
        m = re.match(regex, f"/colibri-ws/{bridge_server_id(str(addr))}/conf/ep?pwd=x")
        assert bool(m) == (addr in net)
        if m:
            # nginx substitutes $1..$n; the target must rebuild the bridge's address
            url = target
            for i, value in enumerate(m.groups(), start=1):
                url = url.replace(f"${i}", value or "")
            url = url.replace("$is_args$args", "")
            assert url.startswith(f"http://{addr}:9090/colibri-ws/{bridge_server_id(str(addr))}/")


@given(cidrs)
def test_network_plan_inside_the_range(cidr: str) -> None:
    net = ipaddress.IPv4Network(cidr)
    np = network_plan(cidr)
    assert len(np.subnets) == 2
    assert all(ipaddress.IPv4Network(s).subnet_of(net) for s in np.subnets)
    assert ipaddress.IPv4Address(np.signaling_private_ip) in ipaddress.IPv4Network(np.subnets[0])


# --- the rendered files agree with each other, for any node count ---------------------------

_OVERRIDE = re.compile(r'\["([^"]+)"\] = "tcp://127\.0\.0\.1:(\d+)"')


def _lua_list(text: str, name: str) -> list[str]:
    m = re.search(rf"^{name} = \{{([^}}]*)\}}", text, re.M)
    assert m, f"{name} missing"
    return re.findall(r'"([^"]+)"', m.group(1))


def _section(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


@settings(max_examples=25, deadline=None)
@given(node_counts)
def test_rendered_names_and_ports_agree(count: int) -> None:
    s = parse_settings(
        {
            "cloud": "hetzner",
            "domain": "meet.example.org",
            "audience": 100,
            "tls": {"mode": "self-signed"},
            "visitors": {"nodes": count},
        }
    )
    p = plan(s)
    files = {f.path: f.content for f in signaling_bundle(s, p, Credentials.placeholders()).files}
    main = files["/etc/prosody/prosody.cfg.lua"]
    main_override = dict(_OVERRIDE.findall(_section(main, "s2sout_override = {", "}")))
    main_whitelist = set(re.findall(r'"([^"]+)"', _section(main, "s2s_whitelist = {", "}")))
    jicofo = ConfigFactory.parse_string(jicofo_visitors(s, p, Credentials.placeholders()))
    nginx = files["/etc/nginx/sites-available/meet.example.org.conf"]
    upstreams = dict(
        re.findall(r"upstream (v\d+) \{\s*zone upstreams \d+k;\s*server 127\.0\.0\.1:(\d+);", nginx)
    )
    vnode_map = dict(re.findall(r"^\s+(v\d+) (v\d+);$", nginx, re.M))
    assert set(jicofo["jicofo.xmpp.visitors"]) == {n.name for n in p.nodes}
    assert set(upstreams) == set(vnode_map) == {n.name for n in p.nodes}
    for n in p.nodes:
        cfg = files[f"/etc/prosody-{n.name}/prosody.cfg.lua"]
        c2s = int(re.search(r"^c2s_ports = \{ (\d+) \}", cfg, re.M).group(1))  # type: ignore[union-attr]
        s2s = int(re.search(r"^s2s_ports = \{ (\d+) \}", cfg, re.M).group(1))  # type: ignore[union-attr]
        http = int(re.search(r"^http_ports = \{ (\d+) \}", cfg, re.M).group(1))  # type: ignore[union-attr]
        assert (c2s, s2s, http) == (n.c2s_port, n.s2s_port, n.http_port)
        # main -> node: every name of the node is routed to its s2s port and whitelisted
        for name in n.s2s_names:
            assert main_override[name] == str(s2s)
            assert name in main_whitelist
        # node -> main: every main name is whitelisted and routed to the main s2s port
        node_override = dict(_OVERRIDE.findall(_section(cfg, "s2sout_override = {", "}")))
        assert set(_lua_list(cfg, "s2s_whitelist")) == set(vnode_s2s_names(s.domain))
        assert node_override == dict.fromkeys(vnode_s2s_names(s.domain), "5269")
        # jicofo logs in to the node's c2s port and domain
        j = jicofo[f"jicofo.xmpp.visitors.{n.name}"]
        assert (j["port"], j["xmpp-domain"], j["conference-service"]) == (c2s, n.domain, n.muc)
        assert j["hostname"] == "127.0.0.1"
        # nginx sends ?vnode=vN to the node's http port
        assert int(upstreams[n.name]) == http
    assert len(main_override) == 3 * count
    # the kernel keeps every node port out of its ephemeral range
    sysctl = files["/etc/sysctl.d/60-jitsi-xxl.conf"]
    ranges = re.search(r"ip_local_reserved_ports = (\S+)", sysctl).group(1)  # type: ignore[union-attr]
    reserved = {
        p for r in ranges.split(",") for p in range(int(r.split("-")[0]), int(r.split("-")[1]) + 1)
    }
    assert set(p.ports) <= reserved
    assert len(reserved) == 3 * count
