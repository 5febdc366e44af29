"""Stand-in for jitsi-videobridge2 on the bridge twin: its XMPP login and its private REST API.

The videobridge (Java) does not run in the twin, so this program plays the part the rest of
the deployment sees: it reads the rendered ``/etc/jitsi/videobridge/jvb.conf`` (with the
per-bridge include the agent writes at boot), logs in to the signaling VM's main prosody over
the private network with the rendered credentials, joins the brewery MUC with the nickname
from that include, and answers the videobridge's private REST API, which the agent uses:

- ``GET /about/health``: 200 once it is in the brewery, 503 before;
- ``GET /colibri/stats``: ``participants``, ``octo_endpoints``, ``stress_level``, ``drain``,
  ``graceful_shutdown``, ``conferences`` (key names as the videobridge's stats);
- ``POST /colibri/drain/enable``: drain mode (no new endpoints);
- ``POST /colibri/shutdown`` with ``{"graceful-shutdown": true}``: graceful shutdown, which
  exits once no endpoints are left (a plain shutdown exits at once).

It carries no media. How many endpoints it "carries" is set by the tests through a control
that exists only in the stand-in, on the same loopback REST server:

- ``POST /twin/load`` with ``{"participants": N, "octo_endpoints": M, "stress_level": X,
  "leave_seconds": S, "exit_delay_seconds": D}`` (every key optional): during a graceful
  shutdown one endpoint leaves every S seconds (as participants hang up), and the process
  exits D seconds after the last one left (the real bridge also takes a moment to stop,
  during which its stats still answer).

Usage: ``python3 -m twin_standin.jvb [/etc/jitsi/videobridge/jvb.conf]``. One log line per
action goes to stderr (the journal).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from .jicofo import (
    MUC,
    REPLY_TIMEOUT,
    Link,
    XmppConnectionConfig,
    duration_seconds,
    element,
    hocon_tree,
    run_main,
    serve_http,
    until_stopped,
)

DEFAULT_CONFIG: Final = "/etc/jitsi/videobridge/jvb.conf"
# reference.conf defaults of the videobridge
DEFAULT_REST_HOST: Final = "127.0.0.1"
DEFAULT_REST_PORT: Final = 8080
DEFAULT_GRACEFUL_MAX: Final = 3600.0
# Stand-in defaults for the control: endpoints leave quickly, and the process lingers longer
# than one poll of the agent (5 s) after the last one left.
DEFAULT_LEAVE_SECONDS: Final = 1.0
DEFAULT_EXIT_DELAY: Final = 8.0

log = logging.getLogger("jvb-standin")


@dataclass(frozen=True)
class JvbConfig:
    """What the stand-in reads from jvb.conf."""

    xmpp: XmppConnectionConfig
    muc_jids: tuple[str, ...]
    nickname: str
    rest_host: str
    rest_port: int
    graceful_max: float
    relay_id: str
    region: str


def _get(tree: Mapping[str, Any], *path: str) -> Any:
    node: Any = tree
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def parse_config(videobridge: Mapping[str, Any]) -> JvbConfig:
    """The first ``apis.xmpp-client.configs`` entry, the private REST server, the bound."""
    configs = _get(videobridge, "apis", "xmpp-client", "configs") or {}
    if not isinstance(configs, Mapping) or not configs:
        raise ValueError("videobridge.apis.xmpp-client.configs is empty")
    name, c = next(iter(sorted(configs.items())))
    missing = [k for k in ("hostname", "domain", "username", "password", "muc_jids") if k not in c]
    if missing:
        raise ValueError(f"xmpp-client config {name} lacks {', '.join(missing)}")
    nickname = str(c.get("muc_nickname", ""))
    if not nickname:
        raise ValueError(f"xmpp-client config {name} has no muc_nickname (the identity include)")
    muc_jids = c["muc_jids"]
    jids = [muc_jids] if isinstance(muc_jids, str) else list(muc_jids)
    xmpp = XmppConnectionConfig(
        name=name,
        hostname=str(c["hostname"]),
        port=int(c.get("port", 5222)),
        domain=str(c["domain"]),
        xmpp_domain="",
        username=str(c["username"]),
        resource=nickname,
        password=str(c["password"]),
        disable_certificate_verification=str(c.get("disable_certificate_verification", ""))
        .strip()
        .lower()
        == "true",
    )
    private = _get(videobridge, "http-servers", "private") or {}
    return JvbConfig(
        xmpp=xmpp,
        muc_jids=tuple(str(j) for j in jids),
        nickname=nickname,
        rest_host=str(private.get("host", DEFAULT_REST_HOST)),
        rest_port=int(private.get("port", DEFAULT_REST_PORT)),
        graceful_max=duration_seconds(
            _get(videobridge, "shutdown", "graceful-shutdown-max-duration"), DEFAULT_GRACEFUL_MAX
        ),
        relay_id=str(_get(videobridge, "relay", "relay-id") or ""),
        region=str(_get(videobridge, "relay", "region") or ""),
    )


class Bridge:
    """The stand-in's state: brewery membership, load, drain and graceful shutdown."""

    def __init__(self, config: JvbConfig) -> None:
        self.config = config
        self.link = Link(config.xmpp)
        self.link.on_registered.append(self._join_breweries)
        self.in_brewery: set[str] = set()
        self.participants = 0
        self.octo_endpoints = 0
        self.stress_level = 0.0
        self.leave_seconds = DEFAULT_LEAVE_SECONDS
        self.exit_delay = DEFAULT_EXIT_DELAY
        self.drain = False
        self.graceful = False
        self.stop = asyncio.Event()
        self._leaving: asyncio.Task[None] | None = None

    # -- XMPP -------------------------------------------------------------------------------
    def _join_breweries(self) -> None:
        for jid in self.config.muc_jids:
            occupant = f"{jid}/{self.config.nickname}"
            self.link.rooms[jid.lower()] = functools.partial(self._brewery_presence, jid)
            log.info("joining the brewery %s as %s", jid, self.config.nickname)
            self.link.presence(occupant, [element("x", MUC)])

    def _brewery_presence(self, jid: str, xml: ET.Element) -> None:
        if xml.get("from", "") != f"{jid}/{self.config.nickname}":
            return
        if xml.get("type") == "error":
            log.error("joining %s failed: %s", jid, ET.tostring(xml, encoding="unicode"))
        elif xml.get("type") == "unavailable":
            self.in_brewery.discard(jid)
        elif jid not in self.in_brewery:
            self.in_brewery.add(jid)
            log.info("joined the brewery %s as %s", jid, self.config.nickname)

    @property
    def healthy(self) -> bool:
        return self.link.registered and len(self.in_brewery) == len(self.config.muc_jids)

    # -- REST -------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        endpoints = max(0, self.participants - self.octo_endpoints)
        return {
            "participants": self.participants,
            "octo_endpoints": self.octo_endpoints,
            "endpoints": endpoints,
            "conferences": 1 if self.participants else 0,
            "stress_level": self.stress_level,
            "drain": self.drain,
            "graceful_shutdown": self.graceful,
            "relay_id": self.config.relay_id,
            "region": self.config.region,
        }

    def answer(self, method: str, path: str, body: bytes) -> tuple[str, bytes]:
        routes: dict[tuple[str, str], Callable[[Mapping[str, Any]], tuple[str, bytes]]] = {
            ("GET", "/about/health"): self._health,
            ("GET", "/colibri/stats"): lambda _d: ("200 OK", json.dumps(self.stats()).encode()),
            ("POST", "/colibri/drain/enable"): self._enable_drain,
            ("POST", "/colibri/shutdown"): self._shutdown,
            ("POST", "/twin/load"): self._set_load,
        }
        route = routes.get((method, path))
        if route is None:
            return "404 Not Found", b""
        try:
            data = json.loads(body) if body else {}
        except json.JSONDecodeError:
            return "400 Bad Request", b"not JSON\n"
        if not isinstance(data, dict):
            return "400 Bad Request", b"not a JSON object\n"
        return route(data)

    def _health(self, _data: Mapping[str, Any]) -> tuple[str, bytes]:
        if self.healthy:
            return "200 OK", b""
        return "503 Service Unavailable", b"not in the brewery yet\n"

    def _enable_drain(self, _data: Mapping[str, Any]) -> tuple[str, bytes]:
        self.drain = True
        log.info("drain mode enabled")
        return "200 OK", b""

    def _set_load(self, data: Mapping[str, Any]) -> tuple[str, bytes]:
        try:
            self.participants = int(data.get("participants", self.participants))
            self.octo_endpoints = int(data.get("octo_endpoints", self.octo_endpoints))
            self.stress_level = float(data.get("stress_level", self.stress_level))
            self.leave_seconds = float(data.get("leave_seconds", self.leave_seconds))
            self.exit_delay = float(data.get("exit_delay_seconds", self.exit_delay))
        except (TypeError, ValueError) as exc:
            return "400 Bad Request", f"{exc}\n".encode()
        log.info("twin control: load %s", json.dumps(self.stats()))
        return "200 OK", json.dumps(self.stats()).encode()

    def _shutdown(self, data: Mapping[str, Any]) -> tuple[str, bytes]:
        if not data.get("graceful-shutdown"):
            log.info("shutdown requested: exiting now")
            self.stop.set()
        elif self._leaving is None:
            self.graceful = True
            log.info(
                "graceful shutdown: waiting at most %.0f s for %d endpoints to leave",
                self.config.graceful_max,
                self.participants - self.octo_endpoints,
            )
            self._leaving = asyncio.get_running_loop().create_task(self._leave_all())
        return "200 OK", b""

    async def _leave_all(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.graceful_max
        while self.participants > self.octo_endpoints and loop.time() < deadline:
            await asyncio.sleep(self.leave_seconds)
            self.participants -= 1
            log.info("an endpoint left: %d left", self.participants - self.octo_endpoints)
        log.info("graceful shutdown: no endpoints left, exiting in %.0f s", self.exit_delay)
        await asyncio.sleep(self.exit_delay)
        self.stop.set()

    async def close(self) -> None:
        for jid in self.config.muc_jids:
            if jid in self.in_brewery and self.link.registered:
                self.link.presence(f"{jid}/{self.config.nickname}", [], ptype="unavailable")
        await asyncio.wait_for(self.link.close(), REPLY_TIMEOUT)


async def run(config_path: str) -> int:
    config = parse_config(hocon_tree(config_path, "videobridge"))
    log.info(
        "config: %s@%s at %s:%d, brewery %s, nickname %s",
        config.xmpp.username,
        config.xmpp.domain,
        config.xmpp.hostname,
        config.xmpp.port,
        ",".join(config.muc_jids),
        config.nickname,
    )
    bridge = Bridge(config)
    server = await serve_http(bridge.answer, config.rest_host, config.rest_port)
    log.info("REST API on http://%s:%d", config.rest_host, config.rest_port)
    bridge.link.start()
    await until_stopped(bridge.stop)
    log.info("stopping")
    server.close()
    await bridge.close()
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(run, DEFAULT_CONFIG, argv)


if __name__ == "__main__":
    sys.exit(main())
