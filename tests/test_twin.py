"""The twin: the signaling VM booted from its exact user data, proven with real clients.

A Debian 13 container (systemd as PID 1, its own network namespaces) boots the stack's
cloud-init user data; cloud-init runs the bootstrap, which installs Debian 13's prosody,
nginx and coturn and the stand-ins for Jitsi's packages (`components/twin/`), unpacks the
rendered files and starts everything. Jitsi's real prosody plugins run in Debian 13's prosody
13.0.1; jicofo is the stand-in `components/twin/standins/jicofo.py`.

Two topologies: the 8-node example (auto promotion) and a 16-node variant (moderated). Both
keep the example's topology with test-sized thresholds (2 main participants, 2 visitors per
node), so that a handful of browsers walks the whole visitors flow.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from components.model.credentials import placeholder
from components.model.planner import Plan
from components.model.ports import HTTPS_PORT, TURN_PORT
from components.model.project import METADATA_ADDRESS
from components.model.settings import Promotion, Settings, load_stack_file
from components.model.tokens import HostToken
from components.model.xmpp import names
from components.offline.host_tokens import encode
from components.rendering.secrets_delivery import GUARD_UNIT, SECRETS_FILE
from components.rendering.signaling_files import LOOPBACK, turn_view
from components.rendering.userdata import ROOTFS_ARCHIVE
from components.twin import container, rig
from tests import turn_clients
from tests.conftest import ROOT, require_tool, require_twin
from tests.twin_clients import Browser, Endpoint
from tests.twin_scenarios import Outcome, stage_is_for_hosts, visitors_flow
from tests.xmpp_clients import c2s_close, c2s_join, c2s_login

pytestmark = pytest.mark.twin
EXTDISCO = "urn:xmpp:extdisco:2"

# Lines a healthy prosody never logs: module load failures, missing Lua libraries, refused
# s2s links.
BAD_LOG = re.compile(
    r"Unable to load module|Error loading module|module '[^']+' not found|"
    r"policy-violation|Failed to load|Traceback|attempt to (?:index|call) a nil",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Variant:
    stack: str
    nodes: int
    promotion: Promotion


VARIANTS = (
    Variant("hetzner-10k", 8, Promotion.auto),
    Variant("hetzner-10k", 16, Promotion.moderated),
)


def variant_settings(v: Variant) -> Settings:
    base = load_stack_file(ROOT / "stacks" / f"Pulumi.{v.stack}.yaml").settings
    visitors = base.visitors.model_copy(
        update={"nodes": v.nodes, "main_participants": 2, "promotion": v.promotion}
    )
    return base.model_copy(update={"visitors": visitors, "audience": 2 * v.nodes})


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: f"{v.nodes}-nodes")
def twin(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[rig.Twin]:
    require_twin()
    v: Variant = request.param
    logs = tmp_path_factory.mktemp(f"twin-{v.nodes}")
    try:
        with rig.running(variant_settings(v), keep=logs) as booted:
            yield booted
    except rig.TwinError as exc:
        pytest.fail(f"the twin did not boot: {exc}\n(logs kept in {logs})")


def endpoint(twin: rig.Twin) -> Endpoint:
    return Endpoint(host=LOOPBACK, port=twin.ports["https"], domain=twin.settings.domain)


def token(twin: rig.Twin, name: str, moderator: bool, *, secret: str = "", age: int = 0) -> str:
    """A host token as `xxl token` makes it, issued `age` seconds ago."""
    claims = HostToken(name=name, domain=twin.settings.domain, moderator=moderator, hours=1)
    return encode(claims.claims(int(time.time()) - age), secret or twin.creds.jwt_app_secret)


def flow(twin: rig.Twin) -> Outcome:
    return asyncio.run(
        visitors_flow(
            endpoint(twin),
            main_participants=twin.plan.main_participants,
            per_node=twin.plan.node_soft_limit,
            auto_promotion=twin.settings.visitors.promotion is Promotion.auto,
            tokens=lambda name, moderator: token(twin, name, moderator),
        )
    )


def prosody_logs(twin: rig.Twin, plan: Plan) -> dict[str, str]:
    dirs = {"main": "/var/log/prosody"} | {n.name: n.log_dir for n in plan.nodes}
    out = {}
    for name, d in dirs.items():
        text = ""
        for f in ("prosody.log", "prosody.err"):
            p = twin.path(f"{d}/{f}")
            text += p.read_text(errors="replace") if p.exists() else ""
        out[name] = text
    return out


def bad_lines(logs: dict[str, str]) -> list[str]:
    return [f"{name}: {line}" for name, text in logs.items() for line in text.splitlines()
            if BAD_LOG.search(line)]  # fmt: skip


# -- boot and services ----------------------------------------------------------------------


def test_ready_report_lists_every_listener(twin: rig.Twin) -> None:
    report = twin.ready_report()
    names = {c["name"] for c in report["checks"]}
    for n in twin.plan.nodes:
        assert {f"prosody-{n.name}-c2s", f"prosody-{n.name}-http"} <= names
    assert {
        "prosody-c2s-loopback",
        "prosody-c2s-private",
        "jicofo",
        "nginx-https",
        "coturn",
    } <= names
    failed = [c["name"] for c in report["checks"] if not c["ok"]]
    assert report["ready"] is True, f"not ready: {failed}"
    assert report["versions"]["prosody"].startswith("13.0.1"), report["versions"]


def test_systemd_runs_every_service(twin: rig.Twin) -> None:
    units = ["prosody", "nginx", "coturn", "jicofo",
             *(f"prosody-v@{n.index}" for n in twin.plan.nodes)]  # fmt: skip
    done = twin.run("systemctl", "is-active", *units)
    states = dict(zip(units, done.stdout.split(), strict=True))
    assert all(s == "active" for s in states.values()), states
    failed = twin.run("systemctl", "--failed", "--no-legend", "--plain").stdout.strip()
    assert failed == "", failed


def test_visitor_nodes_listen_on_loopback_only(twin: rig.Twin) -> None:
    node_ports = {p for n in twin.plan.nodes for p in (n.c2s_port, n.s2s_port, n.http_port)}
    listening = listeners(twin)
    assert node_ports <= {port for _addr, port in listening}, "a node port is not listening"
    wrong = [(a, p) for a, p in listening if p in node_ports and a != LOOPBACK]
    assert not wrong, f"visitor node listeners off loopback: {wrong}"


def listeners(twin: rig.Twin) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket, read from the container's kernel."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        text = twin.run("cat", table, check=True).stdout
        for line in text.splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state != "0A":  # LISTEN
                continue
            addr_hex, port_hex = local.split(":")
            addr = ".".join(str(int(addr_hex[i : i + 2], 16)) for i in (6, 4, 2, 0)) \
                if len(addr_hex) == 8 else "v6"  # fmt: skip
            out.add((addr, int(port_hex, 16)))
    return out


def test_files_on_the_vm_are_the_rendered_ones_with_secrets_filled(twin: rig.Twin) -> None:
    """What the bootstrap makes (the node configs from their template, every placeholder
    filled) is byte for byte what the render says the VM holds."""
    values = {placeholder(f.name): getattr(twin.creds, f.name) for f in fields(twin.creds)}
    checked = 0
    for f in twin.bundle.files:
        if not (f.path.startswith("/etc/prosody") or f.path.endswith(("jicofo.conf", ".cfg.lua"))):
            continue
        expected = f.content
        for token, value in values.items():
            expected = expected.replace(token, value)
        assert twin.path(f.path).read_text() == expected, f.path
        checked += 1
    assert checked >= len(twin.plan.nodes) + 3


def test_only_root_reaches_the_metadata_service(twin: rig.Twin) -> None:
    """Hetzner: the user data (secrets) is one request away from every process on the VM, so
    the bootstrap closes the metadata address to everyone but root, and the user data's archive
    is gone once the secrets are in place."""
    # any port: the guard goes by address (nginx holds 80 on every address of the twin)
    url = f"http://{METADATA_ADDRESS}:8999/"

    def counted() -> int:
        rules = twin.run("nft", "list", "table", "inet", "jitsi_xxl_metadata").stdout
        m = re.search(r"skuid != 0 counter packets (\d+)", rules)
        assert m is not None, rules
        return int(m[1])

    # the twin has no metadata service: play one on its address inside the VM (the output
    # hook sees local traffic too), so that root gets an answer and anyone else must not
    twin.run("ip", "addr", "add", f"{METADATA_ADDRESS}/32", "dev", "lo", check=True)
    twin.run("systemd-run", "--unit=xxl-fake-metadata", "--", "python3", "-m", "http.server",
             "--bind", METADATA_ADDRESS, "--directory", "/run", "8999", check=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while twin.run("curl", "-fsS", "-m", "2", url, check=False).returncode != 0:
            assert time.monotonic() < deadline, "root never reached the stand-in metadata service"
            time.sleep(0.5)
        before = counted()
        refused = twin.run(
            "runuser", "-u", "nobody", "--", "curl", "-sS", "-m", "5", url, check=False
        )
        assert refused.returncode == 7, refused  # curl: could not connect
        assert counted() > before, "the attempt did not meet the guard"
    finally:
        twin.run("systemctl", "stop", "xxl-fake-metadata", check=False)
        twin.run("ip", "addr", "del", f"{METADATA_ADDRESS}/32", "dev", "lo", check=False)
    unit = twin.run("systemctl", "is-enabled", GUARD_UNIT, check=False).stdout.strip()
    assert unit == "enabled"
    assert not twin.path(ROOTFS_ARCHIVE).exists()
    kept = twin.run("tar", "-tf", "/var/lib/jitsi-xxl/rootfs-without-secrets.tar").stdout
    assert SECRETS_FILE.lstrip("/") not in kept
    assert "usr/local/sbin/jitsi-xxl-bootstrap" in kept


def test_prosodyctl_check_config_is_clean(twin: rig.Twin) -> None:
    configs = ["/etc/prosody/prosody.cfg.lua", *(f"/etc/prosody-{n.name}/prosody.cfg.lua"
               for n in twin.plan.nodes)]  # fmt: skip
    for config in configs:
        done = twin.run("runuser", "-u", "prosody", "--", "prosodyctl", "--config", config,
                        "check", "config", timeout=120)  # fmt: skip
        assert done.returncode == 0, f"{config}:\n{done.stdout}{done.stderr}"


# -- the visitors flow ------------------------------------------------------------------------


def test_visitors_flow_with_real_clients(twin: rig.Twin) -> None:
    outcome = flow(twin)
    assert len(outcome.visitors) == twin.plan.node_soft_limit + 1, outcome
    bad = bad_lines(prosody_logs(twin, twin.plan))
    assert not bad, "\n".join(bad[:20])


def test_the_stage_is_for_hosts(twin: rig.Twin) -> None:
    """Anonymous joiners are viewers from the first second and never reach the main room or
    the brewery; a moderator token makes a moderator; bad tokens are refused at login."""
    outcome = asyncio.run(
        stage_is_for_hosts(
            endpoint(twin),
            lambda name, moderator: token(twin, name, moderator),
            {
                "that expired": token(twin, "late-host", True, age=2 * 3600),
                "signed with another secret": token(
                    twin, "forger", True, secret="not-the-stack-secret-0123456789"
                ),
            },
            names(twin.settings.domain)["brewery_jid"],
        )
    )
    bad = bad_lines(prosody_logs(twin, twin.plan))
    assert not bad, "\n".join(bad[:20])
    assert len(outcome.checks) >= 8, outcome


def test_jicofo_stand_in_read_the_rendered_config(twin: rig.Twin) -> None:
    """Every XMPP login of jicofo.conf (main and each node) succeeded with its credentials."""
    log = twin.run("journalctl", "-u", "jicofo", "--no-pager", "-o", "cat").stdout
    for name in ("client", *(n.name for n in twin.plan.nodes)):
        assert re.search(rf"^.*\b{name}: logged in as ", log, re.M), f"{name} never logged in"


def test_bridge_account_joins_the_brewery_over_the_private_network(twin: rig.Twin) -> None:
    """As a videobridge does: c2s to the VM's private address, the brewery MUC."""
    n = names(twin.settings.domain)

    async def join() -> None:
        client = await c2s_login(n["jvb_jid"], twin.creds.jvb_password, LOOPBACK, twin.ports["c2s"])
        try:
            await c2s_join(client, n["brewery_jid"], "jvb-twin")
        finally:
            await c2s_close(client)

    asyncio.run(join())


