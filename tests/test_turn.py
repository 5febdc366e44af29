"""coturn and the TLS multiplexer on 443, read from the rendered files.

The twin (tests/test_twin.py) proves them with a real TURN client; these tests name the file
and the line in seconds. Each check is a function returning problems, so that the companion
tests can show it failing on a broken input.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.cloud.firewall import signaling_rules
from components.model.planner import MAX_NODES
from components.model.ports import (
    HTTPS_BACKEND_PORT,
    HTTPS_PORT,
    STANDARD_PORTS,
    TURN_PORT,
    TURN_RELAY_MAX_PORT,
    TURN_RELAY_MIN_PORT,
    TURNS_BACKEND_PORT,
    TURNS_PORT,
    node_ports,
)
from components.model.settings import StackFile, parse_settings
from components.model.turn import (
    ALLOCATIONS_PER_CLIENT,
    ARRIVAL_SECONDS,
    DENIED_PEERS,
    MAX_CREDENTIAL_TTL,
    TURN_ALPNS,
    credential_ttl,
    relay_limits,
)
from components.rendering.signaling_files import SIGNALING_PACKAGES, turn_view
from tests.conftest import render_stack, require_tool
from tests.test_bridge import StandIn, fake_imds

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Where a relay must never go: what each is.
INSIDE = {
    "0.0.0.0": "this host",  # noqa: S104 - an address to refuse, not one to bind
    "10.1.2.3": "private",
    "172.31.255.254": "private",
    "192.168.1.1": "private",
    "100.100.100.200": "shared address space (a cloud's metadata)",
    "127.0.0.1": "loopback",
    "127.255.255.254": "loopback",
    "169.254.169.254": "AWS's and Hetzner's metadata",
    "198.18.0.1": "benchmarking",
    "192.0.0.9": "IETF protocol assignment",
    "240.0.0.1": "reserved",
    "255.255.255.255": "broadcast",
    "::1": "loopback",
    "::ffff:10.0.0.1": "IPv4-mapped private",
    "::ffff:127.0.0.1": "IPv4-mapped loopback",
    "::ffff:169.254.169.254": "IPv4-mapped metadata",
    "64:ff9b::a00:1": "NAT64 of 10.0.0.1",
    "64:ff9b:1::a00:1": "local-use NAT64",
    "2001:0:a00:1::1": "Teredo",
    "2002:a00:1::1": "6to4 of 10.0.0.1",
    "fd00:ec2::254": "AWS's IPv6 metadata",
    "fc00::1": "unique local",
    "fe80::1": "link-local",
    "fec0::1": "site-local",
}
# Where a relay may go: public addresses (the last one is the twin's Internet host).
OUTSIDE = ("8.8.8.8", "1.1.1.1", "3.120.5.6", "2001:4860:4860::8888", "203.0.113.20")


def rendered(stack: StackFile) -> dict[str, str]:
    _, bundle = render_stack(stack.settings)
    return {f.path: f.content for f in bundle.files}


def denied_ranges(conf: str) -> list[tuple[Address, Address]]:
    ranges = []
    for value in re.findall(r"^denied-peer-ip=(\S+)$", conf, re.M):
        first, _, last = value.partition("-")
        ranges.append((ipaddress.ip_address(first), ipaddress.ip_address(last or first)))
    return ranges


def coturn_in_range(lo: Address, hi: Address, ip: Address) -> bool:
    """coturn 4.6's `ioa_addr_in_range`, quirks included: a range from the unspecified address
    is open below, addresses of two families order by family (IPv4 first), and IPv6 compares
    byte by byte."""

    def less_eq(a: Address, b: Address) -> bool:
        if a.version != b.version:
            return a.version < b.version
        if a.version == 4:
            return int(a) <= int(b)
        return all(x <= y for x, y in zip(a.packed, b.packed, strict=True))

    if int(lo) == 0 or less_eq(lo, ip):
        return int(hi) == 0 or less_eq(ip, hi)
    return False


def is_denied(conf: str, address: str) -> bool:
    """Whether coturn refuses `address` by the file's denied-peer-ip ranges."""
    ip = ipaddress.ip_address(address)
    return any(coturn_in_range(lo, hi, ip) for lo, hi in denied_ranges(conf))


