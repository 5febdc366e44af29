"""TURN clients for the twin: credentials as prosody hands them out, coturn's own test client
and echo peer (`turnutils_uclient`, `turnutils_peer`, from Debian's coturn), and TLS probes of
the multiplexer on 443.

`turnutils_uclient` allocates a relay, binds a channel to the peer (coturn checks the peer's
address there: a denied one is answered `403 Forbidden IP`) and sends messages that the peer
echoes back through the relay.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.xmpp_clients import insecure_tls

STUN_MAGIC: Final = 0x2112A442
STUN_BINDING_REQUEST: Final = 0x0001
STUN_BINDING_SUCCESS: Final = 0x0101
PEER_PORT: Final = 3480  # turnutils_peer's default
MESSAGES: Final = 5


def rest_credentials(secret: str, ttl: int, label: str) -> tuple[str, str]:
    """(username, password) of the TURN REST API, as prosody's mod_external_services makes
    them: the expiry time, and base64(HMAC-SHA1(secret, username)). `label` after the colon
    keeps each test's allocations under a user quota of their own."""
    username = f"{int(time.time()) + ttl}:{label}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


@dataclass(frozen=True)
class RelayRun:
    """What turnutils_uclient reported."""

    returncode: int
    output: str

    @property
    def refused(self) -> bool:
        return "403 (Forbidden IP)" in self.output

    @property
    def transport_refused(self) -> bool:
        return "error 442" in self.output

    @property
    def echoed(self) -> bool:
        """Every message reached the peer through the relay and came back."""
        return (
            self.returncode == 0
            and f"tot_send_msgs={MESSAGES}, tot_recv_msgs={MESSAGES}" in self.output
        )


def relay(
    uclient: str,
    netns: Path,
    *,
    server: str,
    port: int,
    credentials: tuple[str, str],
    peer: str,
    tls: bool = False,
    tcp_relay: bool = False,
) -> RelayRun:
    """One relay session from a host in `netns` through coturn at server:port to `peer`: over
    UDP, or over TLS on TCP (`-t -S`; `-S` alone would be DTLS). `tcp_relay` asks for a TCP
    relay (RFC 6062) instead of a UDP one, between two clients of its own (`-T`)."""
    username, password = credentials
    # The password reaches turnutils_uclient as an argument, the only way it takes one. It is
    # a REST credential derived for this run from the twin's throwaway secret, and expires
    # with the TTL; the secret itself never appears on a command line.
    argv = [uclient, "-u", username, "-w", password, "-e", peer, "-r", str(PEER_PORT),
            "-n", str(MESSAGES), "-c", "-p", str(port), *(["-t", "-S"] if tls else []),
            *(["-T"] if tcp_relay else []), server]  # fmt: skip
    done = subprocess.run(
        ["nsenter", f"--net={netns}", "--", *argv],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return RelayRun(done.returncode, done.stdout + done.stderr)


def echo_peer(peer_tool: str, netns: Path, address: str) -> subprocess.Popen[bytes]:
    """turnutils_peer on `address` in `netns`: echoes what a relay sends it. nsenter execs
    the tool, so the process's id is the peer's own (end it with terminate())."""
    return subprocess.Popen(
        ["nsenter", f"--net={netns}", "--", peer_tool, "-L", address, "-p", str(PEER_PORT)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@dataclass(frozen=True)
class TlsAnswer:
    """Who answered a TLS connection: the protocol it chose, and what it said."""

    alpn: str | None
    stun_binding: bool = False
    http_status: str = ""
    http_server: str = ""


def tls_probe(
    host: str, port: int, server_name: str, offer: list[str] | None, *, http: bool, path: str = "/"
) -> TlsAnswer:
    """A TLS connection offering `offer` by ALPN (None: no ALPN at all), then an HTTP request
    (`http`) or a STUN binding request. coturn answers both (it serves a status page), so
    the HTTP answer's Server header tells nginx from coturn."""
    context = insecure_tls()
    if offer is not None:
        context.set_alpn_protocols(offer)
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as conn,
    ):
        chosen = conn.selected_alpn_protocol()
        if not http:
            return TlsAnswer(chosen, stun_binding=_stun_binding(conn))
        conn.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode()
        )
        head = _read_head(conn).split("\r\n")
        server = next(
            (h.split(":", 1)[1].strip() for h in head if h.lower().startswith("server:")), ""
        )
        return TlsAnswer(chosen, http_status=head[0], http_server=server)


def _stun_binding(conn: ssl.SSLSocket) -> bool:
    transaction = os.urandom(12)
    conn.sendall(struct.pack("!HHI", STUN_BINDING_REQUEST, 0, STUN_MAGIC) + transaction)
    header = b""
    while len(header) < 20 and (chunk := conn.recv(20 - len(header))):
        header += chunk
    if len(header) < 20:
        return False
    kind, _length, magic = struct.unpack("!HHI", header[:8])
    return kind == STUN_BINDING_SUCCESS and magic == STUN_MAGIC and header[8:] == transaction


def _read_head(conn: ssl.SSLSocket) -> str:
    """An HTTP answer's status line and headers."""
    data = b""
    while b"\r\n\r\n" not in data and (chunk := conn.recv(4096)):
        data += chunk
    return data.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
