"""Host tokens: the claims Jitsi's token plugins check, decided in one place.

`mod_auth_token` (through `token/util.lib.lua`) verifies the HS256 signature with the stack's
app secret, `exp`/`nbf`, and that `iss` is our app id; `token_verification` then checks that
`room` names the room (or is `*`) and that `sub` is the site's domain (or `*`). jicofo reads
`context.group` (unverified, prosody has verified it) and keeps members of `STAGE_GROUP` in the
main room; `context.user.moderator` makes a host a moderator (`mod_xxl_stage`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

APP_ID: Final = "jitsi-xxl"
AUDIENCE: Final = "jitsi"
STAGE_GROUP: Final = "jitsi-xxl-stage"
ALGORITHM: Final = "HS256"
# Prosody refuses tokens for which verification fails; keep the clock margin small.
NOT_BEFORE_SKEW_SECONDS: Final = 60
MAX_HOURS: Final = 72
ROOM: Final = re.compile(r"\*|[a-z0-9][a-z0-9._-]{0,63}")


@dataclass(frozen=True)
class HostToken:
    """What one host link grants."""

    name: str
    domain: str
    room: str = "*"
    moderator: bool = False
    hours: float = 12.0

    def claims(self, now: int) -> dict[str, Any]:
        """The JWT payload for a token issued at `now` (seconds since the epoch)."""
        user_id = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "host"
        return {
            "iss": APP_ID,
            "aud": AUDIENCE,
            "sub": self.domain,
            "room": self.room,
            "iat": now,
            "nbf": now - NOT_BEFORE_SKEW_SECONDS,
            "exp": now + int(self.hours * 3600),
            "context": {
                "group": STAGE_GROUP,
                "user": {
                    "id": user_id,
                    "name": self.name,
                    "moderator": self.moderator,
                },
            },
        }


def host_link(domain: str, room: str, token: str) -> str:
    """The link a host opens: the web app passes `jwt` on to prosody and jicofo."""
    path = "" if room == "*" else room
    return f"https://{domain}/{path}?jwt={token}"