def test_wrong_bridge_password_is_refused(twin: rig.Twin) -> None:
    n = names(twin.settings.domain)
    with pytest.raises(PermissionError):
        asyncio.run(c2s_login(n["jvb_jid"], "not-the-password", LOOPBACK, twin.ports["c2s"]))


# -- TURN -----------------------------------------------------------------------------------
# A real TURN client (coturn's turnutils_uclient) on a host of the twin's Internet, relaying
# to turnutils_peer there; credentials from the stack's TURN secret, as prosody issues them.


@pytest.fixture(scope="module")
def echo_peer(twin: rig.Twin) -> Iterator[str]:
    """A UDP echo on the Internet host: where a relay may go."""
    peer = turn_clients.echo_peer(
        require_tool("turnutils_peer"), twin.internet, rig.INTERNET_HOST_IP
    )
    time.sleep(0.5)
    try:
        yield rig.INTERNET_HOST_IP
    finally:
        peer.terminate()
        peer.wait(10)


def turn_relay(
    twin: rig.Twin, peer: str, label: str, *, tls: bool = False
) -> turn_clients.RelayRun:
    """A relay session from the Internet host to the VM's public address: UDP on 3478, or TLS
    on 443 through nginx."""
    ttl = turn_view(twin.settings, twin.plan)["credential_ttl"]
    return turn_clients.relay(
        require_tool("turnutils_uclient"),
        twin.internet,
        server=rig.PUBLIC_IP,
        port=HTTPS_PORT if tls else TURN_PORT,
        credentials=turn_clients.rest_credentials(twin.creds.turn_secret, ttl, label),
        peer=peer,
        tls=tls,
    )


