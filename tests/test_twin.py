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
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.model.planner import Plan
from components.model.settings import Promotion, Settings, load_stack_file
from components.rendering.signaling_files import LOOPBACK, names
from components.twin import rig
from tests.conftest import ROOT, require_tool
from tests.twin_clients import Endpoint
from tests.twin_scenarios import Outcome, visitors_flow
from tests.xmpp_clients import c2s_close, c2s_join, c2s_login

pytestmark = pytest.mark.twin

HOST_TOOLS = ("debootstrap", "systemd-nspawn", "nsenter", "ip", "dpkg-scanpackages",
              "apt-ftparchive", "mount", "chroot")  # fmt: skip
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


def require_twin() -> None:
    """Root, the host tools and Jitsi's plugins; in CI each missing piece fails."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the twin needs root (systemd-nspawn, network namespaces)")
        pytest.skip("the twin needs root (systemd-nspawn, network namespaces)")
    for tool in HOST_TOOLS:
        require_tool(tool)
    if rig.jitsi_source() is None:
        if os.environ.get("CI"):
            pytest.fail(rig.HOW_TO_PROVIDE)
        pytest.skip(rig.HOW_TO_PROVIDE)


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


def flow(twin: rig.Twin) -> Outcome:
    return asyncio.run(
        visitors_flow(
            endpoint(twin),
            main_participants=twin.plan.main_participants,
            per_node=twin.plan.visitors_per_node,
            auto_promotion=twin.settings.visitors.promotion is Promotion.auto,
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
    assert len(outcome.visitors) == twin.plan.visitors_per_node + 1, outcome
    bad = bad_lines(prosody_logs(twin, twin.plan))
    assert not bad, "\n".join(bad[:20])


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
