"""Live proof on loopback: the rendered signaling topology really runs.

Real: Debian's prosody (one main, one per visitor node) and nginx, started from the files
the renderer makes for a local run (no edits of its output), accounts made with prosodyctl,
real clients (XMPP over WebSocket through nginx, as the web app; c2s with STARTTLS and SCRAM
through slixmpp, as jicofo and the videobridge).

Stand-ins (components/local_plugins/, loaded only by local runs): Jitsi's prosody modules
are in no package registry. `mod_auth_jitsi-anonymous` is plain SASL ANONYMOUS;
`mod_s2sout_override` reads the same `s2sout_override` option but maps the destinations
through prosody's resolver, because Debian's prosody 0.12.3 lacks the `s2sout-pre-connect`
hook Jitsi's module uses; `mod_s2s_whitelist` enforces the same `s2s_whitelist` option. Every
other Jitsi module (fmuc, visitors, muc_* and the rest) is not loaded, and the test run
reports them.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyhocon import ConfigFactory  # type: ignore[import-untyped]

from components.bridge_agent import Identity, identity_hocon
from components.local_run import Topology, listeners, modules_not_loaded, running, start_prosody
from components.settings import Settings, load_stack_file, parse_settings
from components.signaling_files import main_s2s_routes, names, vnode_s2s_names
from tests.conftest import ROOT, require_tool
from tests.xmpp_clients import (
    WsClient,
    c2s_close,
    c2s_join,
    c2s_login,
    error_condition,
)

pytestmark = pytest.mark.live

STAND_INS = ("auth_jitsi-anonymous", "s2sout_override", "s2s_whitelist")
STARTED_PIDS: list[int] = []  # checked after the topologies are gone


def eight_nodes() -> Settings:
    return load_stack_file(ROOT / "stacks" / "Pulumi.hetzner-10k.yaml").settings


def sixteen_nodes() -> Settings:
    return parse_settings(
        {
            "cloud": "hetzner",
            "domain": "sixteen.example.org",
            "audience": 20000,
            "tls": {"mode": "self-signed"},
            "visitors": {"nodes": 16},
        }
    )


@pytest.fixture(scope="module", params=[eight_nodes, sixteen_nodes], ids=["8-nodes", "16-nodes"])
def topo(request: pytest.FixtureRequest) -> Iterator[Topology]:
    for tool in ("prosody", "prosodyctl", "nginx", "openssl", "setpriv"):
        require_tool(tool)
    with running(request.param()) as started:
        STARTED_PIDS.extend(p.pid for p in started.processes.values())
        yield started
    for pid in STARTED_PIDS:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def jicofo_nodes(topo: Topology) -> Any:
    conf = ConfigFactory.parse_string(topo.file("/etc/jitsi/jicofo/jicofo.conf"))
    return conf["jicofo.xmpp.visitors"]


async def _room_on_node(topo: Topology, node: Any, room: str) -> Any:
    """jicofo's part: the focus account logs in to the node and creates the room."""
    creds = jicofo_nodes(topo)[node.name]
    focus = await c2s_login(
        f"focus@{creds['domain']}", creds["password"], creds["hostname"], creds["port"]
    )
    await c2s_join(focus, f"{room}@{creds['conference-service']}", "focus")
    return focus


