"""Browser participants for the twin: what the web app's XMPP layer does in the visitors flow.

A `Browser` speaks XMPP over WebSocket (RFC 7395) like lib-jitsi-meet: it opens
``wss://DOMAIN/xmpp-websocket?room=ROOM`` (``&vnode=vN`` once redirected, the query nginx routes
by), logs in anonymously, sends the conference request to ``focus.DOMAIN``
(``modules/xmpp/moderator.js``: ``<conference xmlns="http://jitsi.org/protocol/focus">`` with the
``visitors-version`` property), follows a ``vnode`` redirect by reconnecting to ``vN.meet.jitsi``
and joining ``ROOM@conference.vN.meet.jitsi`` without a second request (``disableFocus``), or
joins the main room. In the room it chats (groupchat ``body``), raises a hand (the
``jitsi_participant_raisedHand`` presence element, which prosody's ``fmuc`` turns into a
``promotion-request`` to ``visitors.DOMAIN``), approves promotion requests as a moderator
(``json-message`` ``{"type": "visitors", "action": "promotion-response"}``), follows a
``promotion-response`` back to the main room (``customusername``), and creates and answers polls
(``json-message`` ``{"type": "polls"}`` to the polls component, ``modules/xmpp/Polls.ts``).

`Endpoint` holds where to connect: the TCP host and port (nginx's 443 in the twin), and the
public domain used for TLS SNI and the Host header. For a run without nginx, `direct_ports`
maps the main prosody and each node to its own http port, keeping the same URL query.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

import websockets

from components.load.session import FOCUS, NICK, VNODE_SUFFIX, client_tls
from tests.xmpp_clients import BIND, CLIENT, DISCO_INFO, FRAMING, MUC, MUC_USER, SASL

VISITORS_NS: Final = "jitsi:visitors"
JITMEET_NS: Final = "http://jitsi.org/jitmeet"
RAISED_HAND: Final = "jitsi_participant_raisedHand"
WAIT: Final = 15.0


@dataclass(frozen=True)
class Endpoint:
    """Where browsers connect: nginx (or prosody directly) and the public domain."""

    host: str
    port: int
    domain: str
    tls: bool = True
    # Without nginx: the http port for "" (the main prosody) and for each "vN".
    direct_ports: Mapping[str, int] = field(default_factory=dict)

    def url(
        self,
        room: str,
        vnode: str | None = None,
        username: str | None = None,
        token: str | None = None,
    ) -> str:
        query: dict[str, str] = {}
        if vnode:
            query["vnode"] = vnode
        query["room"] = room
        if username:
            query["customusername"] = username
        if token:
            query["token"] = token
        scheme = "wss" if self.tls else "ws"
        return f"{scheme}://{self.domain}:{self.port}/xmpp-websocket?{urlencode(query)}"

    def tcp_port(self, vnode: str | None) -> int:
        return self.direct_ports.get(vnode or "", self.port) if self.direct_ports else self.port


def parse(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 - our own servers on loopback


def xml_escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


class Browser:
    """One browser tab: a WebSocket XMPP session plus the room it is in."""

    _ids = itertools.count(1)

    def __init__(self, endpoint: Endpoint, room: str, name: str, token: str | None = None) -> None:
        self.endpoint = endpoint
        self.token = token  # a host's JWT: sent to the main host and in the conference request
        self.room_name = room
        self.name = name
        self.nick = uuid.uuid4().hex[:8]
        self.ws: Any = None
        self.jid = ""
        self.xmpp_domain = endpoint.domain
        self.vnode: str | None = None
        self.focus_jid = ""
        self.room_jid = ""
        self.role = ""
        self.polls_address = ""
        self.stanzas: list[ET.Element] = []
        self.promotion: ET.Element | None = None
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    # --- connection -----------------------------------------------------------------------

    async def connect(self, vnode: str | None = None, username: str | None = None) -> None:
        """Open the WebSocket (as nginx routes it) and log in anonymously."""
        await self.close()
        self.vnode = vnode
        self.xmpp_domain = f"{vnode}.{VNODE_SUFFIX}" if vnode else self.endpoint.domain
        # the web app sends the token to the main host only: a redirected host is a viewer
        url = self.endpoint.url(self.room_name, vnode, username, None if vnode else self.token)
        extra: dict[str, Any] = {"ssl": client_tls()} if self.endpoint.tls else {}
        self.ws = await asyncio.wait_for(
            websockets.connect(
                url,
                subprotocols=["xmpp"],  # type: ignore[list-item]
                host=self.endpoint.host,
                port=self.endpoint.tcp_port(vnode),
                open_timeout=WAIT,
                **extra,
            ),
            WAIT,
        )
        await self._open()
        await self._send(f'<auth xmlns="{SASL}" mechanism="ANONYMOUS"/>')
        reply = await self._recv()
        if reply.tag != f"{{{SASL}}}success":
            raise LoginRefusedError(
                f"anonymous login to {self.xmpp_domain} failed: {ET.tostring(reply)!r}"
            )
        await self._open()
        ident = f"b{next(self._ids)}"
        await self._send(
            f'<iq xmlns="{CLIENT}" type="set" id="{ident}"><bind xmlns="{BIND}"/></iq>'
        )
        while True:
            bound = await self._recv()
            if bound.get("id") == ident:
                break
        jid = bound.find(f"{{{BIND}}}bind/{{{BIND}}}jid")
        self.jid = jid.text if jid is not None and jid.text else ""
        self._reader = asyncio.ensure_future(self._read())
        info = await self.request(
            f'<iq xmlns="{CLIENT}" type="get" id="{{id}}" to="{self.xmpp_domain}">'
            f'<query xmlns="{DISCO_INFO}"/></iq>'
        )
        self.polls_address = next(
            (
                i.get("name", "")
                for i in info.iter(f"{{{DISCO_INFO}}}identity")
                if i.get("type") == "polls"
            ),
            "",
        )

    async def _open(self) -> None:
        await self._send(f'<open xmlns="{FRAMING}" to="{self.xmpp_domain}" version="1.0"/>')
        opened = await self._recv()
        if opened.tag != f"{{{FRAMING}}}open":
            raise RuntimeError(f"no stream from {self.xmpp_domain}: {ET.tostring(opened)!r}")
        await self._recv()  # stream features

    async def send(self, text: str) -> None:
        """A raw stanza, for what the web app would never send."""
        await self._send(text)

    async def _send(self, text: str) -> None:
        await self.ws.send(text)

    async def _recv(self) -> ET.Element:
        return parse(await asyncio.wait_for(self.ws.recv(), WAIT))

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed, asyncio.CancelledError):
            async for message in self.ws:
                stanza = parse(message)
                if self._is_promotion(stanza):
                    self.promotion = stanza
                async with self._changed:
                    self.stanzas.append(stanza)
                    self._changed.notify_all()

    def _is_promotion(self, stanza: ET.Element) -> bool:
        return (
            stanza.find(f"{{{VISITORS_NS}}}visitors/{{{VISITORS_NS}}}promotion-response")
            is not None
        )

    async def wait_for(
        self, predicate: Callable[[ET.Element], bool], what: str, timeout: float = WAIT
    ) -> ET.Element:
        """The first stanza received (before or after the call) that matches, or TimeoutError."""
        deadline = time.monotonic() + timeout
        async with self._changed:
            while True:
                for stanza in self.stanzas:
                    if predicate(stanza):
                        return stanza
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.name}: no {what} within {timeout} s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), left)

    async def request(self, template: str) -> ET.Element:
        """Send an IQ (``{id}`` in the template) and wait for its answer."""
        ident = f"q{next(self._ids)}"
        await self._send(template.replace("{id}", ident))
        return await self.wait_for(
            lambda s: (
                s.tag == f"{{{CLIENT}}}iq" and s.get("id") == ident and s.get("type") != "set"
            ),
            f"answer to {ident}",
        )

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5.0)
            self.ws = None
        self.stanzas = []
        self.room_jid = ""

    # --- joining ----------------------------------------------------------------------------

    async def conference_request(self, *, prefer_visitor: bool = False) -> ET.Element:
        """moderator.js: the conference IQ to focus.DOMAIN, repeated while not ready."""
        room = f"{self.room_name}@conference.{self.endpoint.domain}"
        props = (
            '<property name="visitors-version" value="1"/>'
            '<property name="rtcstatsEnabled" value="false"/>'
        )
        if prefer_visitor:
            props += '<property name="visitor" value="true"/>'
        token = f' token="{xml_escape(self.token)}"' if self.token else ""
        for _attempt in range(10):
            answer = await self.request(
                f'<iq xmlns="{CLIENT}" type="set" id="{{id}}" to="focus.{self.endpoint.domain}">'
                f'<conference xmlns="{FOCUS}" room="{room}" machine-uid="{self.nick}"{token}>'
                f"{props}</conference></iq>"
            )
            if answer.get("type") != "result":
                raise RuntimeError(
                    f"{self.name}: conference request failed: {ET.tostring(answer)!r}"
                )
            conf = answer.find(f"{{{FOCUS}}}conference")
            if conf is not None and conf.get("ready") == "true":
                return conf
            await asyncio.sleep(1.0)
        raise TimeoutError(f"{self.name}: conference never ready")

    async def join(self, *, prefer_visitor: bool = False) -> str:
        """The web app's join: request, follow a redirect, join the MUC. Returns "" or the vnode."""
        await self.connect()
        conf = await self.conference_request(prefer_visitor=prefer_visitor)
        self.focus_jid = conf.get("focusjid", "")
        vnode = conf.get("vnode")
        if vnode:
            await self.connect(vnode)
        await self.enter_room()
        return vnode or ""

    async def enter_room(self) -> ET.Element:
        """Join ROOM@conference.<current domain>; returns our own presence."""
        self.room_jid = f"{self.room_name}@conference.{self.xmpp_domain}"
        me = f"{self.room_jid}/{self.nick}"
        await self._send(
            f'<presence xmlns="{CLIENT}" to="{me}"><x xmlns="{MUC}"/>'
            f'<nick xmlns="{NICK}">{xml_escape(self.name)}</nick></presence>'
        )
        own = await self.wait_for(
            lambda s: (
                s.tag == f"{{{CLIENT}}}presence"
                and s.get("from") == me
                and (s.get("type") == "error" or "110" in status_codes(s))
            ),
            f"own presence in {self.room_jid}",
        )
        if own.get("type") == "error":
            raise JoinRefusedError(self.name, self.room_jid, own)
        item = own.find(f"{{{MUC_USER}}}x/{{{MUC_USER}}}item")
        self.role = item.get("role", "") if item is not None else ""
        return own

    async def wait_role(self, role: str, timeout: float = WAIT) -> None:
        """Wait until our own presence in the room carries ``role`` (e.g. owner's moderator)."""
        me = f"{self.room_jid}/{self.nick}"

        def has_role(s: ET.Element) -> bool:
            item = s.find(f"{{{MUC_USER}}}x/{{{MUC_USER}}}item")
            return s.get("from") == me and item is not None and item.get("role") == role

        await self.wait_for(has_role, f"role {role}", timeout)
        self.role = role

    # --- what a participant does ------------------------------------------------------------

    async def say(self, text: str) -> None:
        await self._send(
            f'<message xmlns="{CLIENT}" to="{self.room_jid}" type="groupchat">'
            f"<body>{xml_escape(text)}</body>"
            f'<nick xmlns="{NICK}">{xml_escape(self.name)}</nick></message>'
        )

    async def heard(self, text: str, timeout: float = WAIT) -> ET.Element:
        return await self.wait_for(
            lambda s: (
                s.tag == f"{{{CLIENT}}}message"
                and s.get("type") == "groupchat"
                and s.findtext(f"{{{CLIENT}}}body") == text
            ),
            f"chat {text!r}",
            timeout,
        )

    def occupants(self) -> dict[str, ET.Element]:
        """Latest presence per occupant nick seen in our room (unavailable ones removed)."""
        seen: dict[str, ET.Element] = {}
        for s in self.stanzas:
            sender = s.get("from", "")
            if s.tag != f"{{{CLIENT}}}presence" or not sender.startswith(f"{self.room_jid}/"):
                continue
            nick = sender.split("/", 1)[1]
            if s.get("type") == "unavailable":
                seen.pop(nick, None)
            elif s.get("type") != "error":
                seen[nick] = s
        return seen

    async def sees(self, nick: str, timeout: float = WAIT) -> ET.Element:
        return await self.wait_for(
            lambda s: (
                s.tag == f"{{{CLIENT}}}presence" and s.get("from") == f"{self.room_jid}/{nick}"
            ),
            f"presence of {nick}",
            timeout,
        )

    async def raise_hand(self) -> None:
        """The web app's raise hand: a timestamp in the presence (a visitor's promotion request)."""
        stamp = str(int(time.time() * 1000))
        await self._send(
            f'<presence xmlns="{CLIENT}" to="{self.room_jid}/{self.nick}">'
            f'<nick xmlns="{NICK}">{xml_escape(self.name)}</nick>'
            f"<{RAISED_HAND}>{stamp}</{RAISED_HAND}></presence>"
        )

    async def promotion_request(self, timeout: float = WAIT) -> dict[str, Any]:
        """As a moderator: the next ``promotion-request`` the visitors component sent us."""

        def is_request(s: ET.Element) -> bool:
            data = json_payload(s)
            return data.get("type") == "visitors" and data.get("action") == "promotion-request"

        return json_payload(await self.wait_for(is_request, "promotion request", timeout))

    async def approve(self, request: Mapping[str, Any]) -> None:
        """As a moderator: admit the visitor (JitsiConference.sendMessage of a JSON object)."""
        body = {
            "type": "visitors",
            "action": "promotion-response",
            "approved": True,
            "id": request["from"],
        }
        await self._send(
            f'<message xmlns="{CLIENT}" to="{self.room_jid}" type="groupchat">'
            f"{json_message(body)}</message>"
        )

    async def promoted(self, timeout: float = WAIT) -> ET.Element:
        """As a visitor: the ``promotion-response`` IQ that prosody routes to us."""
        iq = await self.wait_for(self._is_promotion, "promotion response", timeout)
        return iq

    async def follow_promotion(self, response: ET.Element) -> None:
        """Back to the main room with the granted username (no new conference request)."""
        answer = response.find(f"{{{VISITORS_NS}}}visitors/{{{VISITORS_NS}}}promotion-response")
        if answer is None or answer.get("allow") != "true":
            raise RuntimeError(f"{self.name}: promotion refused: {ET.tostring(response)!r}")
        await self.connect(None, answer.get("username") or None)
        await self.enter_room()

    async def create_poll(self, poll_id: str, question: str, answers: list[str]) -> None:
        await self._poll(
            {
                "type": "polls",
                "command": "new-poll",
                "pollId": poll_id,
                "question": question,
                "answers": [{"name": a} for a in answers],
            }
        )

    async def answer_poll(self, poll_id: str, answers: list[bool]) -> None:
        await self._poll(
            {"type": "polls", "command": "answer-poll", "pollId": poll_id, "answers": answers}
        )

    async def _poll(self, body: Mapping[str, Any]) -> None:
        if not self.polls_address:
            raise RuntimeError(f"{self.name}: no polls component on {self.xmpp_domain}")
        await self._send(
            f'<message xmlns="{CLIENT}" to="{self.polls_address}" type="chat">'
            f"{json_message(body)}</message>"
        )

    async def poll_event(self, command: str, poll_id: str, timeout: float = WAIT) -> dict[str, Any]:
        def matches(s: ET.Element) -> bool:
            data = json_payload(s)
            return (
                data.get("type") == "polls"
                and data.get("command") == command
                and (
                    data.get("pollId") == poll_id
                    or any(
                        p.get("pollId") == poll_id
                        for p in data.get("polls", [])
                        if isinstance(p, dict)
                    )
                )
            )

        return json_payload(await self.wait_for(matches, f"poll {command} {poll_id}", timeout))


