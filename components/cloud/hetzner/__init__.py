"""Hetzner Cloud: network, signaling server, bridge pool, and the stack's composition."""