def test_stand_ins_loaded_and_the_rest_reported(
    topo: Topology, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = modules_not_loaded(topo)
    assert not set(STAND_INS) & set(missing)
    with capsys.disabled():
        print(f"\n[live] Jitsi modules not on this machine, not loaded: {', '.join(missing)}")


def test_websocket_reaches_each_node_and_its_rooms(topo: Topology) -> None:
    async def scenario() -> None:
        for node in topo.plan.nodes:
            focus = await _room_on_node(topo, node, "stage")
            viewer = await WsClient.login(f"{topo.websocket_url}?vnode={node.name}", node.domain)
            assert viewer.stream_from == node.domain
            assert viewer.jid.split("/")[0].endswith("@" + node.domain)
            joined = await viewer.join(f"stage@{node.muc}", "viewer")
            assert error_condition(joined) is None, f"{node.name}: join failed"
            await viewer.close()
            await c2s_close(focus)
        main = await WsClient.login(topo.websocket_url, topo.settings.domain)
        assert main.stream_from == topo.settings.domain
        await main.close()

    run(scenario())


def test_focus_logs_in_to_every_node_with_jicofo_conf(topo: Topology) -> None:
    nodes = jicofo_nodes(topo)
    assert set(nodes) == {n.name for n in topo.plan.nodes}

    async def scenario() -> None:
        for node in topo.plan.nodes:
            creds = nodes[node.name]
            assert creds["port"] == node.c2s_port
            client = await c2s_login(
                f"focus@{creds['domain']}", creds["password"], creds["hostname"], creds["port"]
            )
            await c2s_close(client)
        with pytest.raises(PermissionError):
            await c2s_login(
                "focus@auth.meet.jitsi", "wrong", "127.0.0.1", topo.plan.nodes[0].c2s_port
            )

    run(scenario())


def _reached(reply: Any, target: str) -> bool:
    """An answer from the remote side: a result, or an error that is not a routing failure."""
    return reply.get("from") == target and error_condition(reply) not in {
        "remote-server-not-found",
        "remote-server-timeout",
        "not-allowed",
    }


def test_s2s_both_ways_and_the_whitelist(topo: Topology) -> None:
    async def scenario() -> None:
        main = await WsClient.login(topo.websocket_url, topo.settings.domain)
        for name in main_s2s_routes(topo.plan):  # main -> every name of every node
            assert _reached(await main.disco(name), name), f"main -> {name}"
        refused = await main.disco("outside.example.net")
        assert error_condition(refused) == "not-allowed"
        await main.close()
        for node in topo.plan.nodes:  # every node -> every main name
            client = await WsClient.login(f"{topo.websocket_url}?vnode={node.name}", node.domain)
            for name in vnode_s2s_names(topo.settings.domain):
                assert _reached(await client.disco(name), name), f"{node.name} -> {name}"
            assert error_condition(await client.disco("outside.example.net")) == "not-allowed"
            await client.close()

    run(scenario())


def test_bridge_joins_the_brewery_with_jvb_conf(topo: Topology, tmp_path: Path) -> None:
    (tmp_path / "jvb.conf").write_text(topo.bridge.file("/etc/jitsi/videobridge/jvb.conf").content)
    identity = Identity("i-0live", "127.0.0.1", None, "local", False)
    (tmp_path / "xxl-identity.conf").write_text(identity_hocon(identity, websockets=False))
    client_conf = ConfigFactory.parse_file(str(tmp_path / "jvb.conf"))[
        "videobridge.apis.xmpp-client.configs.xxl"
    ]
    assert client_conf["hostname"] == "127.0.0.1"

    async def scenario() -> None:
        jvb = await c2s_login(
            f"{client_conf['username']}@{client_conf['domain']}",
            client_conf["password"],
            client_conf["hostname"],
            5222,
        )
        await c2s_join(jvb, client_conf["muc_jids"], client_conf["muc_nickname"])
        await c2s_close(jvb)

    run(scenario())
    assert client_conf["muc_jids"] == names(topo.settings.domain)["brewery_jid"]


def test_a_killed_node_does_not_take_the_others_down(topo: Topology) -> None:
    victim, other = topo.plan.nodes[0], topo.plan.nodes[-1]
    process = topo.processes[victim.name]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    async def serves(node: Any) -> bool:
        try:
            client = await WsClient.login(f"{topo.websocket_url}?vnode={node.name}", node.domain)
        except Exception:
            return False
        await client.close()
        return client.stream_from == node.domain

    assert run(serves(other))
    assert not run(serves(victim))
    start_prosody(topo, victim.name)  # what systemd's Restart=on-failure does on the VM
    STARTED_PIDS.append(topo.processes[victim.name].pid)
    assert run(serves(victim))


def _listening(port: int) -> set[str]:
    """Local addresses listening on `port`, from the kernel's socket tables."""
    found = set()
    for table, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if family == 4:
                    raw = bytes.fromhex(address)[::-1]
                    found.add(".".join(str(b) for b in raw))
                else:
                    found.add(f"v6:{address}")
    return found


def test_every_listener_is_on_loopback(topo: Topology) -> None:
    for item in listeners(topo.plan, topo.https_port):
        assert _listening(item.port) == {"127.0.0.1"}, f"{item.owner} {item.kind} {item.port}"
