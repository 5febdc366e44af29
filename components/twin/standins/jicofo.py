"""Stand-in for jicofo's part of Jitsi's visitors protocol, for the signaling twin.

jicofo (Java) does not run in the twin, so this program plays its XMPP role against the real
prosodies and Jitsi's real plugins: it logs in to the main prosody and to every visitor node,
answers conference requests, owns the main room, redirects joiners to visitor nodes and connects
and disconnects those nodes. It sets up no media (no bridges, no Jingle). Each behaviour follows
jicofo's source (jitsi/jicofo 7ebb13dc, element names from jitsi/jitsi-xmpp-extensions 4281255c):

- settings: ``jicofo.xmpp.client.*`` and ``jicofo.xmpp.visitors.<name>.*`` as in
  ``jicofo-common/src/main/kotlin/org/jitsi/jicofo/xmpp/XmppConfig.kt``; ``jicofo.visitors.*``
  as in ``jicofo/src/main/kotlin/org/jitsi/jicofo/visitors/VisitorsConfig.kt`` and the
  ``reference.conf`` files (defaults: max-participants 50, max-visitors-per-node 500,
  vnode-join-latency-interval 60 s, conference initial-timeout 15 s, rest 127.0.0.1:8888).
- component discovery: disco#info of the XMPP domain, identities of category ``component``
  (``jicofo-common/.../xmpp/XmppProvider.kt`` ``discoverComponents``); the ``visitors`` one
  enables visitors (``jicofo/.../xmpp/VisitorsManager.kt``), ``room_metadata`` feeds the room
  flags (``jicofo/.../xmpp/RoomMetadataHandler.kt``).
- conference requests: ``<conference xmlns="http://jitsi.org/protocol/focus">`` IQs that reach
  focus through the ``client_proxy`` component, answered like
  ``jicofo/.../xmpp/ConferenceIqHandler.kt`` (``ConferenceIq.java`` for the element).
- the conference: ``jicofo/src/main/java/org/jitsi/jicofo/conference/JitsiMeetConferenceImpl.java``
  (``joinTheRoom``, ``redirectVisitor``, ``selectVisitorNode``, ``leaveTheRoom``, ``maybeStop``,
  the initial timeout, ``VisitorChatRoomListenerImpl.roomDestroyed``) and
  ``jicofo/.../conference/ConferenceUtil.kt`` (``selectVisitorNode``, ``getVisitorMucJid``).
- the MUC: ``jicofo-common/.../xmpp/muc/ChatRoomImpl.kt`` (join as the username, whois=anyone,
  owner grant through muc#admin, visitor counting with pending joins) and
  ``jicofo/.../xmpp/muc/ChatRoomRoleManager.kt`` (``AutoOwnerRoleManager``).
- ``connect-vnode``/``disconnect-vnode`` IQs of type get to the visitors component
  (``VisitorsManager.createIq``; ``visitors/VisitorsIq.kt``, ``ConnectVnodePacketExtension.kt``,
  ``DisconnectVnodePacketExtension.kt`` in jitsi-xmpp-extensions).
- visitor promotion: jicofo takes no IQ part in it (prosody's ``visitors_component`` and ``fmuc``
  exchange ``promotion-request``/``promotion-response``); jicofo's share is being the focus
  occupant whose JID the response carries, owning the main room so a moderator exists to
  approve, and receiving the visitors' presences that fmuc forwards to it.
- health: ``GET /about/health`` on jicofo's REST address, 200 once every XMPP connection is up.

Usage: ``jicofo_standin.py [/etc/jitsi/jicofo/jicofo.conf]``. One log line per protocol action
goes to stderr.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import re
import signal
import ssl
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.stanzabase import StanzaBase

DEFAULT_CONFIG: Final = "/etc/jitsi/jicofo/jicofo.conf"
CLIENT: Final = "jabber:client"
FOCUS_NS: Final = "http://jitsi.org/protocol/focus"
VISITORS_NS: Final = "jitsi:visitors"
JITMEET_NS: Final = "http://jitsi.org/jitmeet"
MUC: Final = "http://jabber.org/protocol/muc"
MUC_USER: Final = "http://jabber.org/protocol/muc#user"
MUC_ADMIN: Final = "http://jabber.org/protocol/muc#admin"
MUC_OWNER: Final = "http://jabber.org/protocol/muc#owner"
# ChatRoomImpl's roomMetadataLatch timeout
PRESETS_WAIT_SECONDS: Final = 10.0
DATA_FORMS: Final = "jabber:x:data"
DISCO_INFO: Final = "http://jabber.org/protocol/disco#info"
ROOMCONFIG: Final = "http://jabber.org/protocol/muc#roomconfig"
FOCUS_NICK_DEFAULT: Final = "focus"
REPLY_TIMEOUT: Final = 15.0
RECONNECT_DELAY: Final = 3.0

log = logging.getLogger("jicofo-standin")


# --- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class XmppConnectionConfig:
    """One XMPP login of jicofo (the client connection or one visitor node)."""

    name: str
    hostname: str
    port: int
    domain: str
    xmpp_domain: str
    username: str
    resource: str
    password: str
    disable_certificate_verification: bool
    conference_service: str = ""

    @property
    def jid(self) -> str:
        """The bare JID jicofo tells clients to trust as focus (``XmppConfig.jid``)."""
        return f"{self.username}@{self.domain}"


@dataclass(frozen=True)
class StandinConfig:
    """What the stand-in reads from jicofo.conf."""

    client: XmppConnectionConfig
    conference_muc: str
    client_proxy: str
    visitors_enabled: bool
    max_participants: int
    max_visitors_per_node: int
    vnode_join_latency: float
    notification_interval: float
    require_muc_config_flag: bool
    auto_enable_broadcast: bool
    enable_auto_owner: bool
    initial_timeout: float
    nodes: tuple[XmppConnectionConfig, ...]
    rest_host: str
    rest_port: int


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")
_UNITS: Final = {
    "": 0.001,
    "ms": 0.001,
    "millis": 0.001,
    "milliseconds": 0.001,
    "s": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
}


def duration_seconds(value: object, default: float) -> float:
    """A HOCON duration ("15 seconds", "500 ms", or a number of milliseconds) in seconds."""
    if value is None:
        return default
    if isinstance(value, int | float):
        return float(value) / 1000.0
    match = _DURATION.match(str(value))
    if not match or match.group(2) not in _UNITS:
        raise ValueError(f"not a duration: {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _tree(data: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    node: Any = data
    for key in path:
        node = node.get(key, {}) if isinstance(node, Mapping) else {}
    return node if isinstance(node, Mapping) else {}


def _flag(value: object, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


def _connection(name: str, c: Mapping[str, Any], default_port: int) -> XmppConnectionConfig:
    hostname = str(c.get("hostname", "localhost"))
    username = str(c.get("username", "focus"))
    domain = str(c.get("domain", hostname))
    return XmppConnectionConfig(
        name=name,
        hostname=hostname,
        port=int(c.get("port", default_port)),
        domain=domain,
        xmpp_domain=str(c.get("xmpp-domain", "")),
        username=username,
        resource=str(c.get("resource", username)),
        password=str(c.get("password", "")),
        disable_certificate_verification=_flag(c.get("disable-certificate-verification"), False),
        conference_service=str(c.get("conference-service", "")),
    )


def parse_config(jicofo: Mapping[str, Any]) -> StandinConfig:
    """Build the settings from the JSON of the ``jicofo`` tree (names as in XmppConfig.kt)."""
    client_tree = _tree(jicofo, "xmpp", "client")
    if "hostname" not in client_tree or "password" not in client_tree:
        raise ValueError("jicofo.xmpp.client needs hostname and password")
    client = _connection("client", client_tree, 5222)
    nodes: list[XmppConnectionConfig] = []
    for name, node_tree in sorted(_tree(jicofo, "xmpp", "visitors").items()):
        if not isinstance(node_tree, Mapping) or not _flag(node_tree.get("enabled"), True):
            continue
        node = _connection(name, node_tree, 5222)
        if not node.conference_service:
            raise ValueError(f"jicofo.xmpp.visitors.{name}.conference-service is required")
        if not node.xmpp_domain:
            raise ValueError(f"jicofo.xmpp.visitors.{name}.xmpp-domain is required")
        nodes.append(node)
    visitors = _tree(jicofo, "visitors")
    conference = _tree(jicofo, "conference")
    rest = _tree(jicofo, "rest")
    return StandinConfig(
        client=client,
        conference_muc=str(
            client_tree.get("conference-muc-jid", f"conference.{client.xmpp_domain}")
        ),
        client_proxy=str(client_tree.get("client-proxy", "")),
        visitors_enabled=_flag(visitors.get("enabled"), False),
        max_participants=int(visitors.get("max-participants", 50)),
        max_visitors_per_node=int(visitors.get("max-visitors-per-node", 500)),
        vnode_join_latency=duration_seconds(visitors.get("vnode-join-latency-interval"), 60.0),
        notification_interval=duration_seconds(visitors.get("notification-interval"), 15.0),
        require_muc_config_flag=_flag(visitors.get("require-muc-config-flag"), False),
        auto_enable_broadcast=_flag(visitors.get("auto-enable-broadcast"), True),
        enable_auto_owner=_flag(conference.get("enable-auto-owner"), True),
        initial_timeout=duration_seconds(conference.get("initial-timeout"), 15.0),
        nodes=tuple(nodes),
        rest_host=str(rest.get("host", "127.0.0.1")),
        rest_port=int(rest.get("port", 8888)),
    )


# A root-level include of a file: `include "f"` or `include required("f")`.
_INCLUDE = re.compile(r'^include\s+(required\(\s*)?"([^"]+)"\s*\)?\s*$', re.MULTILINE)


def hocon_tree(path: str, key: str) -> dict[str, Any]:
    """The tree under `key` of a HOCON file, read through the ``hocon`` tool as JSON.

    Debian 13's ``hocon`` (ruby-hocon 1.3.1) does not resolve includes and rejects
    ``required(...)``, so root-level includes are expanded here first; at the root, an
    included file's settings are those of its text in place of the include.
    """
    folder = Path(path).parent

    def expand(match: re.Match[str]) -> str:
        included = folder / match[2]
        if included.is_file():
            return included.read_text()
        if match[1]:
            raise FileNotFoundError(f"{path}: required include {included} is missing")
        return ""

    out = subprocess.run(
        ["hocon", "-j", "get", key],
        input=_INCLUDE.sub(expand, Path(path).read_text()),
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    data = json.loads(out)
    if not isinstance(data, dict):
        raise TypeError(f"{path}: {key} is not an object")
    return data


def read_config(path: str) -> StandinConfig:
    """Read jicofo.conf through the ``hocon`` tool."""
    return parse_config(hocon_tree(path, "jicofo"))


# --- small XML helpers ------------------------------------------------------------------------


def element(tag: str, ns: str, attrs: Mapping[str, str] | None = None) -> ET.Element:
    return ET.Element(f"{{{ns}}}{tag}", dict(attrs or {}))


def child(
    parent: ET.Element, tag: str, ns: str, attrs: Mapping[str, str] | None = None
) -> ET.Element:
    return ET.SubElement(parent, f"{{{ns}}}{tag}", dict(attrs or {}))


def bare(jid: str) -> str:
    return jid.split("/", 1)[0]


def resource(jid: str) -> str:
    return jid.split("/", 1)[1] if "/" in jid else ""


def domain_of(jid: str) -> str:
    return bare(jid).split("@", 1)[-1]


def conference_properties(props: Mapping[str, str]) -> ET.Element:
    """``<conference-properties>`` as in jitsi-xmpp-extensions ``ConferenceProperties.java``."""
    ext = element("conference-properties", FOCUS_NS)
    for key, value in props.items():
        child(ext, "property", FOCUS_NS, {"key": key, "value": value})
    return ext


# --- one XMPP connection ----------------------------------------------------------------------


PresenceListener = Callable[[ET.Element], None]
IqType = Literal["get", "set"]
STANZAS: Final = "urn:ietf:params:xml:ns:xmpp-stanzas"


class Link:
    """jicofo's XmppProvider: one c2s login, kept up, with presence routing by room."""

    def __init__(self, config: XmppConnectionConfig) -> None:
        self.config = config
        self.registered = False
        self.closing = False
        self.components: dict[str, str] = {}
        self.rooms: dict[str, PresenceListener] = {}
        self.on_registered: list[Callable[[], None]] = []
        self.client = slixmpp.ClientXMPP(f"{config.jid}/{config.resource}", config.password)
        if config.disable_certificate_verification:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self.client.ssl_context = context
        # jicofo uses TLS "if possible" (use-tls): a node that counts loopback as secure
        # (mod_secure_interfaces) offers no STARTTLS, and Smack then logs in with SCRAM anyway.
        setattr(self.client["feature_mechanisms"], "unencrypted_scram", True)  # noqa: B010
        self.client.add_event_handler("session_start", self._session_start)
        self.client.add_event_handler("disconnected", self._disconnected)
        self.client.add_event_handler("failed_auth", self._failed_auth)
        self.client.register_handler(
            Callback(f"presence-{config.name}", MatchXPath(f"{{{CLIENT}}}presence"), self._presence)
        )

    @property
    def name(self) -> str:
        return self.config.name

    def start(self) -> None:
        log.info(
            "%s: connecting to %s:%d as %s",
            self.name,
            self.config.hostname,
            self.config.port,
            self.config.jid,
        )
        self.client.connect(self.config.hostname, self.config.port)

    async def _session_start(self, _event: object) -> None:
        self.registered = True
        log.info("%s: logged in as %s", self.name, self.client.boundjid.full)
        for callback in self.on_registered:
            callback()

    def _disconnected(self, _event: object) -> None:
        was = self.registered
        self.registered = False
        if self.closing:
            return
        log.warning("%s: disconnected (was logged in: %s); reconnecting", self.name, was)
        asyncio.get_running_loop().call_later(RECONNECT_DELAY, self.start)

    def _failed_auth(self, _event: object) -> None:
        log.error("%s: authentication failed for %s", self.name, self.config.jid)

    def _presence(self, stanza: StanzaBase) -> None:
        xml = stanza.xml
        listener = self.rooms.get(bare(xml.get("from", "")).lower())
        if listener is not None:
            listener(xml)

    def send(self, stanza: StanzaBase) -> None:
        self.client.send(stanza)

    def presence(self, to: str, children: list[ET.Element], ptype: str | None = None) -> None:
        pres = self.client.make_presence(pto=to)
        if ptype:
            pres["type"] = ptype
        for item in children:
            pres.append(item)
        pres.send()

    async def iq(self, to: str, itype: IqType, payload: ET.Element) -> ET.Element:
        """Send an IQ and return the result's XML; raises IqError/IqTimeout as slixmpp does."""
        request = self.client.make_iq(ito=to, itype=itype)
        request.append(payload)
        send: Any = request.send  # untyped in slixmpp
        reply = await send(timeout=REPLY_TIMEOUT)
        xml: ET.Element = reply.xml
        return xml

    def reply(self, query: ET.Element, payload: ET.Element) -> None:
        """A result IQ for ``query``, carrying ``payload``."""
        result = self.client.make_iq(
            id=query.get("id", ""), ito=query.get("from", ""), itype="result"
        )
        result.append(payload)
        self.client.send(result)

    def error(self, query: ET.Element, etype: str, condition: str, text: str = "") -> None:
        """An error IQ for ``query`` (RFC 6120 stanza error)."""
        reply = self.client.make_iq(
            id=query.get("id", ""), ito=query.get("from", ""), itype="error"
        )
        err = element("error", CLIENT, {"type": etype})
        child(err, condition, STANZAS)
        if text:
            child(err, "text", STANZAS).text = text
        reply.append(err)
        self.client.send(reply)

    async def discover_components(self) -> dict[str, str]:
        """disco#info of the XMPP domain: component identities, type -> address."""
        domain = self.config.xmpp_domain
        if not domain:
            return {}
        try:
            reply = await self.iq(domain, "get", element("query", DISCO_INFO))
        except (IqError, IqTimeout) as exc:
            log.warning("%s: disco#info of %s failed: %s", self.name, domain, exc)
            return {}
        found = {
            ident.get("type", ""): ident.get("name", "")
            for ident in reply.iter(f"{{{DISCO_INFO}}}identity")
            if ident.get("category") == "component"
        }
        self.components = found
        log.info("%s: discovered components %s", self.name, found)
        return found

    async def close(self) -> None:
        self.closing = True
        if self.registered:
            self.client.disconnect()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.client.disconnected, 5.0)
        self.registered = False


