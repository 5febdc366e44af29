"""Credentials the signaling VM and bridges share, and how they reach the VMs.

Under `pulumi up` they come from `pulumi_random` resources and stay Pulumi secrets. Offline,
`xxl render` makes throwaway values (and says so).

Config files never hold a secret: templates place `placeholder(name)` and the bootstrap fills
it at boot from `/etc/jitsi/xxl/secrets.env`. That file is the only carrier of values: on
Hetzner it travels in the user data (there is no secret store), on AWS the VM fetches it from
SSM Parameter Store, so AWS user data holds no secret at all. Golden files, plan output and
user data on AWS are therefore shareable as they are.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, fields
from typing import Final

# Length of generated passwords: 32 URL-safe characters carry 192 bits.
TOKEN_BYTES = 24
# Generated values are letters, digits, "-" and "_" (RandomPassword with special=False,
# token_urlsafe): they need no escaping in quoted HOCON or Lua, coturn's file or shell.
VALUE: Final = re.compile(r"[A-Za-z0-9_-]{16,128}")
PLACEHOLDER: Final = re.compile(r"@@XXL_SECRET_([A-Z0-9_]+)@@")


def env_name(field: str) -> str:
    """A credential's variable in secrets.env and name in SSM: jvb_password -> JVB_PASSWORD."""
    return field.upper()


def placeholder(field: str) -> str:
    """What a config file holds instead of a credential until the bootstrap fills it."""
    return f"@@XXL_SECRET_{env_name(field)}@@"


@dataclass(frozen=True)
class Credentials:
    """Shared secrets of one stack."""

    jicofo_password: str  # focus@auth.<domain> on the main prosody
    jvb_password: str  # jvb@auth.<domain>, the bridges' login
    visitor_focus_password: str  # focus@auth.meet.jitsi on every visitor node
    turn_secret: str  # coturn's static-auth-secret, shared with prosody's external_services
    jwt_app_secret: str  # HS256 key of the hosts' tokens (prosody's app_secret; `xxl token`)

    @classmethod
    def throwaway(cls) -> Credentials:
        """Fresh random values, for offline renders that are never deployed."""
        return cls(**{f.name: secrets.token_urlsafe(TOKEN_BYTES) for f in fields(cls)})

    @classmethod
    def placeholders(cls) -> Credentials:
        """What the templates see: every config file is rendered with these."""
        return cls(**{f.name: placeholder(f.name) for f in fields(cls)})

    def values(self) -> tuple[str, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    def env(self, wanted: tuple[str, ...]) -> dict[str, str]:
        """The `secrets.env` entries for the credentials a VM needs, by variable name."""
        return {env_name(name): getattr(self, name) for name in wanted}


# What each VM needs: a bridge knows its own login and nothing else.
SIGNALING_SECRETS: Final = tuple(f.name for f in fields(Credentials))
BRIDGE_SECRETS: Final = ("jvb_password",)


@dataclass(frozen=True)
class TlsMaterial:
    """A certificate and key supplied by the operator (`tls.mode: provided`)."""

    certificate: str
    private_key: str
