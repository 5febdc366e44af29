"""A small crowd against the twin: the load generator and the storm limits kept honest.

The full measurement is `make bench-load` (bench/load.py); this runs a few hundred viewers the
same way (WebSockets from the twin's Internet through nginx's 443, the conference request, the
redirect, the node's room, pings) and asserts only correctness: every join succeeded, every
host chat reached every viewer, the audience spread over the nodes, the server processes were
measured; and nginx's per-address limit passes a whole company behind one address and refuses
a flood from one address with 429. Never a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from components.load import probes
from components.load.metrics import Summary, summarize
from components.load.run import LoadSpec, run
from components.load.session import Session, Target, client_tls
from components.model.admission import admission
from components.model.ports import HTTPS_PORT
from components.model.settings import Settings, load_stack_file
from components.twin import container, rig
from tests.conftest import ROOT, require_twin

pytestmark = pytest.mark.twin

NODES = 2
AUDIENCE = 300
PER_ADDRESS = 40  # a small company, so that its burst and a flood stay small
SITES = 10  # 30 viewers per address: within one company's burst


def load_settings() -> Settings:
    base = load_stack_file(ROOT / "stacks" / "Pulumi.hetzner-10k.yaml").settings
    visitors = base.visitors.model_copy(
        update={"nodes": NODES, "main_participants": 3, "viewers_per_address": PER_ADDRESS}
    )
    return base.model_copy(update={"visitors": visitors, "audience": AUDIENCE})


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rig.Twin]:
    require_twin()
    logs = tmp_path_factory.mktemp("twin-load")
    try:
        with rig.running(load_settings(), keep=logs) as booted:
            yield booted
    except rig.TwinError as exc:
        pytest.fail(f"the twin did not boot: {exc}\n(logs kept in {logs})")


@pytest.fixture(scope="module")
def crowd(twin: rig.Twin) -> Summary:
    spec = LoadSpec(viewers=AUDIENCE, ramp=30, hold=20, hosts=2, sites=SITES)
    return summarize(run(twin, spec, "small"))


def test_every_viewer_joins_a_node(crowd: Summary) -> None:
    assert (crowd.joined, crowd.failed, crowd.errors) == (AUDIENCE, 0, {})
    # jicofo fills a node to max-visitors-per-node (audience / nodes), then the next
    assert crowd.nodes_used == NODES


def test_every_viewer_hears_every_host_chat(crowd: Summary) -> None:
    assert crowd.chat_expected == 3 * AUDIENCE
    assert crowd.chat_delivered == crowd.chat_expected


def test_the_servers_were_measured(crowd: Summary) -> None:
    # joins cost the main prosody (conference requests), the nodes and nginx something
    for group in ("prosody", "nodes", "nginx"):
        assert crowd.cpu_per_1000_joins[group] > 0, group
    # a viewer holds memory on its node (its session and its occupant)
    assert crowd.memory_per_viewer["nodes"] > 0
    # a viewer receives its join's stanzas and little else: visitors do not see each other
    assert crowd.stanzas_per_join < 40


def test_the_probes_find_every_prosody(twin: rig.Twin) -> None:
    assert twin.box is not None
    found = probes.groups(twin.box.leader)
    assert set(found) == {"prosody", "nginx", "jicofo", *(f"v{i}" for i in range(1, NODES + 1))}


async def _upgrade(target: Target, source: str) -> tuple[Any, int]:
    """One WebSocket upgrade from `source`: (the open socket or None, the refusal status)."""
    try:
        ws = await websockets.connect(
            target.url(None, None),
            subprotocols=["xmpp"],  # type: ignore[list-item]
            host=target.address,
            port=target.port,
            ssl=client_tls(),
            server_hostname=target.domain,
            local_addr=(source, 0),
            open_timeout=30,
        )
    except websockets.InvalidStatus as exc:
        return None, exc.response.status_code
    return ws, 0


async def _burst(target: Target, source: str, count: int) -> tuple[int, list[int]]:
    """`count` upgrades at once from `source`, each closed as soon as it opened, so that only
    the request rate can refuse them; (opened, refusal statuses)."""

    async def one() -> int:
        ws, status = await _upgrade(target, source)
        if ws is not None:
            await ws.close()
        return status

    statuses = await asyncio.gather(*(one() for _ in range(count)))
    return statuses.count(0), [s for s in statuses if s]


async def _held(target: Target, source: str, first: int, more: int) -> list[int]:
    """`first` upgrades at once from `source`, kept open; then `more`, one a second (within
    the request rate), so that only the open-connection limit can refuse them: their statuses."""
    opened = await asyncio.gather(*(_upgrade(target, source) for _ in range(first)))
    later = []
    for _ in range(more):
        await asyncio.sleep(1.0)
        ws, status = await _upgrade(target, source)
        later.append(status)
        if ws is not None:
            await ws.close()
    for ws, _ in opened:
        if ws is not None:
            await ws.close()
    assert all(ws is not None for ws, _ in opened), [s for _, s in opened]
    return later


def _target(twin: rig.Twin) -> Target:
    return Target(rig.PUBLIC_IP, HTTPS_PORT, twin.settings.domain, "limits")


def _site(twin: rig.Twin, offset: int) -> str:
    """An address of the Internet the crowd did not use."""
    return twin.internet_sites(SITES + offset + 1)[-1]


def test_a_whole_company_behind_one_address_joins_at_once(twin: rig.Twin) -> None:
    target, company = _target(twin), _site(twin, 0)

    async def company_joins() -> list[str]:
        # every viewer of the company joins at the same moment: two upgrades each
        viewers = [
            Session(target, f"c{i}", f"colleague {i}", source=company) for i in range(PER_ADDRESS)
        ]
        outcomes = await asyncio.gather(*(v.join() for v in viewers), return_exceptions=True)
        for v in viewers:
            await v.close()
        return [str(o) for o in outcomes if isinstance(o, BaseException)]

    assert container.run_in_netns(twin.internet, lambda: asyncio.run(company_joins())) == []


def test_one_address_gets_its_burst_of_requests_and_no_more(twin: rig.Twin) -> None:
    limits = admission(twin.plan, PER_ADDRESS)
    burst, target, flood = limits.websocket.burst, _target(twin), _site(twin, 1)
    opened, refused = container.run_in_netns(
        twin.internet, lambda: asyncio.run(_burst(target, flood, burst + 60))
    )
    # the burst passes (and what the rate refills meanwhile); the rest is refused with 429
    assert burst <= opened < burst + 60, (opened, refused)
    assert set(refused) == {limits.refused_status}, refused


def test_one_address_holds_its_connections_and_no_more(twin: rig.Twin) -> None:
    limits = admission(twin.plan, PER_ADDRESS)
    target, office = _target(twin), _site(twin, 2)
    later = container.run_in_netns(
        twin.internet,
        lambda: asyncio.run(_held(target, office, limits.connections_per_address, 3)),
    )
    assert later == [limits.refused_status] * 3
