"""The visitors flow as browsers live it, against a running signaling twin.

Plain async functions that take an `Endpoint` and raise AssertionError (or TimeoutError) when
the twin misbehaves; the twin tests call them. `main_participants` must equal jicofo's
``visitors.max-participants`` and `per_node` its ``max-visitors-per-node``; `auto_promotion`
must match ``auto_allow_visitor_promotion`` on the visitors component.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.twin_clients import Browser, Endpoint, JoinRefusedError, LoginRefusedError

# A host token for (name, moderator), signed with the stack's app secret; None: anonymous hosts.
Tokens = Callable[[str, bool], str] | None

QUIET: float = 3.0  # how long "nothing arrives" is watched for


@dataclass
class Outcome:
    """What a scenario saw, for the test's message."""

    main: list[str] = field(default_factory=list)
    visitors: dict[str, str] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)

    def ok(self, what: str) -> None:
        self.checks.append(what)


async def _close(browsers: list[Browser]) -> None:
    for b in browsers:
        with contextlib.suppress(Exception):
            await b.close()


async def join_main(
    endpoint: Endpoint, room: str, count: int, outcome: Outcome, tokens: Tokens = None
) -> list[Browser]:
    """`count` hosts land in the main room. With tokens the first holds a moderator token and
    the others plain host tokens; anonymous, the first joiner is made moderator."""
    main: list[Browser] = []
    for i in range(count):
        name = f"speaker-{i}"
        b = Browser(endpoint, room, name, tokens(name, i == 0) if tokens else None)
        main.append(b)
        vnode = await b.join()
        assert vnode == "", f"{b.name} (joiner {i + 1} of {count}) was sent to {vnode}"
        outcome.main.append(b.nick)
    await main[0].wait_role("moderator")
    if tokens:
        await asyncio.sleep(QUIET)
        others = [b.name for b in main[1:] if b.role != "participant"]
        assert not others, f"hosts without a moderator token became {others}"
    outcome.ok(f"{count} participant(s) in the main room, {main[0].name} moderator")
    return main


async def join_visitors(
    endpoint: Endpoint, room: str, count: int, per_node: int, outcome: Outcome
) -> list[Browser]:
    """Later joiners are redirected to visitor nodes, at most `per_node` on one node first."""
    visitors: list[Browser] = []
    for i in range(count):
        b = Browser(endpoint, room, f"viewer-{i}")
        visitors.append(b)
        vnode = await b.join()
        assert vnode, f"{b.name} was not redirected to a visitor node"
        assert b.role == "visitor", f"{b.name} joined {b.room_jid} as {b.role}, not visitor"
        outcome.visitors[b.nick] = vnode
    nodes = list(outcome.visitors.values())
    assert nodes.count(nodes[0]) == min(per_node, count), f"spread over nodes: {nodes}"
    outcome.ok(f"{count} visitor(s) redirected: {nodes}")
    return visitors


async def visitors_flow(
    endpoint: Endpoint,
    *,
    main_participants: int,
    per_node: int,
    auto_promotion: bool,
    tokens: Tokens = None,
    room: str = "",
) -> Outcome:
    """Join, presence, chat both ways, visitors hidden from each other, polls, raise hand.

    An approved visitor returns to the main room under the username the visitors component
    granted (``customusername``). Only token authentication applies it (``mod_auth_token`` fires
    ``pre-jitsi-authentication``; ``jitsi-anonymous`` does not), so with an anonymous main host
    and moderated promotion the main room refuses the return with ``promotion-not-allowed``:
    without `tokens` that refusal is what this scenario expects.
    """
    room = room or f"twin{uuid.uuid4().hex[:6]}"
    outcome = Outcome()
    browsers: list[Browser] = []
    try:
        main = await join_main(endpoint, room, main_participants, outcome, tokens)
        browsers += main
        visitors = await join_visitors(endpoint, room, per_node + 1, per_node, outcome)
        browsers += visitors
        await presence_and_chat(main, visitors, outcome)
        await visitors_hidden(visitors, outcome)
        await polls(main[0], visitors, outcome)
        await promotion(
            main[0], visitors[0], outcome, auto=auto_promotion, token_auth=tokens is not None
        )
    finally:
        await _close(browsers)
    return outcome


async def presence_and_chat(main: list[Browser], visitors: list[Browser], outcome: Outcome) -> None:
    """Main presences and chat reach every visitor; a visitor's chat reaches the main room."""
    for v in visitors:
        for m in main:
            await v.sees(m.nick)
    outcome.ok("main participants' presence reached every visitor")
    await main[0].say("welcome, viewers")
    for v in visitors:
        await v.heard("welcome, viewers")
    outcome.ok("main chat reached every visitor")
    await visitors[0].say("hello from the audience")
    for m in main:
        await m.heard("hello from the audience")
    outcome.ok("a visitor's chat reached the main room")


async def visitors_hidden(visitors: list[Browser], outcome: Outcome) -> None:
    """Visitors on one node never receive each other's presence."""
    first = visitors[0]
    same_node = [v for v in visitors if v.vnode == first.vnode]
    await asyncio.sleep(QUIET)
    for v in same_node:
        others = {o.nick for o in same_node if o is not v}
        seen = others & set(v.occupants())
        assert not seen, f"{v.name} sees other visitors {seen} on {v.vnode}"
    outcome.ok(f"visitors on {first.vnode} do not see each other ({len(same_node)} there)")