class LoginRefusedError(RuntimeError):
    """The server refused the SASL login (a bad or expired token, for instance)."""


class JoinRefusedError(RuntimeError):
    """The MUC refused our join; `condition` and `jitsi` name the errors."""

    def __init__(self, who: str, room: str, presence: ET.Element) -> None:
        error = presence.find(f"{{{CLIENT}}}error")
        tags = [c.tag for c in error] if error is not None else []
        names = [t.split("}", 1)[-1] for t in tags]
        self.condition = next((n for n in names if n != "text"), "unknown")
        self.jitsi = [t.split("}", 1)[-1] for t in tags if t.startswith(f"{{{VISITORS_NS}}}")]
        super().__init__(f"{who}: join of {room} refused: {self.condition} {self.jitsi}")


def json_message(body: Mapping[str, Any]) -> str:
    """A ``json-message`` element in lib-jitsi-meet's namespace."""
    return f'<json-message xmlns="{JITMEET_NS}">{xml_escape(json.dumps(body))}</json-message>'


def status_codes(stanza: ET.Element) -> set[str]:
    return {s.get("code", "") for s in stanza.iter(f"{{{MUC_USER}}}status")}


def json_payload(stanza: ET.Element) -> dict[str, Any]:
    """The JSON of a ``json-message`` element, or {}."""
    if stanza.tag != f"{{{CLIENT}}}message":
        return {}
    body = stanza.find(f"{{{JITMEET_NS}}}json-message")
    if body is None:
        body = stanza.find(f"{{{CLIENT}}}json-message")
    if body is None or not body.text:
        return {}
    try:
        data = json.loads(body.text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
