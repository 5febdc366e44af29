"""XMPP namespaces and a c2s client for the twin tests.

Browsers (XMPP over WebSocket through nginx) are `tests.twin_clients.Browser`; `c2s_login`
speaks plain c2s with STARTTLS and SCRAM through slixmpp, the way jicofo and the videobridge
log in.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Final

import slixmpp

# the namespaces are the load generator's: one list for every client of the twin
from components.load.session import BIND, CLIENT, DISCO_INFO, FRAMING, MUC, MUC_USER, SASL

__all__ = ["BIND", "CLIENT", "DISCO_INFO", "FRAMING", "MUC", "MUC_USER", "SASL"]

TIMEOUT: Final = 10.0


def insecure_tls() -> ssl.SSLContext:
    """The twin's certificates are self-signed."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def c2s_login(jid: str, password: str, host: str, port: int) -> slixmpp.ClientXMPP:
    """Log in over c2s (STARTTLS, SCRAM) like jicofo or the videobridge; raises on failure."""
    client = slixmpp.ClientXMPP(jid, password)
    client.ssl_context = insecure_tls()
    client.register_plugin("xep_0045")
    started: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def ok(_event: object) -> None:
        if not started.done():
            started.set_result(True)

    def refused(_event: object) -> None:
        if not started.done():
            started.set_exception(PermissionError(jid))

    client.add_event_handler("session_start", ok)
    client.add_event_handler("failed_auth", refused)
    client.connect(host, port)
    await asyncio.wait_for(started, TIMEOUT)
    return client


async def c2s_join(client: slixmpp.ClientXMPP, room: str, nick: str) -> None:
    """Join a MUC; raises (through slixmpp) when the room refuses."""
    muc = client.plugin["xep_0045"]
    await muc.join_muc_wait(slixmpp.JID(room), nick, maxstanzas=0, timeout=TIMEOUT)


async def c2s_close(client: slixmpp.ClientXMPP) -> None:
    client.disconnect()
    await asyncio.sleep(0)
