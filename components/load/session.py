"""One participant's XMPP over WebSocket session as the web app opens it, lean for thousands.

The steps follow lib-jitsi-meet's XMPP layer in the visitors flow: a WebSocket to
``/xmpp-websocket?room=ROOM`` (``&vnode=vN`` once redirected: the query nginx routes by), an
anonymous login (a host's token rides in the URL query), resource binding, stream management
with resumption (``XmppConnection._maybeEnableStreamResume``), a disco#info of the domain, the
conference request to ``focus.DOMAIN``, and the MUC join with a presence carrying what the web
app puts in it. Once in the room the session pings its server (the ping plugin) and answers
stream-management acknowledgement requests.

Each WebSocket message is one stanza (RFC 7395), so a session counts what it receives without
parsing it; it parses only what the join needs and the groupchat bodies it times.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import re
import ssl
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

import websockets

FRAMING: Final = "urn:ietf:params:xml:ns:xmpp-framing"
SASL: Final = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND: Final = "urn:ietf:params:xml:ns:xmpp-bind"
CLIENT: Final = "jabber:client"
MUC: Final = "http://jabber.org/protocol/muc"
MUC_USER: Final = "http://jabber.org/protocol/muc#user"
DISCO_INFO: Final = "http://jabber.org/protocol/disco#info"
SM: Final = "urn:xmpp:sm:3"
PING: Final = "urn:xmpp:ping"
FOCUS: Final = "http://jitsi.org/protocol/focus"
NICK: Final = "http://jabber.org/protocol/nick"
VNODE_SUFFIX: Final = "meet.jitsi"  # a visitor node's XMPP domain is vN.meet.jitsi
STEP_TIMEOUT: Final = 30.0
CONFERENCE_RETRIES: Final = 30  # the web app asks again every second while focus is not ready

_BODY: Final = re.compile(r"<body>([^<]*)</body>")
_SM_ELEMENT: Final = re.compile(r"^<(r|a|enabled|resumed|failed)\b[^>]*xmlns=['\"]urn:xmpp:sm:3")


@functools.cache
def client_tls() -> ssl.SSLContext:
    """A browser's TLS for a WebSocket: it offers HTTP/1.1 by ALPN, which nginx on 443 sends
    to the web server (a client offering none goes to coturn, as browsers on turns: do). The
    twin's certificate is self-signed. One context for every session."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


@dataclass(frozen=True)
class Target:
    """Where sessions go: the VM's public address and port, its domain, and the room."""

    address: str
    port: int
    domain: str
    room: str

    def url(self, vnode: str | None, token: str | None) -> str:
        query = {"vnode": vnode} if vnode else {}
        query["room"] = self.room
        if token:
            query["token"] = token
        return f"wss://{self.domain}:{self.port}/xmpp-websocket?{urlencode(query)}"


class JoinError(Exception):
    """A step of the join failed; `step` names it (connect, login, conference, enter, ...)."""

    def __init__(self, step: str, reason: str) -> None:
        self.step = step
        super().__init__(f"{step}: {reason}")