def test_turn_relays_to_a_public_peer(twin: rig.Twin, echo_peer: str) -> None:
    """The counterpart of the refusals below: the same client and credentials do relay."""
    run = turn_relay(twin, echo_peer, "public")
    assert run.echoed, run.output[-3000:]


@pytest.mark.parametrize(
    ("what", "peer"),
    [
        ("a private address", "10.0.0.99"),
        ("the VM's private address", None),
        ("loopback", "127.0.0.1"),
        ("the metadata service", "169.254.169.254"),
        # public: only the bootstrap's boot-time rule for the VM's own addresses refuses it
        ("the VM's public address", rig.PUBLIC_IP),
    ],
)
def test_turn_refuses_to_relay_inside(
    twin: rig.Twin, echo_peer: str, what: str, peer: str | None
) -> None:
    peer = peer or twin.plan.network.signaling_private_ip
    run = turn_relay(twin, peer, re.sub(r"\W+", "-", what))
    assert run.refused, f"{what} ({peer}):\n{run.output[-3000:]}"
    assert not run.echoed
    # and for the right reason: coturn names the range that refused it (loopback it refuses
    # before any range); a range of the other address family must never be the one
    log = twin.run("journalctl", "-u", "coturn", "--no-pager", "-o", "cat").stdout
    ranges = re.findall(rf"A peer IP {re.escape(peer)} denied in the range: (\S+)", log)
    assert ranges or ipaddress.ip_address(peer).is_loopback, log[-2000:]
    for denied in ranges:
        first, _, last = denied.partition("-")
        lo, hi = ipaddress.ip_address(first), ipaddress.ip_address(last or first)
        assert lo.version == hi.version == ipaddress.ip_address(peer).version, denied
        assert lo <= ipaddress.ip_address(peer) <= hi, denied  # type: ignore[operator]