# --- a MUC room as jicofo's ChatRoomImpl sees it ------------------------------------------------


@dataclass
class Member:
    """One occupant other than focus."""

    nick: str
    jid: str
    role: str
    affiliation: str

    @property
    def member_role(self) -> str:
        """``MemberRole.fromSmack``: owner, moderator, participant or visitor."""
        if self.affiliation == "owner":
            return "owner"
        if self.affiliation == "admin":
            return "moderator"
        if self.role in ("moderator", "participant"):
            return self.role
        return "visitor"


@dataclass
class Room:
    """A MUC joined by focus; counts visitors like ChatRoomImpl (members plus pending joins)."""

    link: Link
    jid: str
    nick: str
    on_member_joined: Callable[[Room, Member], None] = lambda _r, _m: None
    on_member_left: Callable[[Room, Member], None] = lambda _r, _m: None
    on_destroyed: Callable[[Room, str], None] = lambda _r, _s: None
    members: dict[str, Member] = field(default_factory=dict)
    joined: bool = False
    left: bool = False
    config_fields: dict[str, str] = field(default_factory=dict)
    pending: list[float] = field(default_factory=list)
    _joined_future: asyncio.Future[ET.Element] | None = None

    @property
    def occupant_jid(self) -> str:
        return f"{self.jid}/{self.nick}"

    def visitor_invited(self, latency: float) -> None:
        self.pending.append(time.monotonic() + latency)

    def visitor_count(self) -> int:
        now = time.monotonic()
        self.pending = [t for t in self.pending if t > now]
        visitors = sum(1 for m in self.members.values() if m.member_role == "visitor")
        return visitors + len(self.pending)

    async def join(self, extensions: list[ET.Element]) -> None:
        """Join as focus and answer the config form with whois=anyone (``ChatRoomImpl.joinAs``)."""
        self.link.rooms[self.jid] = self._presence
        self._joined_future = asyncio.get_running_loop().create_future()
        log.info("%s: joining %s", self.link.name, self.occupant_jid)
        self.link.presence(self.occupant_jid, [element("x", MUC), *extensions])
        own = await asyncio.wait_for(self._joined_future, REPLY_TIMEOUT)
        if own.get("type") == "error":
            self.link.rooms.pop(self.jid, None)
            raise RuntimeError(f"joining {self.jid} failed: {ET.tostring(own, encoding='unicode')}")
        self.joined = True
        form = await self.link.iq(self.jid, "get", element("query", MUC_OWNER))
        for field_el in form.iter(f"{{{DATA_FORMS}}}field"):
            value = field_el.find(f"{{{DATA_FORMS}}}value")
            self.config_fields[field_el.get("var", "")] = (
                (value.text or "") if value is not None else ""
            )
        submit = element("query", MUC_OWNER)
        x = child(submit, "x", DATA_FORMS, {"type": "submit"})
        for var, val in (("FORM_TYPE", ROOMCONFIG), ("muc#roomconfig_whois", "anyone")):
            child(child(x, "field", DATA_FORMS, {"var": var}), "value", DATA_FORMS).text = val
        await self.link.iq(self.jid, "set", submit)
        own_item = _item(own)
        log.info(
            "%s: joined %s (role %s, meetingId %s)",
            self.link.name,
            self.occupant_jid,
            own_item.get("role", "?") if own_item is not None else "?",
            self.config_fields.get("muc#roominfo_meetingId", "-"),
        )

    def set_presence(self, extensions: list[ET.Element]) -> None:
        """Send an updated presence (no MUC join element) to the room."""
        if self.joined and not self.left and self.link.registered:
            self.link.presence(self.occupant_jid, extensions)

    def leave(self) -> None:
        if self.left:
            return
        self.left = True
        self.link.rooms.pop(self.jid, None)
        if self.joined and self.link.registered:
            log.info("%s: leaving %s", self.link.name, self.jid)
            self.link.presence(self.occupant_jid, [], ptype="unavailable")

    async def grant_owner(self, member: Member) -> None:
        """``ChatRoomImpl.grantOwnership``: a muc#admin item with affiliation owner."""
        query = element("query", MUC_ADMIN)
        child(query, "item", MUC_ADMIN, {"affiliation": "owner", "jid": bare(member.jid)})
        log.info(
            "%s: granting owner in %s to %s (%s)",
            self.link.name,
            self.jid,
            member.nick,
            bare(member.jid),
        )
        try:
            await self.link.iq(self.jid, "set", query)
        except (IqError, IqTimeout) as exc:
            log.warning("%s: failed to grant ownership to %s: %s", self.link.name, member.nick, exc)

    def _presence(self, xml: ET.Element) -> None:
        sender = xml.get("from", "")
        nick = resource(sender)
        ptype = xml.get("type")
        x = xml.find(f"{{{MUC_USER}}}x")
        codes = {s.get("code") for s in xml.iter(f"{{{MUC_USER}}}status")}
        if nick == self.nick:
            if self._joined_future is not None and not self._joined_future.done():
                if ptype == "error" or "110" in codes:
                    self._joined_future.set_result(xml)
                return
            if ptype == "unavailable":
                destroy = x.find(f"{{{MUC_USER}}}destroy") if x is not None else None
                reason = ""
                if destroy is not None:
                    reason = destroy.findtext(f"{{{MUC_USER}}}reason") or "destroyed"
                self.left = True
                self.link.rooms.pop(self.jid, None)
                log.info(
                    "%s: removed from %s (%s)", self.link.name, self.jid, reason or "unavailable"
                )
                self.on_destroyed(self, reason or "unavailable")
            return
        if ptype == "error":
            return
        item = _item(xml)
        if ptype == "unavailable":
            gone = self.members.pop(nick, None)
            if gone is not None:
                self.on_member_left(self, gone)
            return
        role = item.get("role", "none") if item is not None else "none"
        affiliation = item.get("affiliation", "none") if item is not None else "none"
        real = item.get("jid", "") if item is not None else ""
        known = self.members.get(nick)
        if known is None:
            member = Member(nick, real, role, affiliation)
            self.members[nick] = member
            if member.member_role == "visitor" and self.pending:
                self.pending.pop(0)
            self.on_member_joined(self, member)
        else:
            known.role, known.affiliation = role, affiliation
            known.jid = real or known.jid
        raised = xml.findtext(f"{{{CLIENT}}}jitsi_participant_raisedHand")
        if raised is not None:
            log.info(
                "%s: %s in %s has a raised hand (%s)",
                self.link.name,
                nick,
                self.jid,
                raised or "lowered",
            )