async def polls(moderator: Browser, visitors: list[Browser], outcome: Outcome) -> None:
    """A main-room poll reaches every visitor; a visitor's vote reaches the main room."""
    poll_id = uuid.uuid4().hex[:8]
    await moderator.create_poll(poll_id, "Ready?", ["yes", "no"])
    for v in visitors:
        await v.poll_event("new-poll", poll_id)
    await visitors[0].answer_poll(poll_id, [True, False])
    await moderator.poll_event("answer-poll", poll_id)
    outcome.ok("a poll reached the visitors and a visitor's answer reached the main room")


async def promotion(
    moderator: Browser, visitor: Browser, outcome: Outcome, *, auto: bool, token_auth: bool
) -> None:
    """Raise hand: promoted at once (auto) or after the moderator's approval."""
    await visitor.raise_hand()
    if auto:
        response = await visitor.promoted()
        outcome.ok("raised hand promoted automatically")
    else:
        request = await moderator.promotion_request()
        with contextlib.suppress(TimeoutError):
            early = await visitor.promoted(timeout=QUIET)
            raise AssertionError(f"promoted before any approval: {early}")
        outcome.ok("a raised hand waits for the moderator")
        assert request.get("on") is True, f"promotion request: {request}"
        outcome.ok(f"raised hand reached the moderator ({request.get('nick')})")
        await moderator.approve(request)
        response = await visitor.promoted()
        outcome.ok("the moderator's approval reached the visitor")
    if not auto and not token_auth:
        refused: JoinRefusedError | None = None
        try:
            await visitor.follow_promotion(response)
        except JoinRefusedError as exc:
            refused = exc
        assert refused is not None, "anonymous host admitted an approved visitor without its name"
        assert "promotion-not-allowed" in refused.jitsi, str(refused)
        outcome.ok("anonymous host: the approved visitor's return is refused as expected")
        return
    await visitor.follow_promotion(response)
    assert visitor.role in ("participant", "moderator"), f"promoted visitor is {visitor.role}"
    await moderator.sees(visitor.nick)
    outcome.ok(f"the promoted visitor joined the main room as {visitor.role}")


async def stage_is_for_hosts(
    endpoint: Endpoint,
    tokens: Callable[[str, bool], str],
    refused_tokens: dict[str, str],
    brewery: str,
    room: str = "",
) -> Outcome:
    """With token hosts: no one without a token reaches the stage or the brewery, at any time."""
    room = room or f"stage{uuid.uuid4().hex[:6]}"
    outcome = Outcome()
    browsers: list[Browser] = []
    try:
        early = Browser(endpoint, room, "early-viewer")
        browsers.append(early)
        vnode = await early.join()
        assert vnode, "the first joiner, without a token, was let into the main room"
        assert early.role == "visitor", f"first joiner is {early.role} on {vnode}"
        outcome.ok(f"the very first joiner, without a token, is a viewer on {vnode}")
        await _refused_on_stage(Browser(endpoint, room, "gatecrasher"), browsers, outcome)
        host = Browser(endpoint, room, "host", tokens("host", True))
        browsers.append(host)
        assert await host.join() == "", "a host token was sent to a visitor node"
        await host.wait_role("moderator")
        outcome.ok("a host with a moderator token is a moderator in the main room")
        late = Browser(endpoint, room, "late-viewer")
        browsers.append(late)
        assert await late.join(), "a joiner without a token was let into the main room"
        assert late.role == "visitor", f"late joiner is {late.role}"
        outcome.ok("a joiner without a token after the host is a viewer too")
        await _refused_on_stage(Browser(endpoint, room, "gatecrasher-2"), browsers, outcome)
        for what, token in refused_tokens.items():
            with contextlib.suppress(LoginRefusedError):
                await Browser(endpoint, room, what, token).connect()
                raise AssertionError(f"a token {what} was accepted")
            outcome.ok(f"a token {what} is refused at login")
        await _brewery_closed(Browser(endpoint, room, "fake-bridge"), brewery, browsers, outcome)
    finally:
        await _close(browsers)
    return outcome


async def _refused_on_stage(b: Browser, browsers: list[Browser], outcome: Outcome) -> None:
    """A client without a token that skips jicofo and joins the main room directly."""
    browsers.append(b)
    await b.connect()
    with contextlib.suppress(JoinRefusedError):
        await b.enter_room()
        raise AssertionError(f"{b.name} joined the main room as {b.role} without a token")
    outcome.ok(f"{b.name}: a direct join of the main room without a token is refused")


async def _brewery_closed(
    b: Browser, brewery: str, browsers: list[Browser], outcome: Outcome
) -> None:
    browsers.append(b)
    await b.connect()
    me = f"{brewery}/{b.nick}"
    await b.send(
        f'<presence xmlns="jabber:client" to="{me}"><x xmlns="http://jabber.org/protocol/muc"/></presence>'
    )
    with contextlib.suppress(TimeoutError):
        got = await b.wait_for(lambda s: s.get("from") == me, "brewery presence", QUIET)
        assert got.get("type") == "error", f"{b.name} entered the brewery: {got}"
    outcome.ok("a client that is not the bridges' account cannot enter the brewery")
