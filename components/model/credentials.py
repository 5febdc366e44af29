"""Credentials the signaling VM and bridges share: inputs to rendering, never made up in a template.

Under `pulumi up` they come from `pulumi_random` resources and stay Pulumi secrets. Offline,
`xxl render` makes throwaway values (and says so); the golden tests use the placeholders,
so no golden file ever holds a real secret.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, fields

# Length of generated passwords: 32 URL-safe characters carry 192 bits.
TOKEN_BYTES = 24


@dataclass(frozen=True)
class Credentials:
    """Shared secrets of one stack."""

    jicofo_password: str  # focus@auth.<domain> on the main prosody
    jvb_password: str  # jvb@auth.<domain>, the bridges' login
    visitor_focus_password: str  # focus@auth.meet.jitsi on every visitor node
    turn_secret: str  # coturn's static-auth-secret, shared with prosody's external_services

    @classmethod
    def throwaway(cls) -> Credentials:
        """Fresh random values, for offline renders that are never deployed."""
        return cls(**{f.name: secrets.token_urlsafe(TOKEN_BYTES) for f in fields(cls)})

    @classmethod
    def placeholders(cls) -> Credentials:
        """Visible stand-ins, for golden files and other shareable renders."""
        return cls(**{f.name: f"@@{f.name.upper()}@@" for f in fields(cls)})

    def values(self) -> tuple[str, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class TlsMaterial:
    """A certificate and key supplied by the operator (`tls.mode: provided`)."""

    certificate: str
    private_key: str