def _item(xml: ET.Element) -> ET.Element | None:
    return xml.find(f"{{{MUC_USER}}}x/{{{MUC_USER}}}item")


# --- conferences ------------------------------------------------------------------------------


class Conference:
    """One conference (JitsiMeetConferenceImpl without media)."""

    def __init__(self, focus: Focus, room_jid: str) -> None:
        self.focus = focus
        self.room_jid = room_jid
        self.config = focus.config
        self.main: Room | None = None
        self.visitor_rooms: dict[str, Room] = {}
        self.owner: Member | None = None
        self.started = False
        self.stopped = False
        self.lobby_enabled = False
        self.visitors_enabled: bool | None = None
        self.participants_soft_limit: int | None = None
        self.moderators: list[str] = []
        self.participants: list[str] | None = None
        self._metadata_set = asyncio.Event()
        self.properties: dict[str, str] = {"support-terminate-restart": "true"}
        if self.config.visitors_enabled:
            self.properties["visitors-enabled"] = "true"
        self._visitor_count = 0
        self._count_task: asyncio.Task[None] | None = None
        self._start_timeout: asyncio.TimerHandle | None = None

    # lifecycle

    async def start(self) -> None:
        """``joinTheRoom``: join the main room as focus and take the owner role manager's part."""
        room = Room(
            self.focus.main,
            self.room_jid,
            self.config.client.username,
            on_member_joined=self._main_member_joined,
            on_member_left=self._main_member_left,
            on_destroyed=lambda _r, reason: self._main_destroyed(reason),
        )
        self.main = room
        await room.join([conference_properties(self.properties)])
        flag = room.config_fields.get("muc#roominfo_visitorsEnabled")
        if flag is not None and flag != "":
            self.visitors_enabled = flag in ("1", "true")
        # ChatRoomImpl.joinAs: with the conference presets flag, block (at most 10 s) until the
        # room metadata arrived, so that the first request already sees who the room is for
        presets = room.config_fields.get("muc#roominfo_conference_presets_service_enabled")
        if presets in ("1", "true"):
            try:
                await asyncio.wait_for(self._metadata_set.wait(), PRESETS_WAIT_SECONDS)
                log.info("conference %s: room metadata is set, room fully joined", self.room_jid)
            except TimeoutError:
                log.warning("conference %s: no room metadata in time; going on", self.room_jid)
        self.started = True
        self.schedule_start_timeout()
        self._elect_owner()

    def schedule_start_timeout(self) -> None:
        """The initial timeout: stop if nobody is in the main room by then."""
        if self._start_timeout is not None:
            self._start_timeout.cancel()
        self._start_timeout = asyncio.get_running_loop().call_later(
            self.config.initial_timeout, self._start_timeout_expired
        )

    def _start_timeout_expired(self) -> None:
        self._start_timeout = None
        if self.main is not None and not self.main.members and not self.stopped:
            log.info("conference %s: expiring due to initial timeout", self.room_jid)
            self.focus.spawn(self.stop())

    async def stop(self) -> None:
        """``stop``/``leaveTheRoom``: disconnect the vnodes first, then leave every room."""
        if self.stopped:
            return
        self.stopped = True
        self.started = False
        if self._start_timeout is not None:
            self._start_timeout.cancel()
        self.focus.conferences.pop(self.room_jid, None)
        rooms = dict(self.visitor_rooms)
        self.visitor_rooms.clear()
        if rooms:
            await self.focus.send_visitors_iq(self.room_jid, "disconnect-vnode", list(rooms))
        for room in rooms.values():
            room.leave()
        if self.main is not None:
            self.main.leave()
        log.info("conference %s: stopped", self.room_jid)

    # main room events

    def _main_member_joined(self, room: Room, member: Member) -> None:
        log.info(
            "conference %s: member %s joined the main room as %s",
            self.room_jid,
            member.nick,
            member.member_role,
        )
        if self._start_timeout is not None:
            self._start_timeout.cancel()
            self._start_timeout = None
        if self.owner is None:
            self._elect_owner()

    def _main_member_left(self, room: Room, member: Member) -> None:
        log.info("conference %s: member %s left the main room", self.room_jid, member.nick)
        if self.owner is not None and self.owner.nick == member.nick:
            self.owner = None
            self._elect_owner()
        if not room.members:
            log.info("conference %s: last member left, stopping", self.room_jid)
            self.focus.spawn(self.stop())

    def _main_destroyed(self, reason: str) -> None:
        log.info("conference %s: main room gone (%s)", self.room_jid, reason)
        self.focus.spawn(self.stop())

    def _elect_owner(self) -> None:
        """``AutoOwnerRoleManager.electNewOwner``."""
        room = self.main
        if (
            not self.config.enable_auto_owner
            or room is None
            or not room.joined
            or self.owner is not None
        ):
            return
        members = list(room.members.values())
        self.owner = next((m for m in members if m.member_role == "owner"), None)
        if self.owner is not None:
            return
        candidate = next((m for m in members if m.member_role != "visitor"), None)
        if candidate is not None:
            self.owner = candidate
            log.info("conference %s: electing new owner %s", self.room_jid, candidate.nick)
            self.focus.spawn(room.grant_owner(candidate))

    # metadata (RoomMetadataHandler / ChatRoomImpl.setRoomMetadata)

    def set_metadata(self, metadata: Mapping[str, Any]) -> None:
        self.lobby_enabled = metadata.get("lobbyEnabled") is True
        # ChatRoomImpl: `moderators` defaults to empty, `participants` stays null (room open to
        # everyone) unless the metadata names a list
        moderators = metadata.get("moderators")
        self.moderators = [str(m) for m in moderators] if isinstance(moderators, list) else []
        participants = metadata.get("participants")
        self.participants = (
            [str(p) for p in participants] if isinstance(participants, list) else None
        )
        if isinstance(metadata.get("visitorsEnabled"), bool):
            self.visitors_enabled = bool(metadata["visitorsEnabled"])
        self._metadata_set.set()
        limit = metadata.get("participantsSoftLimit")
        self.participants_soft_limit = (
            limit if isinstance(limit, int) else self.participants_soft_limit
        )
        log.info(
            "conference %s: room metadata lobby=%s visitorsEnabled=%s participantsSoftLimit=%s "
            "moderators=%s participants=%s",
            self.room_jid,
            self.lobby_enabled,
            self.visitors_enabled,
            self.participants_soft_limit,
            self.moderators,
            self.participants,
        )

    def preferred_in_main_room(self, user_id: str | None, group_id: str | None) -> bool:
        """``ChatRoomImpl.isPreferredInMainRoom``: named by id or group in either list."""
        listed = [*self.moderators, *(self.participants or [])]
        return (user_id is not None and user_id in listed) or (
            group_id is not None and group_id in listed
        )

    def allowed_in_main_room(self, user_id: str | None, group_id: str | None) -> bool:
        """``ChatRoomImpl.isAllowedInMainRoom``: everyone while the room names no participants."""
        return self.participants is None or self.preferred_in_main_room(user_id, group_id)

    # visitors

    def user_participant_count(self) -> int:
        return len(self.main.members) if self.main is not None else 0

    async def redirect_visitor(self, visitor_requested: bool) -> str | None:
        """``redirectVisitor``: the node to send this joiner to, or None for the main room."""
        if not self.config.visitors_enabled:
            return None
        if self.lobby_enabled:
            log.info("conference %s: lobby enabled, not redirecting", self.room_jid)
            return None
        if self.visitors_enabled is False:
            log.info(
                "conference %s: visitors disabled for the room, not redirecting", self.room_jid
            )
            return None
        if self.config.require_muc_config_flag and self.visitors_enabled is not True:
            return None
        count = self.user_participant_count()
        limit = self.config.max_participants
        if self.participants_soft_limit is not None and self.participants_soft_limit > 0:
            limit = self.participants_soft_limit
        already = bool(self.visitor_rooms)
        if already or visitor_requested or count >= limit:
            return await self.select_visitor_node()
        return None

    def choose_node(self) -> str | None:
        """``ConferenceUtil.selectVisitorNode``."""
        existing = {name: room.visitor_count() for name, room in self.visitor_rooms.items()}
        if existing:
            name, count = min(existing.items(), key=lambda kv: kv[1])
            if count < self.config.max_visitors_per_node:
                return name
        links = self.focus.nodes
        fresh = [n for n, link in links.items() if n not in existing and link.registered]
        if fresh:
            return random.choice(fresh)  # noqa: S311 - load spreading, as upstream
        return random.choice(list(links)) if links else None  # noqa: S311

    async def select_visitor_node(self) -> str | None:
        """``selectVisitorNode``: join the node's room if new, then connect the node."""
        node = self.choose_node()
        if node is None:
            log.warning("conference %s: visitor node required, but none available", self.room_jid)
            return None
        existing = self.visitor_rooms.get(node)
        if existing is not None:
            existing.visitor_invited(self.config.vnode_join_latency)
            return node
        link = self.focus.nodes[node]
        vroom_jid = visitor_muc_jid(
            self.room_jid, self.config.client.xmpp_domain, link.config.xmpp_domain
        )
        vroom = Room(
            link,
            vroom_jid,
            link.config.username,
            on_member_joined=self._visitor_joined,
            on_member_left=self._visitor_left,
            on_destroyed=lambda r, reason: self._visitor_room_destroyed(node, r, reason),
        )
        self.visitor_rooms[node] = vroom
        vroom.visitor_invited(self.config.vnode_join_latency)
        try:
            await vroom.join([conference_properties(self.properties)])
        except Exception:
            self.visitor_rooms.pop(node, None)
            raise
        if self.config.auto_enable_broadcast:
            self.focus.spawn(self.focus.send_visitors_iq(self.room_jid, "connect-vnode", [node]))
        else:
            log.info("conference %s: redirected visitor, broadcast not enabled yet", self.room_jid)
        return node

    def _visitor_joined(self, room: Room, member: Member) -> None:
        if member.member_role != "visitor":
            return
        log.info("conference %s: visitor %s joined %s", self.room_jid, member.nick, room.jid)
        self._visitors_changed()

    def _visitor_left(self, room: Room, member: Member) -> None:
        if member.member_role != "visitor":
            return
        log.info("conference %s: visitor %s left %s", self.room_jid, member.nick, room.jid)
        self._visitors_changed()

    def _visitor_room_destroyed(self, node: str, room: Room, reason: str) -> None:
        """``VisitorChatRoomListenerImpl.roomDestroyed``: forget the room, disconnect the node."""
        if self.visitor_rooms.get(node) is not room:
            return
        del self.visitor_rooms[node]
        log.info("conference %s: visitor room %s destroyed (%s)", self.room_jid, room.jid, reason)
        room.leave()
        self.focus.spawn(self.focus.send_visitors_iq(self.room_jid, "disconnect-vnode", [node]))
        self._visitors_changed()

    def _visitors_changed(self) -> None:
        """Publish ``visitor-count``, at most once per notification interval."""
        if self._count_task is None or self._count_task.done():
            self._count_task = self.focus.spawn(self._publish_visitor_count())

    async def _publish_visitor_count(self) -> None:
        while not self.stopped:
            count = sum(
                sum(1 for m in r.members.values() if m.member_role == "visitor")
                for r in self.visitor_rooms.values()
            )
            if count == self._visitor_count:
                return
            self._visitor_count = count
            self.properties["visitor-count"] = str(count)
            extensions = [conference_properties(self.properties)]
            log.info("conference %s: visitor-count %d", self.room_jid, count)
            for room in [self.main, *self.visitor_rooms.values()]:
                if room is not None:
                    room.set_presence(extensions)
            await asyncio.sleep(self.config.notification_interval)