# --- the checks -----------------------------------------------------------------------------


def turnserver_problems(conf: str, private_network: str) -> list[str]:
    """What is wrong with a turnserver.conf: a missing guard, quota, or denied range."""
    problems = []
    lines = set(conf.splitlines())
    for flag in ("no-tcp-relay", "no-multicast-peers", "use-auth-secret", "no-tcp", "no-cli"):
        if flag not in lines:
            problems.append(f"no {flag}")
    if "allow-loopback-peers" in conf:
        problems.append("allow-loopback-peers")
    for key in ("user-quota", "total-quota", "max-bps"):
        m = re.search(rf"^{key}=(\d+)$", conf, re.M)
        if not m or int(m[1]) <= 0:
            problems.append(f"no positive {key}")
    if f"tls-listening-port={TURNS_PORT}" not in lines:
        problems.append("coturn's TLS port is not the one nginx forwards to")
    for address, what in INSIDE.items():
        if not is_denied(conf, address):
            problems.append(f"relays to {address} ({what})")
    net = ipaddress.ip_network(private_network)
    if not (is_denied(conf, str(net[0])) and is_denied(conf, str(net[-1]))):
        problems.append(f"relays into the stack's network {private_network}")
    problems += [f"refuses the public {a}" for a in OUTSIDE if is_denied(conf, a)]
    return problems


def multiplexer_problems(nginx_conf: str, stream: str, site: str) -> list[str]:
    """What is wrong with 443: TURN clients and web clients not parted by ALPN, the client's
    address lost on the way to the https server."""
    problems = []
    if "include /etc/nginx/stream.conf;" not in nginx_conf:
        problems.append("nginx.conf does not load stream.conf")
    if "ssl_preread on;" not in stream:
        problems.append("no ssl_preread")
    if not re.search(rf"^\s*listen {HTTPS_PORT}( [^;]*)?;$", stream, re.M):
        problems.append(f"the multiplexer does not listen on {HTTPS_PORT}")
    if not re.search(r"^\s*proxy_protocol on;$", stream, re.M):
        problems.append("no PROXY header to the https server")
    web, turn = f"127.0.0.1:{HTTPS_BACKEND_PORT}", f"127.0.0.1:{TURNS_BACKEND_PORT}"
    for offer, wanted in ALPN_CASES.items():
        if route(stream, offer) != {"turn": turn, "web": web}[wanted]:
            problems.append(f"ALPN {offer!r} does not go to {wanted}")
    if not re.search(
        rf"listen 127\.0\.0\.1:{TURNS_BACKEND_PORT} proxy_protocol;\s*"
        rf"proxy_pass 127\.0\.0\.1:{TURNS_PORT};",
        stream,
    ):
        problems.append("the TURN hop does not take the PROXY header off before coturn")
    if not re.search(
        rf"listen 127\.0\.0\.1:{HTTPS_BACKEND_PORT} ssl\b[^;]*\bproxy_protocol\b[^;]*;", site
    ):
        problems.append("the https server does not read the PROXY header")
    if "real_ip_header proxy_protocol;" not in site or "set_real_ip_from 127.0.0.1;" not in site:
        problems.append("the https server does not take the client's address from it")
    if re.search(rf"^\s*listen \S*{HTTPS_PORT}\b", site, re.M):
        problems.append(f"the https server still listens on {HTTPS_PORT}")
    return problems


# ALPN offers, as clients send them, and where they must go. Browsers offer no ALPN on
# turns:; turnutils_uclient offers http/1.1 before stun.turn.
ALPN_CASES = {
    "": "turn",
    "stun.turn": "turn",
    "stun.nat-discovery": "turn",
    "http/1.1,stun.turn,stun.nat-discovery": "turn",
    "h2,http/1.1": "web",
    "http/1.1": "web",
    "h2": "web",
    "acme-tls/1": "web",
    "xstun.turn": "web",
}