def test_turn_over_443_relays_through_nginx(twin: rig.Twin, echo_peer: str) -> None:
    """TLS on 443 with a TURN client's ALPN reaches coturn through the multiplexer, and the
    relay leaves from the public address (not from loopback, where nginx connects from)."""
    run = turn_relay(twin, echo_peer, "tls443", tls=True)
    assert run.echoed, run.output[-3000:]


def test_turn_refuses_tcp_relays(twin: rig.Twin, echo_peer: str) -> None:
    """Relays carry UDP only: a TCP relay would make coturn a TCP proxy into what it reaches."""
    ttl = turn_view(twin.settings, twin.plan)["credential_ttl"]
    run = turn_clients.relay(
        require_tool("turnutils_uclient"),
        twin.internet,
        server=rig.PUBLIC_IP,
        port=HTTPS_PORT,
        credentials=turn_clients.rest_credentials(twin.creds.turn_secret, ttl, "tcp-relay"),
        peer=echo_peer,
        tls=True,
        tcp_relay=True,
    )
    assert run.transport_refused, run.output[-3000:]


def test_443_parts_turn_from_web_by_alpn(twin: rig.Twin) -> None:
    domain = twin.settings.domain

    def probe(offer: list[str] | None, *, http: bool) -> turn_clients.TlsAnswer:
        return container.run_in_netns(
            twin.internet,
            lambda: turn_clients.tls_probe(rig.PUBLIC_IP, HTTPS_PORT, domain, offer, http=http),
        )

    # browsers offer no ALPN on turns:, coturn's own client offers stun.turn
    assert probe(None, http=False).stun_binding, "no ALPN did not reach coturn"
    turn = probe(["stun.turn"], http=False)
    assert (turn.alpn, turn.stun_binding) == ("stun.turn", True), turn
    web = probe(["http/1.1"], http=True)
    assert (web.alpn, web.http_server) == ("http/1.1", "nginx"), web
    assert web.http_status.startswith("HTTP/1.1 "), web
    assert probe(["h2", "http/1.1"], http=False).alpn == "h2"  # coturn never chooses h2