def token_identity(token: str | None) -> tuple[str | None, str | None]:
    """``parseToken``: context.user.id and context.group of a JWT, read WITHOUT validation,
    as jicofo does: prosody has verified (or refused) the token at login already."""
    if not token:
        return None, None
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        context = claims.get("context") or {}
        user = context.get("user") or {}
        user_id, group = user.get("id"), context.get("group")
        return (
            str(user_id) if user_id is not None else None,
            str(group) if group is not None else None,
        )
    except (IndexError, ValueError, AttributeError):
        return None, None


def visitor_muc_jid(main_room: str, main_domain: str, visitor_domain: str) -> str:
    """``getVisitorMucJid``: the main room's JID with the main domain replaced by the node's."""
    if not main_domain or not visitor_domain:
        raise ValueError("xmpp-domain must be set for the client and every visitor node")
    return main_room.replace(main_domain, visitor_domain)


# --- the focus --------------------------------------------------------------------------------


class Focus:
    """FocusManager + ConferenceIqHandler + VisitorsManager over one client and N node links."""

    def __init__(self, config: StandinConfig) -> None:
        self.config = config
        self.main = Link(config.client)
        self.nodes = {node.name: Link(node) for node in config.nodes}
        self.conferences: dict[str, Conference] = {}
        self._starting: dict[str, asyncio.Task[Conference]] = {}
        self.visitors_address: str | None = None
        self.metadata_address: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.main.on_registered.append(self._main_registered)
        self.main.client.register_handler(
            Callback(
                "conference-iq",
                MatchXPath(f"{{{CLIENT}}}iq/{{{FOCUS_NS}}}conference"),
                self._conference_iq,
            )
        )
        self.main.client.register_handler(
            Callback(
                "visitors-iq",
                MatchXPath(f"{{{CLIENT}}}iq/{{{VISITORS_NS}}}visitors"),
                self._visitors_iq,
            )
        )
        self.main.client.register_handler(
            Callback(
                "json-message",
                MatchXPath(f"{{{CLIENT}}}message/{{{JITMEET_NS}}}json-message"),
                self._json_message,
            )
        )

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task failed: %r", task.exception())

    @property
    def links(self) -> list[Link]:
        return [self.main, *self.nodes.values()]

    @property
    def healthy(self) -> bool:
        return all(link.registered for link in self.links)

    @property
    def visitors_enabled(self) -> bool:
        """``VisitorsManager.enabled``: configured on and the component discovered."""
        return self.config.visitors_enabled and self.visitors_address is not None

    def start(self) -> None:
        for link in self.links:
            link.start()

    def _main_registered(self) -> None:
        # Smack sends the initial presence on login; the client_proxy component learns focus's
        # session from it through the roster subscription made at install time.
        self.main.client.send_presence()
        log.info("client: sent initial presence (client_proxy %s)", self.config.client_proxy or "-")
        self.spawn(self._discover())

    async def _discover(self) -> None:
        found = await self.main.discover_components()
        self.visitors_address = found.get("visitors")
        self.metadata_address = found.get("room_metadata")
        log.info(
            "visitors are now %s with address %s",
            "enabled" if self.visitors_enabled else "disabled",
            self.visitors_address,
        )

    # visitors component IQs (VisitorsManager)

    async def send_visitors_iq(self, room: str, action: str, nodes: list[str]) -> None:
        """Send ``<visitors room=..><ACTION vnode=../></visitors>`` (type get) to the component."""
        address = self.visitors_address
        if address is None:
            log.warning("no visitors component: cannot send %s for %s", action, room)
            return
        payload = element("visitors", VISITORS_NS, {"room": room})
        for node in nodes:
            child(payload, action, VISITORS_NS, {"vnode": node})
        log.info("client: sending %s %s for %s to %s", action, ",".join(nodes), room, address)
        try:
            await self.main.iq(address, "get", payload)
            log.info("client: %s %s for %s acknowledged", action, ",".join(nodes), room)
        except IqTimeout:
            log.warning("client: timeout waiting for the %s response (%s)", action, room)
        except IqError as exc:
            log.warning(
                "client: error response to %s (%s): %s", action, room, exc.iq.xml.get("type")
            )

    def _visitors_iq(self, stanza: StanzaBase) -> None:
        xml = stanza.xml
        log.info(
            "client: received VisitorsIq from %s: %s",
            xml.get("from"),
            ET.tostring(xml, encoding="unicode"),
        )
        if xml.get("type") in ("get", "set"):
            self.main.error(xml, "cancel", "feature-not-implemented")

    def _json_message(self, stanza: StanzaBase) -> None:
        xml = stanza.xml
        if self.metadata_address is None or xml.get("from") != self.metadata_address:
            return
        body = xml.find(f"{{{JITMEET_NS}}}json-message")
        if body is None:
            return
        conference = self.conferences.get((body.get("room") or "").lower())
        try:
            data = json.loads(body.text or "")
        except ValueError:
            return
        if conference is None or not isinstance(data, dict) or data.get("type") != "room_metadata":
            return
        metadata = data.get("metadata")
        if isinstance(metadata, dict):
            conference.set_metadata(metadata)

    # conference requests (ConferenceIqHandler)

    def _conference_iq(self, stanza: StanzaBase) -> None:
        if stanza.xml.get("type") != "set":
            return
        self.spawn(self._handle_conference_iq(stanza.xml))

    def _proxied_from(self, sender: str) -> str:
        """``parseJidFromClientProxyJid``: the client's JID behind the client_proxy component."""
        proxy = self.config.client_proxy
        if proxy and bare(sender) == proxy and resource(sender):
            return resource(sender)
        return sender

    async def _handle_conference_iq(self, query: ET.Element) -> None:
        original_from = query.get("from", "")
        conf = query.find(f"{{{FOCUS_NS}}}conference")
        room_attr = conf.get("room") if conf is not None else None
        if conf is None or not room_attr:
            self.main.error(query, "modify", "bad-request", "No 'room' specified.")
            return
        room_jid = room_attr.lower()
        props = {
            p.get("name", ""): p.get("value", "") for p in conf.iter(f"{{{FOCUS_NS}}}property")
        }
        visitor_supported = "visitors-version" in props
        visitor_requested = props.get("visitor") == "true"
        user_id, group_id = token_identity(conf.get("token"))
        log.info(
            "client: conference request for %s from %s (visitors-version %s, visitor %s)",
            room_jid,
            self._proxied_from(original_from),
            props.get("visitors-version", "-"),
            props.get("visitor", "-"),
        )
        try:
            conference = await self.conference_request(room_jid)
            ready = conference.started and conference.main is not None and conference.main.joined
            vnode: str | None = None
            allowed = conference.allowed_in_main_room(user_id, group_id)
            preferred = conference.preferred_in_main_room(user_id, group_id)
            if visitor_supported and self.visitors_enabled and (visitor_requested or not preferred):
                vnode = await conference.redirect_visitor(visitor_requested or not allowed)
            elif self.visitors_enabled:
                log.info("client: endpoint with no visitor support")
        except Exception:
            log.exception("client: conference request for %s failed", room_jid)
            self.main.error(query, "wait", "internal-server-error")
            return
        supported = self.visitors_enabled and (
            conference.visitors_enabled is True or not self.config.require_muc_config_flag
        )
        attrs = {
            "room": room_attr,
            "focusjid": self.config.client.jid,
            "ready": "true" if ready else "false",
        }
        if vnode is not None:
            attrs["vnode"] = vnode
            attrs["focusjid"] = self.nodes[vnode].config.jid
        answer = element("conference", FOCUS_NS, attrs)
        child(answer, "property", FOCUS_NS, {"name": "authentication", "value": "false"})
        child(
            answer,
            "property",
            FOCUS_NS,
            {"name": "visitors-supported", "value": str(supported).lower()},
        )
        self.main.reply(query, answer)
        if vnode is not None:
            log.info(
                "client: redirecting %s to %s (%s)",
                self._proxied_from(original_from),
                vnode,
                room_jid,
            )
        else:
            log.info(
                "client: %s may join %s (ready %s)",
                self._proxied_from(original_from),
                room_jid,
                ready,
            )

    async def conference_request(self, room_jid: str) -> Conference:
        """``FocusManager.conferenceRequest``: the running conference, or a new one started."""
        existing = self.conferences.get(room_jid)
        if existing is not None and not existing.stopped:
            if existing.main is not None and not existing.main.members:
                existing.schedule_start_timeout()
            return existing
        starting = self._starting.get(room_jid)
        if starting is None:
            starting = asyncio.ensure_future(self._create(room_jid))
            self._starting[room_jid] = starting
            starting.add_done_callback(lambda _t: self._starting.pop(room_jid, None))
        return await starting

    async def _create(self, room_jid: str) -> Conference:
        log.info("conference %s: creating", room_jid)
        conference = Conference(self, room_jid)
        self.conferences[room_jid] = conference
        try:
            await conference.start()
        except Exception:
            self.conferences.pop(room_jid, None)
            raise
        return conference

    async def shutdown(self) -> None:
        for conference in list(self.conferences.values()):
            await conference.stop()
        for link in self.links:
            await link.close()