def route(stream: str, offer: str) -> str:
    """Where the multiplexer's map sends `offer` (nginx's order: exact strings, then regular
    expressions in order, then the default)."""
    body = re.search(r"map \$ssl_preread_alpn_protocols \$\w+ \{(.*?)\}", stream, re.S)
    assert body, "no ALPN map"
    entries: list[tuple[str, str]] = re.findall(r'^\s*("[^"]*"|\S+)\s+(\S+);$', body[1], re.M)
    exact = {k.strip('"'): v for k, v in entries if not k.strip('"').startswith("~")}
    if offer in exact and offer != "default":
        return exact[offer]
    for key, value in entries:
        pattern = key.strip('"')
        if pattern.startswith("~") and re.search(pattern[1:], offer):
            return value
    return exact["default"]


# --- the rendered files ---------------------------------------------------------------------


def test_turnserver_conf(stack: StackFile) -> None:
    conf = rendered(stack)["/etc/turnserver.conf"]
    assert turnserver_problems(conf, stack.settings.network.cidr) == []


def test_multiplexer_on_443(stack: StackFile) -> None:
    files = rendered(stack)
    site = files[f"/etc/nginx/sites-available/{stack.settings.domain}.conf"]
    problems = multiplexer_problems(
        files["/etc/nginx/nginx.conf"], files["/etc/nginx/stream.conf"], site
    )
    assert problems == []


def test_clients_are_told_turns_on_443_with_credentials_of_hours(stack: StackFile) -> None:
    ttl = turn_view(stack.settings, render_stack(stack.settings)[0])["credential_ttl"]
    assert 3600 <= ttl < 86400
    for path, text in rendered(stack).items():
        if not path.endswith(".cfg.lua") or "external_services" not in text:
            continue
        assert f"external_service_ttl = {ttl}" in text, path
        assert "86400" not in text, path
        turns = re.findall(r'\{ type = "turns"[^}]*\}', text)
        assert turns, path
        assert all(f"port = {HTTPS_PORT}," in t for t in turns), f"{path}: {turns}"
        assert f"port = {TURNS_PORT}" not in text, f"{path} advertises coturn's own TLS port"


def test_nginx_has_its_stream_module_on_debian_13() -> None:
    """Debian 13 builds the stream module (ssl_preread) as a package of its own."""
    assert "libnginx-mod-stream" in SIGNALING_PACKAGES


def test_only_443_and_udp_3478_are_open_for_turn(stack: StackFile) -> None:
    opened = {(r.protocol, r.port) for r in signaling_rules(stack.settings)}
    assert {("tcp", HTTPS_PORT), ("udp", TURN_PORT)} <= opened
    assert ("tcp", TURNS_PORT) not in opened  # coturn's TLS port: only nginx reaches it
    assert ("tcp", TURN_PORT) not in opened


# --- the policy ------------------------------------------------------------------------------


def test_every_denied_range_is_a_network_with_a_reason() -> None:
    for net, why in DENIED_PEERS:
        ipaddress.ip_network(net, strict=True)
        assert why


def test_relay_ports_clear_of_everything_else() -> None:
    nodes = {p for i in range(1, MAX_NODES + 1) for p in node_ports(i)}
    relay = range(TURN_RELAY_MIN_PORT, TURN_RELAY_MAX_PORT + 1)
    assert not nodes & set(relay)
    assert not STANDARD_PORTS & set(relay)
    assert {HTTPS_BACKEND_PORT, TURNS_BACKEND_PORT} <= STANDARD_PORTS