def test_web_server_sees_the_client_address(twin: rig.Twin) -> None:
    """Through the multiplexer (PROXY protocol, real_ip) nginx's https server logs the
    client's own address, which its per-address limits go by."""
    missing = f"/static/twin-{os.getpid()}-{time.monotonic_ns()}.js"
    container.run_in_netns(
        twin.internet,
        lambda: turn_clients.tls_probe(
            rig.PUBLIC_IP, HTTPS_PORT, twin.settings.domain, ["http/1.1"], http=True, path=missing
        ),
    )
    log = twin.path("/var/log/nginx/error.log").read_text(errors="replace")
    lines = [line for line in log.splitlines() if missing in line]
    assert lines, f"no error logged for {missing}"
    assert all(f"client: {rig.INTERNET_HOST_IP}," in line for line in lines), lines


def test_coturn_took_every_line_and_the_boot_addresses(twin: rig.Twin) -> None:
    conf = twin.path("/etc/turnserver.conf").read_text()
    boot = conf.split("# jitsi-xxl: this VM's addresses, added at boot\n", 1)
    assert len(boot) == 2, "the bootstrap added no addresses"
    added = set(boot[1].splitlines())
    private = twin.plan.network.signaling_private_ip
    assert {f"denied-peer-ip={rig.PUBLIC_IP}", f"denied-peer-ip={private}",
            f"relay-ip={rig.PUBLIC_IP}"} <= added, added  # fmt: skip
    log = twin.run("journalctl", "-u", "coturn", "--no-pager", "-o", "cat").stdout
    # what coturn says of a line it cannot use (it starts anyway, without the line)
    bad = re.findall(r".*(?:Wrong address format|Bad configuration format|Unknown argument).*", log)
    assert not bad, bad
    assert f"Relay address to use: {rig.PUBLIC_IP}" in log, log[-3000:]


def test_prosody_hands_out_credentials_coturn_takes(twin: rig.Twin, echo_peer: str) -> None:
    """XEP-0215 as the web app asks it: turns on 443, credentials of hours; coturn relays
    with them over 443."""
    ttl = turn_view(twin.settings, twin.plan)["credential_ttl"]

    async def services() -> list[dict[str, str]]:
        browser = Browser(endpoint(twin), f"turn{os.getpid()}", "turn-probe")
        try:
            await browser.connect()
            answer = await browser.request(
                f'<iq xmlns="jabber:client" type="get" id="{{id}}" to="{twin.settings.domain}">'
                f'<services xmlns="{EXTDISCO}"/></iq>'
            )
        finally:
            await browser.close()
        return [dict(s.attrib) for s in answer.iter(f"{{{EXTDISCO}}}service")]

    offered = asyncio.run(services())
    turns = [s for s in offered if s.get("type") == "turns"]
    assert [(s.get("port"), s.get("transport")) for s in turns] == [(str(HTTPS_PORT), "tcp")]
    expires = int(turns[0]["username"].split(":")[0])
    assert abs(expires - time.time() - ttl) < 120, (expires, ttl)
    run = turn_clients.relay(
        require_tool("turnutils_uclient"),
        twin.internet,
        server=rig.PUBLIC_IP,
        port=HTTPS_PORT,
        credentials=(turns[0]["username"], turns[0]["password"]),
        peer=echo_peer,
        tls=True,
    )
    assert run.echoed, run.output[-3000:]


# -- faults ---------------------------------------------------------------------------------