def _parse(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 - our own twin's servers


def _has(stanza: str, attribute: str) -> bool:
    """`attribute` (written name='value') in the stanza, whichever quotes the server used."""
    return attribute in stanza or attribute.replace("'", '"') in stanza


def presence_extensions(nick: str, name: str) -> str:
    """What the web app puts in its MUC presence (a viewer's muted audio and video)."""
    return (
        f'<nick xmlns="{NICK}">{name}</nick>'
        f"<stats_id>{nick}</stats_id>"
        '<c xmlns="http://jabber.org/protocol/caps" hash="sha-1" '
        'node="https://jitsi.org/jitsi-meet" ver="cvjWXufsg4xT62Ec2mlATkFZ9lk="/>'
        "<jitsi_participant_codecList>vp9,vp8,h264,av1</jitsi_participant_codecList>"
        "<audiomuted>true</audiomuted><videomuted>true</videomuted>"
    )


@dataclass
class Session:
    """One WebSocket XMPP session of a participant; `stanzas` counts what it received."""

    target: Target
    nick: str
    name: str
    source: str | None = None  # the local address to connect from (a site behind one NAT)
    token: str | None = None
    stanzas: int = 0
    chats: dict[str, float] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)
    vnode: str = ""
    jid: str = ""
    _ws: Any = None
    _reader: asyncio.Task[None] | None = None
    _entered: bool = False
    _handled: int = 0  # stream management's count of stanzas handled
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def xmpp_domain(self) -> str:
        return f"{self.vnode}.{VNODE_SUFFIX}" if self.vnode else self.target.domain

    @property
    def room_jid(self) -> str:
        return f"{self.target.room}@conference.{self.xmpp_domain}"

    # -- the join, step by step (nothing else reads the socket meanwhile) ---------------------
    async def open(self, vnode: str = "") -> None:
        """WebSocket, anonymous login, bind, stream management and disco, as the web app does."""
        await self.close()
        self.vnode = vnode
        token = None if vnode else self.token  # a redirected viewer has no token on the node
        where = vnode or "main"
        try:
            self._ws = await asyncio.wait_for(
                websockets.connect(
                    self.target.url(vnode or None, token),
                    subprotocols=["xmpp"],  # type: ignore[list-item]
                    host=self.target.address,
                    port=self.target.port,
                    ssl=client_tls(),
                    server_hostname=self.target.domain,
                    local_addr=(self.source, 0) if self.source else None,
                    compression=None,
                    ping_interval=None,
                    open_timeout=STEP_TIMEOUT,
                    max_size=2**20,
                ),
                STEP_TIMEOUT,
            )
        except websockets.InvalidStatus as exc:
            raise JoinError(f"connect {where}", f"HTTP {exc.response.status_code}") from None
        except (OSError, TimeoutError, websockets.WebSocketException) as exc:
            raise JoinError(f"connect {where}", type(exc).__name__ + f" {exc}") from None
        await self._stream()
        await self._send(f'<auth xmlns="{SASL}" mechanism="ANONYMOUS"/>')
        reply = await self._recv("login")
        if not reply.startswith("<success"):
            raise JoinError("login", reply[:200])
        await self._stream()
        bound = await self._iq(f'<bind xmlns="{BIND}"/>', "set", None, "bind")
        jid = _parse(bound).findtext(f"{{{BIND}}}bind/{{{BIND}}}jid")
        self.jid = jid or ""
        await self._send(f'<enable xmlns="{SM}" resume="true"/>')
        await self._until(lambda s: s.startswith("<enabled") or s.startswith("<failed"), "sm")
        self._handled = 0  # the count starts at <enabled/> (XEP-0198)
        await self._iq(f'<query xmlns="{DISCO_INFO}"/>', "get", self.xmpp_domain, "disco")

    async def conference(self) -> str:
        """The conference request to focus; the visitor node it redirects to, or ""."""
        room = f"{self.target.room}@conference.{self.target.domain}"
        token = f' token="{self.token}"' if self.token else ""
        body = (
            f'<conference xmlns="{FOCUS}" room="{room}" machine-uid="{self.nick}"{token}>'
            '<property name="visitors-version" value="1"/></conference>'
        )
        for _attempt in range(CONFERENCE_RETRIES):
            answer = _parse(
                await self._iq(body, "set", f"focus.{self.target.domain}", "conference")
            )
            conf = answer.find(f"{{{FOCUS}}}conference")
            if conf is not None and conf.get("ready") == "true":
                return conf.get("vnode") or ""
            await asyncio.sleep(1.0)
        raise JoinError("conference", "focus never ready")

    async def enter(self) -> None:
        """Join the room of the current domain; returns once our own presence (110) arrives."""
        me = f"{self.room_jid}/{self.nick}"
        await self._send(
            f'<presence xmlns="{CLIENT}" to="{me}"><x xmlns="{MUC}"/>'
            f"{presence_extensions(self.nick, self.name)}</presence>"
        )
        own = await self._until(
            lambda s: s.startswith("<presence") and _has(s, f"from='{me}'")
            and (_has(s, "type='error'") or _has(s, "code='110'")),
            "enter",
        )  # fmt: skip
        if _has(own, "type='error'"):
            raise JoinError("enter", own[:300])
        self._entered = True

    async def join(self) -> None:
        """The web app's whole join: main host, conference request, redirect, the room.
        `steps` records how long each took."""
        mark = time.monotonic()

        def lap(step: str) -> None:
            nonlocal mark
            now = time.monotonic()
            self.steps[step] = now - mark
            mark = now

        await self.open()
        lap("main")
        vnode = await self.conference()
        lap("conference")
        if vnode:
            await self.open(vnode)
            lap("node")
        await self.enter()
        lap("enter")

    # -- in the room ------------------------------------------------------------------------
    def listen(self) -> None:
        """From now on a reader counts stanzas, times chat bodies and acknowledges."""
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed, asyncio.CancelledError):
            async for message in self._ws:
                text = message if isinstance(message, str) else message.decode()
                if await self._stream_management(text):
                    continue
                self._count(text)

    def _count(self, text: str) -> None:
        self.stanzas += 1
        if text.startswith(("<message", "<presence", "<iq")):
            self._handled += 1
        if text.startswith("<message") and "groupchat" in text:
            body = _BODY.search(text)
            if body:
                self.chats.setdefault(body[1], time.time())

    async def _stream_management(self, text: str) -> bool:
        if not _SM_ELEMENT.match(text):
            return False
        if text.startswith("<r"):
            await self._send(f'<a xmlns="{SM}" h="{self._handled}"/>')
        return True

    async def ping(self) -> None:
        """One XMPP ping of the server, as the web app's ping plugin sends it; no wait."""
        await self._send(
            f'<iq xmlns="{CLIENT}" type="get" id="p{next(self._ids)}" to="{self.xmpp_domain}">'
            f'<ping xmlns="{PING}"/></iq>'
        )

    async def say(self, text: str) -> None:
        await self._send(
            f'<message xmlns="{CLIENT}" to="{self.room_jid}" type="groupchat">'
            f'<body>{text}</body><nick xmlns="{NICK}">{self.name}</nick></message>'
        )

    async def change_presence(self, audio_muted: bool) -> None:
        """A host unmutes or mutes: a presence update broadcast to the room and its viewers."""
        muted = "true" if audio_muted else "false"
        await self._send(
            f'<presence xmlns="{CLIENT}" to="{self.room_jid}/{self.nick}">'
            f'<nick xmlns="{NICK}">{self.name}</nick><stats_id>{self.nick}</stats_id>'
            f"<audiomuted>{muted}</audiomuted><videomuted>false</videomuted></presence>"
        )

    async def close(self) -> None:
        """Leave as the web app does: unavailable presence to the room, the stream's close
        (a session that just drops is kept by stream management for its hibernation time,
        still in the room), then the WebSocket."""
        if self._ws is not None and self._entered:
            with contextlib.suppress(Exception):
                await self._ws.send(
                    f'<presence xmlns="{CLIENT}" to="{self.room_jid}/{self.nick}" '
                    'type="unavailable"/>'
                )
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.send(f'<close xmlns="{FRAMING}"/>')
        self._entered = False
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 5.0)
            self._ws = None

    # -- plumbing -----------------------------------------------------------------------------
    async def _send(self, text: str) -> None:
        try:
            await self._ws.send(text)
        except websockets.ConnectionClosed as exc:
            raise JoinError("send", f"connection closed ({exc})") from None

    async def _recv(self, step: str) -> str:
        try:
            message = await asyncio.wait_for(self._ws.recv(), STEP_TIMEOUT)
        except TimeoutError:
            raise JoinError(step, f"no answer within {STEP_TIMEOUT:.0f} s") from None
        except websockets.ConnectionClosed as exc:
            raise JoinError(step, f"connection closed ({exc})") from None
        text = message if isinstance(message, str) else message.decode()
        if not _SM_ELEMENT.match(text):
            self._count(text)
        elif text.startswith("<r"):
            await self._send(f'<a xmlns="{SM}" h="{self._handled}"/>')
        return text

    async def _until(self, wanted: Any, step: str) -> str:
        while True:
            text = await self._recv(step)
            if wanted(text):
                return text
            if text.startswith("<close") or text.startswith("<stream:error"):
                raise JoinError(step, text[:200])

    async def _stream(self) -> None:
        await self._send(f'<open xmlns="{FRAMING}" to="{self.xmpp_domain}" version="1.0"/>')
        await self._until(lambda s: s.startswith("<open"), "stream")
        await self._until(lambda s: "features" in s[:40], "stream")

    async def _iq(self, payload: str, kind: str, to: str | None, step: str) -> str:
        ident = f"{step}{next(self._ids)}"
        address = f' to="{to}"' if to else ""
        await self._send(f'<iq xmlns="{CLIENT}" type="{kind}" id="{ident}"{address}>{payload}</iq>')
        answer = await self._until(lambda s: s.startswith("<iq") and _has(s, f"id='{ident}'"), step)
        if _has(answer, "type='error'"):
            raise JoinError(step, answer[:300])
        return answer