@given(st.integers(min_value=1, max_value=200_000))
def test_quotas_never_refuse_a_planned_client(clients: int) -> None:
    limits = relay_limits(clients)
    ports = TURN_RELAY_MAX_PORT - TURN_RELAY_MIN_PORT + 1
    # a second's worth of the arrival shares one REST username
    assert limits.user_quota >= ALLOCATIONS_PER_CLIENT * -(-clients // ARRIVAL_SECONDS)
    assert limits.total_quota == min(ports, limits.total_quota)
    assert limits.total_quota >= min(ports, ALLOCATIONS_PER_CLIENT * clients)
    assert 0 < limits.max_bps < 10_000_000 // 8


@given(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 1, 1)),
    st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=3)),
)
def test_credentials_last_hours_not_a_day(start: datetime, length: timedelta) -> None:
    start = start.replace(tzinfo=UTC)
    ttl = timedelta(seconds=credential_ttl(start, start + length))
    assert ttl <= MAX_CREDENTIAL_TTL < timedelta(days=1)
    if length + timedelta(hours=1) <= MAX_CREDENTIAL_TTL:
        assert ttl >= length + timedelta(hours=1)  # a viewer from the start stays relayed
    # a window moved during the event (an overrun) does not change the signaling VM
    moved = timedelta(seconds=credential_ttl(start, start + length + timedelta(hours=2)))
    assert moved == ttl
    assert timedelta(hours=1) < timedelta(seconds=credential_ttl(None, None)) < timedelta(days=1)


def test_turn_alpns_are_rfc_7443s() -> None:
    assert TURN_ALPNS == ("stun.turn", "stun.nat-discovery")


# --- the bootstrap's boot-time addresses ----------------------------------------------------

HETZNER = {"cloud": "hetzner", "domain": "meet.example.org", "tls": {"mode": "self-signed"}}
AWS = {"cloud": "aws", "domain": "meet.example.org", "tls": {"mode": "self-signed"}}


def boot_function(stack_settings: Mapping[str, object], name: str) -> str:
    _, bundle = render_stack(parse_settings(stack_settings))
    script = bundle.vm.file("/usr/local/sbin/jitsi-xxl-bootstrap").content
    m = re.search(rf"^{name}\(\) \{{\n.*?^\}}\n", script, re.M | re.S)
    assert m, f"no {name} in the bootstrap"
    return m[0]


