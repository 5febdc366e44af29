"""`xxl token`: a host's link, an HS256 JWT signed with the stack's app secret.

The secret comes from the deployed stack's secret output (through the Automation API, so the
Pulumi CLI and the stack's backend must be at hand) or, offline, from `--secret-file`. It is
never printed, logged or put on a command line; only the link is printed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from components.cloud.outputs import OUTPUT_JWT_APP_SECRET
from components.model.credentials import VALUE
from components.model.settings import AuthMode, Settings, UsageError
from components.model.tokens import ALGORITHM, MAX_HOURS, ROOM, HostToken, host_link

MAX_NAME = 64


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encode(claims: Mapping[str, Any], secret: str) -> str:
    """A compact JWS (RFC 7515) with HS256: header.payload.signature, base64url without pad."""
    header = _b64(json.dumps({"alg": ALGORITHM, "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def check_request(settings: Settings, name: str, room: str, hours: float) -> list[str]:
    """Every problem with the request, each naming its argument and what is allowed."""
    problems: list[str] = []
    if settings.auth.mode is not AuthMode.jwt:
        problems.append(
            f"auth.mode is {settings.auth.mode.value}: hosts need no token; allowed: a stack "
            "with auth.mode jwt (the default)"
        )
    if not name.strip() or len(name) > MAX_NAME or not name.isprintable():
        problems.append(f"--name {name!r}: allowed: 1 to {MAX_NAME} printable characters")
    if not ROOM.fullmatch(room):
        problems.append(
            f"--room {room!r}: allowed: * (any room) or a lowercase room name of letters, "
            "digits, '.', '_' and '-' (at most 64)"
        )
    if not 0 < hours <= MAX_HOURS:
        problems.append(f"--hours {hours}: allowed: more than 0, at most {MAX_HOURS}")
    return problems


def read_secret_file(path: Path) -> str:
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError([f"--secret-file {path}: cannot be read ({exc.strerror})"]) from exc
    except UnicodeDecodeError as exc:
        raise UsageError([f"--secret-file {path}: not UTF-8 text"]) from exc
    if not VALUE.fullmatch(secret):
        raise UsageError(
            [f"--secret-file {path}: does not hold an app secret; allowed: the stack's "
             f"{OUTPUT_JWT_APP_SECRET} output, 16 to 128 letters, digits, '-' or '_'"]
        )  # fmt: skip
    return secret


def secret_from_stack(stack_name: str) -> str:
    """The app secret of a deployed stack (its secret output), through the Automation API."""
    from pulumi import automation  # noqa: PLC0415 - only with a Pulumi CLI to drive

    from components.offline.events import PROJECT_DIR  # noqa: PLC0415

    try:
        stack = automation.select_stack(stack_name=stack_name, work_dir=str(PROJECT_DIR))
        output = stack.outputs().get(OUTPUT_JWT_APP_SECRET)
    except Exception as exc:  # the CLI missing, no such stack, no backend login
        raise UsageError(
            [f"--stack: cannot read the deployed stack {stack_name!r} ({type(exc).__name__}); "
             "allowed: a stack that `pulumi up` deployed, or pass --secret-file"]
        ) from exc  # fmt: skip
    if output is None or not isinstance(output.value, str):
        raise UsageError(
            [f"--stack: {stack_name!r} has no {OUTPUT_JWT_APP_SECRET} output; allowed: a stack "
             "deployed with auth.mode jwt, or pass --secret-file"]
        )  # fmt: skip
    return output.value


def host_token_link(
    settings: Settings,
    *,
    name: str,
    room: str,
    hours: float,
    moderator: bool,
    secret: Callable[[], str],
    now: Callable[[], float] = time.time,
) -> str:
    problems = check_request(settings, name, room, hours)
    if problems:
        raise UsageError(problems)
    token = HostToken(
        name=name, domain=settings.domain, room=room, moderator=moderator, hours=hours
    )
    return host_link(settings.domain, room, encode(token.claims(int(now())), secret()))