# --- health -----------------------------------------------------------------------------------


async def serve_health(focus: Focus, host: str, port: int) -> asyncio.Server:
    """``GET /about/health``: 200 once every XMPP connection is logged in, 503 before."""

    def answer(method: str, path: str, _body: bytes) -> tuple[str, bytes]:
        if method == "GET" and path == "/about/health":
            if focus.healthy:
                return "200 OK", b""
            return "503 Service Unavailable", b"XMPP connections not ready\n"
        return "404 Not Found", b""

    return await serve_http(answer, host, port)


Handler = Callable[[str, str, bytes], tuple[str, bytes]]


async def serve_http(handler: Handler, host: str, port: int) -> asyncio.Server:
    """A minimal HTTP/1.1 server, one request per connection: `handler(method, path, body)`
    gives the status line's text and the body (the stand-ins' REST APIs need no more)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5.0)
            length = 0
            while (line := await asyncio.wait_for(reader.readline(), 5.0)) not in (
                b"\r\n",
                b"\n",
                b"",
            ):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip() or 0)
            body = await asyncio.wait_for(reader.readexactly(length), 5.0) if length else b""
            method, path = ([*request.decode("latin-1").split(), "", ""])[:2]
            status, out = handler(method, path.split("?")[0], body)
            head = f"HTTP/1.1 {status}\r\nContent-Length: {len(out)}\r\nConnection: close\r\n"
            if out[:1] in (b"{", b"["):
                head += "Content-Type: application/json\r\n"
            writer.write((head + "\r\n").encode("latin-1") + out)
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)


# --- main -------------------------------------------------------------------------------------


async def run(config_path: str) -> int:
    config = read_config(config_path)
    log.info(
        "config: main %s:%d (%s), %d visitor node(s), visitors.enabled=%s, max-participants=%d, "
        "max-visitors-per-node=%d",
        config.client.hostname,
        config.client.port,
        config.client.jid,
        len(config.nodes),
        config.visitors_enabled,
        config.max_participants,
        config.max_visitors_per_node,
    )
    focus = Focus(config)
    server = await serve_health(focus, config.rest_host, config.rest_port)
    log.info("health on http://%s:%d/about/health", config.rest_host, config.rest_port)
    focus.start()
    await until_stopped(asyncio.Event())
    log.info("shutting down")
    server.close()
    await asyncio.wait_for(focus.shutdown(), 30.0)
    return 0


async def until_stopped(stop: asyncio.Event) -> None:
    """Until SIGTERM or SIGINT arrives, or `stop` is set otherwise."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run_main(
    run: Callable[[str], Coroutine[Any, Any, int]], default_config: str, argv: list[str] | None
) -> int:
    """A stand-in's entry point: `run(config path)`, logging one line per action to stderr."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")
    logging.getLogger("slixmpp").setLevel(logging.WARNING)
    return asyncio.run(run(args[0] if args else default_config))


def main(argv: list[str] | None = None) -> int:
    return run_main(run, DEFAULT_CONFIG, argv)


if __name__ == "__main__":
    sys.exit(main())