def test_killed_node_is_restarted_and_serves_again(twin: rig.Twin) -> None:
    node = twin.plan.nodes[0]
    unit = f"prosody-v@{node.index}.service"
    before = twin.run(
        "systemctl", "show", "-p", "MainPID", "--value", unit, check=True
    ).stdout.strip()
    twin.run("systemctl", "kill", "--signal=SIGKILL", "--kill-whom=main", unit, check=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pid = twin.run("systemctl", "show", "-p", "MainPID", "--value", unit).stdout.strip()
        active = twin.run("systemctl", "is-active", unit).stdout.strip()
        if active == "active" and pid not in ("0", before):
            break
        time.sleep(1)
    else:
        pytest.fail(f"{unit} was not restarted after SIGKILL")
    time.sleep(3)  # the node's s2s link and jicofo's login come back
    flow(twin)


def test_bootstrap_again_changes_nothing_and_serves(twin: rig.Twin) -> None:
    watched = [f.path for f in twin.bundle.files]
    before = checksums(twin, watched)
    done = twin.run("/usr/local/sbin/jitsi-xxl-bootstrap", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert checksums(twin, watched) == before
    assert twin.ready_report()["ready"] is True
    flow(twin)


def test_second_boot_of_the_same_root_serves_again(twin: rig.Twin) -> None:
    report = twin.path("/var/lib/jitsi-xxl/ready.json")
    first = json.loads(report.read_text())["time"]
    twin.shutdown()
    # cloud-init does not run the bootstrap again on the same instance: the services come
    # back through systemd alone; the report stays the first boot's.
    twin.boot(wait_for="/var/lib/jitsi-xxl/ready.json")
    wait_active(
        twin, ["prosody", "nginx", "jicofo", *(f"prosody-v@{n.index}" for n in twin.plan.nodes)]
    )
    assert json.loads(report.read_text())["time"] == first
    health_deadline = time.monotonic() + 60
    while twin.run("curl", "-fs", "http://127.0.0.1:8888/about/health").returncode != 0:
        assert time.monotonic() < health_deadline, "jicofo not healthy after the second boot"
        time.sleep(1)
    outcome = flow(twin)
    assert outcome.visitors


def wait_active(twin: rig.Twin, units: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = twin.run("systemctl", "is-active", *units).stdout.split()
        if all(s == "active" for s in states):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"not active after boot: {dict(zip(units, states, strict=False))}")
        time.sleep(1)


def checksums(twin: rig.Twin, paths: list[str]) -> dict[str, str]:
    done = twin.run("sha256sum", *paths, check=True)
    return {line.split()[1]: line.split()[0] for line in done.stdout.splitlines()}


def test_up_local_boots_prints_how_to_connect_and_leaves_nothing_on_ctrl_c(
    tmp_path: Path,
) -> None:
    """`xxl up-local` as an operator runs it: boot, how to connect, Ctrl-C, nothing left."""
    require_twin()
    xxl = ROOT / ".venv" / "bin" / "xxl"
    stack = ROOT / "stacks" / "Pulumi.trial.yaml"
    out = tmp_path / "up-local.out"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [str(xxl), "up-local", "--stack", str(stack)], stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + rig.BOOT_TIMEOUT
        while "Ctrl-C stops" not in out.read_text():
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(1)
        assert re.search(r"https://127\.0\.0\.1:\d+/", out.read_text()), out.read_text()
        # what this run made: namespaces named after its process, one container
        ours = [n for n in netns_names() if n.startswith(f"xxl{proc.pid % 100000}")]
        assert ours, "the twin runs in no network namespace of its own"
        nspawn = [p for p in children(proc.pid) if "systemd-nspawn" in cmdline(p)]
        assert len(nspawn) == 1, nspawn
        root = re.search(r"--directory=(\S+)", cmdline(nspawn[0]))
        assert root, cmdline(nspawn[0])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(120) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "no container, mount or network namespace left" in out.read_text()
    assert not set(ours) & set(netns_names())
    assert root[1] not in Path("/proc/mounts").read_text()
    assert not Path(f"/proc/{nspawn[0]}").exists()


def netns_names() -> list[str]:
    netns = Path("/run/netns")
    return sorted(p.name for p in netns.iterdir()) if netns.is_dir() else []


def children(pid: int) -> list[int]:
    """Every descendant of `pid`."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            kids = [int(k) for k in (task / "children").read_text().split()]
            out += kids
            todo += kids
    return out


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
