"""What each VM lets in, for both clouds, as plain data.

The same table feeds the AWS security groups and the Hetzner firewalls, and the tests check
it rule by rule. Visitor prosodies, prosody's s2s/http ports, jicofo's REST port and the
videobridge's REST port never appear here: they listen on loopback only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum, unique
from typing import Final

from components.model.ports import (
    HTTP_PORT,
    HTTPS_PORT,
    JVB_MEDIA_PORT,
    JVB_WEBSOCKET_PORT,
    MAIN_C2S_PORT,
    TURN_PORT,
)
from components.model.project import Cloud
from components.model.settings import Settings

ANYWHERE: Final = ("0.0.0.0/0", "::/0")


@unique
class Peer(StrEnum):
    """A source that is another group of this stack rather than an address range."""

    bridges = "bridges"
    signaling = "signaling"


@dataclass(frozen=True)
class Rule:
    """One inbound rule: protocol, port, and who may use it."""

    protocol: str
    port: int
    sources: tuple[str, ...] = ()
    peer: Peer | None = None
    description: str = ""


def signaling_rules(settings: Settings) -> tuple[Rule, ...]:
    """Inbound to the signaling VM."""
    rules = [
        Rule("tcp", HTTP_PORT, ANYWHERE, description="HTTP: ACME challenges, redirect to HTTPS"),
        # nginx passes TURN clients on to coturn's TLS port, which stays closed here
        Rule(
            "tcp",
            HTTPS_PORT,
            ANYWHERE,
            description="HTTPS: web app, BOSH, XMPP WebSocket; TURN over TLS",
        ),
        Rule("udp", TURN_PORT, ANYWHERE, description="TURN/STUN (coturn)"),
    ]
    if settings.cloud is Cloud.aws:
        # Hetzner firewalls filter public interfaces only; there the private network is the
        # bridges' path and prosody's c2s listens on no public address.
        rules.append(
            Rule("tcp", MAIN_C2S_PORT, peer=Peer.bridges, description="XMPP c2s from bridges")
        )
    rules += _ssh(settings)
    return tuple(rules)


def bridge_rules(settings: Settings) -> tuple[Rule, ...]:
    """Inbound to every videobridge."""
    rules = [Rule("udp", JVB_MEDIA_PORT, ANYWHERE, description="media (ICE/RTP) and relays")]
    if settings.bridges.websockets and settings.cloud is Cloud.aws:
        rules.append(
            Rule(
                "tcp",
                JVB_WEBSOCKET_PORT,
                peer=Peer.signaling,
                description="colibri WebSockets through nginx",
            )
        )
    rules += _ssh(settings)
    return tuple(rules)


def scaler_rules(settings: Settings) -> tuple[Rule, ...]:
    """Inbound to the Hetzner scaler VM: SSH from the admin networks, nothing else (it reads
    the bridges over the private network and calls Hetzner's API itself)."""
    return tuple(_ssh(settings))


def _ssh(settings: Settings) -> list[Rule]:
    if not settings.admin_cidrs:
        return []
    return [Rule("tcp", 22, tuple(settings.admin_cidrs), description="SSH from admin networks")]