@pytest.fixture
def fake_ip(tmp_path: Path) -> Path:
    """A PATH folder for an `ip` that prints a VM's addresses (run_turn_addresses)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    return folder


def run_turn_addresses(
    functions: str, conf: Path, addresses: list[str], bin_dir: Path, imds: str = ""
) -> subprocess.CompletedProcess[str]:
    lines = "\\n".join(
        f"2: eth0    inet{'6' if ':' in a else ''} {a}/24 scope global eth0" for a in addresses
    )
    (bin_dir / "ip").write_text(f"#!/bin/sh\nprintf '{lines}\\n'\n")
    (bin_dir / "ip").chmod(0o755)
    script = (
        "set -Eeuo pipefail\nlog() { :; }\n"
        f"PRIVATE_IP=10.0.16.10\nTURN_CONF={conf}\n"
        'TURN_MARK="# jitsi-xxl: this VM\'s addresses, added at boot"\n'
        f"IMDS_URL={imds}\n{functions}\nturn_addresses\nturn_addresses\n"
    )
    return subprocess.run(
        [require_tool("bash"), "-c", script], capture_output=True, text=True, timeout=60,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, check=False,
    )  # fmt: skip


def test_hetzner_relays_from_the_public_address_and_never_to_its_own(
    tmp_path: Path, fake_ip: Path
) -> None:
    conf = tmp_path / "turnserver.conf"
    conf.write_text("realm=x\n")
    functions = boot_function(HETZNER, "turn_addresses")
    done = run_turn_addresses(
        functions, conf, ["10.0.16.10", "198.51.100.7", "2a01:4f8::1"], fake_ip
    )
    assert done.returncode == 0, done.stderr
    lines = conf.read_text().splitlines()
    assert lines.count("# jitsi-xxl: this VM's addresses, added at boot") == 1  # run twice
    assert {"denied-peer-ip=10.0.16.10", "denied-peer-ip=198.51.100.7",
            "denied-peer-ip=2a01:4f8::1"} <= set(lines)  # fmt: skip
    assert {x for x in lines if x.startswith("relay-ip=")} == {
        "relay-ip=198.51.100.7",
        "relay-ip=2a01:4f8::1",
    }
    assert not any(x.startswith("external-ip") for x in lines)


def test_aws_names_its_public_address_from_imdsv2(tmp_path: Path, fake_ip: Path) -> None:
    conf = tmp_path / "turnserver.conf"
    conf.write_text("realm=x\n")
    functions = boot_function(AWS, "imds_get") + boot_function(AWS, "turn_addresses")
    imds = StandIn(fake_imds(["InService"]))
    try:
        done = run_turn_addresses(functions, conf, ["10.0.16.10"], fake_ip, imds.url)
    finally:
        imds.close()
    assert done.returncode == 0, done.stderr
    lines = conf.read_text().splitlines()
    assert lines.count("# jitsi-xxl: this VM's addresses, added at boot") == 1
    assert {"denied-peer-ip=10.0.16.10", "denied-peer-ip=3.120.5.6",
            "relay-ip=10.0.16.10", "external-ip=3.120.5.6/10.0.16.10"} <= set(lines)  # fmt: skip
    # the token was asked for with PUT and every read carried it (fake_imds answers 401 else)
    assert "PUT" in {m for m, _, _ in imds.calls}


def test_hetzner_bootstrap_has_no_metadata_client() -> None:
    _, bundle = render_stack(parse_settings(HETZNER))
    assert "imds_get" not in bundle.vm.file("/usr/local/sbin/jitsi-xxl-bootstrap").content


# --- each check fails on a broken input -----------------------------------------------------


def test_turnserver_check_catches_what_it_guards(stack: StackFile) -> None:
    conf = rendered(stack)["/etc/turnserver.conf"]
    cidr = stack.settings.network.cidr
    assert "no no-tcp-relay" in turnserver_problems(conf.replace("no-tcp-relay\n", ""), cidr)
    assert "no positive user-quota" in turnserver_problems(
        re.sub(r"^user-quota=\d+\n", "", conf, flags=re.M), cidr
    )
    without_mapped = re.sub(r"^denied-peer-ip=::ffff:.*\n", "", conf, flags=re.M)
    assert "relays to ::ffff:10.0.0.1 (IPv4-mapped private)" in turnserver_problems(
        without_mapped, cidr
    )
    without_metadata = conf.replace("denied-peer-ip=169.254.0.0-169.254.255.255\n", "")
    assert any("169.254.169.254" in p for p in turnserver_problems(without_metadata, cidr))
    everything = conf + "denied-peer-ip=0.0.0.0-255.255.255.255\n"
    assert "refuses the public 8.8.8.8" in turnserver_problems(everything, cidr)


def test_multiplexer_check_catches_what_it_guards(stack: StackFile) -> None:
    files = rendered(stack)
    nginx = files["/etc/nginx/nginx.conf"]
    stream = files["/etc/nginx/stream.conf"]
    site = files[f"/etc/nginx/sites-available/{stack.settings.domain}.conf"]
    no_empty = re.sub(r'^\s*"" .*\n', "", stream, flags=re.M)
    assert "ALPN '' does not go to turn" in multiplexer_problems(nginx, no_empty, site)
    jitsi_style = stream.replace("default 127.0.0.1:", "default 127.0.0.1:9")
    assert "ALPN 'h2,http/1.1' does not go to web" in multiplexer_problems(nginx, jitsi_style, site)
    no_proxy = site.replace("real_ip_header proxy_protocol;", "")
    assert any("client's address" in p for p in multiplexer_problems(nginx, stream, no_proxy))
    direct = stream.replace(f"proxy_pass 127.0.0.1:{TURNS_PORT};", "proxy_pass 127.0.0.1:1;")
    assert any("PROXY header off" in p for p in multiplexer_problems(nginx, direct, site))
