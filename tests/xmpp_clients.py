"""Real XMPP clients for the live tests.

`WsClient` speaks XMPP over WebSocket (RFC 7395) the way the web app does, through nginx;
slixmpp (`c2s_login`) speaks plain c2s with STARTTLS and SCRAM, the way jicofo and the
videobridge log in.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
import xml.etree.ElementTree as ET
from typing import Any, Final

import slixmpp
import websockets

FRAMING: Final = "urn:ietf:params:xml:ns:xmpp-framing"
SASL: Final = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND: Final = "urn:ietf:params:xml:ns:xmpp-bind"
CLIENT: Final = "jabber:client"
STANZAS: Final = "urn:ietf:params:xml:ns:xmpp-stanzas"
MUC: Final = "http://jabber.org/protocol/muc"
MUC_USER: Final = "http://jabber.org/protocol/muc#user"
DISCO_INFO: Final = "http://jabber.org/protocol/disco#info"
TIMEOUT: Final = 10.0


def insecure_tls() -> ssl.SSLContext:
    """The local run's certificates are self-signed."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class WsClient:
    """An anonymous XMPP session over WebSocket."""

    _ids = itertools.count(1)

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.stream_from = ""
        self.jid = ""

    @classmethod
    async def login(cls, url: str, domain: str) -> WsClient:
        ws = await websockets.connect(url, subprotocols=["xmpp"], ssl=insecure_tls())  # type: ignore[list-item]
        client = cls(ws)
        client.stream_from = await client._open(domain)
        await client.send(f'<auth xmlns="{SASL}" mechanism="ANONYMOUS"/>')
        reply = await client.recv()
        if reply.tag != f"{{{SASL}}}success":
            raise RuntimeError(f"anonymous login to {domain} failed: {ET.tostring(reply)!r}")
        await client._open(domain)
        bound = await client.request(
            f'<iq xmlns="{CLIENT}" type="set" id="{{id}}"><bind xmlns="{BIND}"/></iq>'
        )
        jid = bound.find(f"{{{BIND}}}bind/{{{BIND}}}jid")
        client.jid = jid.text if jid is not None and jid.text else ""
        return client

    async def _open(self, domain: str) -> str:
        await self.send(f'<open xmlns="{FRAMING}" to="{domain}" version="1.0"/>')
        opened = await self.recv()
        if opened.tag != f"{{{FRAMING}}}open":
            raise RuntimeError(f"no stream from {domain}: {ET.tostring(opened)!r}")
        await self.recv()  # stream features
        return opened.get("from", "")

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    async def recv(self) -> ET.Element:
        message = await asyncio.wait_for(self.ws.recv(), TIMEOUT)
        return ET.fromstring(message)  # noqa: S314 - our own servers on loopback

    async def request(self, template: str) -> ET.Element:
        """Send an IQ (`{id}` in the template) and wait for its answer."""
        ident = f"q{next(self._ids)}"
        await self.send(template.replace("{id}", ident))
        while True:
            stanza = await self.recv()
            if stanza.tag == f"{{{CLIENT}}}iq" and stanza.get("id") == ident:
                return stanza

    async def disco(self, target: str) -> ET.Element:
        return await self.request(
            f'<iq xmlns="{CLIENT}" type="get" id="{{id}}" to="{target}">'
            f'<query xmlns="{DISCO_INFO}"/></iq>'
        )

    async def join(self, room: str, nick: str) -> ET.Element:
        """Join a MUC room; returns our own presence (status 110) or an error presence."""
        await self.send(
            f'<presence xmlns="{CLIENT}" to="{room}/{nick}"><x xmlns="{MUC}"/></presence>'
        )
        while True:
            stanza = await self.recv()
            if stanza.tag != f"{{{CLIENT}}}presence" or stanza.get("from") != f"{room}/{nick}":
                continue
            if stanza.get("type") == "error":
                return stanza
            codes = {s.get("code") for s in stanza.iter(f"{{{MUC_USER}}}status")}
            if "110" in codes:
                return stanza

    async def close(self) -> None:
        await self.ws.close()


def error_condition(stanza: ET.Element) -> str | None:
    """The defined condition of an error stanza, or None if it is not an error."""
    if stanza.get("type") != "error":
        return None
    error = stanza.find(f"{{{CLIENT}}}error")
    if error is None:
        return "unknown"
    return next(
        (child.tag.split("}")[1] for child in error if child.tag.startswith(f"{{{STANZAS}}}")),
        "unknown",
    )


async def c2s_login(jid: str, password: str, host: str, port: int) -> slixmpp.ClientXMPP:
    """Log in over c2s (STARTTLS, SCRAM) like jicofo or the videobridge; raises on failure."""
    client = slixmpp.ClientXMPP(jid, password)
    client.ssl_context = insecure_tls()
    client.register_plugin("xep_0045")
    started: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    client.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    client.add_event_handler(
        "failed_auth", lambda _: started.done() or started.set_exception(PermissionError(jid))
    )
    client.connect(host, port)
    await asyncio.wait_for(started, TIMEOUT)
    return client


async def c2s_join(client: slixmpp.ClientXMPP, room: str, nick: str) -> None:
    await client.plugin["xep_0045"].join_muc_wait(room, nick, maxstanzas=0, timeout=TIMEOUT)


async def c2s_close(client: slixmpp.ClientXMPP) -> None:
    client.disconnect()
    await asyncio.sleep(0)
