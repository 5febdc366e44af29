"""Every port of the deployment, in one place: the VMs' listeners and what the firewalls open.

Visitor node N listens on base + N (c2s 52220+N, s2s 52690+N, http 52800+N): equal to
upstream's 5222N/5269N/5280N for N <= 9 and still distinct from N = 10 on, where upstream's
string concatenation breaks.
"""

from __future__ import annotations

from typing import Final

# The main prosody.
MAIN_C2S_PORT: Final = 5222
MAIN_S2S_PORT: Final = 5269
MAIN_HTTP_PORT: Final = 5280
# Visitor nodes: base + node index.
NODE_C2S_BASE: Final = 52220
NODE_S2S_BASE: Final = 52690
NODE_HTTP_BASE: Final = 52800
# jicofo's REST API (health), on loopback.
JICOFO_REST_PORT: Final = 8888
# nginx. 443 is a TLS multiplexer (the stream module, by ALPN): web clients reach the https
# server on HTTPS_BACKEND_PORT, TURN clients reach coturn's TLS port through
# TURNS_BACKEND_PORT, a hop that removes the PROXY header coturn cannot read. Both loopback.
HTTP_PORT: Final = 80
HTTPS_PORT: Final = 443
HTTPS_BACKEND_PORT: Final = 4444
TURNS_BACKEND_PORT: Final = 4445
# coturn: UDP for clients that can send it; TLS only from nginx (clients use 443).
TURN_PORT: Final = 3478
TURNS_PORT: Final = 5349
# coturn's relayed transport addresses (one port per allocation), above the visitor nodes'.
TURN_RELAY_MIN_PORT: Final = 53000
TURN_RELAY_MAX_PORT: Final = 65535
# The videobridge: media (ICE/RTP and relays), colibri WebSockets, REST API on loopback.
JVB_MEDIA_PORT: Final = 10000
JVB_WEBSOCKET_PORT: Final = 9090
JVB_PRIVATE_PORT: Final = 8080
# A bridge's agent: its stress, read-only, for the Hetzner autoscaler on the private network.
BRIDGE_STATS_PORT: Final = 8081


def node_ports(index: int) -> tuple[int, int, int]:
    """(c2s, s2s, http) of visitor node `index` (1-based)."""
    return NODE_C2S_BASE + index, NODE_S2S_BASE + index, NODE_HTTP_BASE + index


# Ports that something else on the signaling VM or a bridge already uses, or that clients
# expect: no visitor node may take one.
STANDARD_PORTS: Final = frozenset(
    {22, 53, HTTP_PORT, HTTPS_PORT, TURN_PORT, MAIN_C2S_PORT, MAIN_S2S_PORT, MAIN_HTTP_PORT,
     5281, 5347, TURNS_PORT, JVB_PRIVATE_PORT, JICOFO_REST_PORT, JVB_WEBSOCKET_PORT,
     JVB_MEDIA_PORT, HTTPS_BACKEND_PORT, TURNS_BACKEND_PORT, BRIDGE_STATS_PORT}
)  # fmt: skip
