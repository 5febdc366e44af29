"""One process's share of a load run: viewers joining on a schedule, or the hosts on stage.

Run as ``python -m components.load.crowd`` inside the network namespace the load comes from,
with a JSON plan on stdin (host tokens travel there, never on a command line); it prints one
JSON result on stdout. Everything happens at wall-clock times the plan gives, so the hosts'
process and the viewers' processes keep one timeline without talking to each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from components.load.session import JoinError, Session, Target

JOIN_TIMEOUT = 90.0  # one viewer's whole join; past it the join counts as failed
LEAVE_CONCURRENCY = 200


@dataclass(frozen=True)
class ViewerPlan:
    """Viewers `first` .. `first + count - 1`, joining at `rate` per second from `start`."""

    target: Target
    sources: tuple[str, ...]
    first: int
    count: int
    start: float
    rate: float
    split: float  # stanzas received before this time count as the join's
    leave: float
    ping_interval: float
    tag: str  # nicks of this run: no leftover of another run holds them


@dataclass(frozen=True)
class StagePlan:
    """The hosts: they join at `start`, chat and change presence at the given times, leave."""

    target: Target
    tokens: tuple[str, ...]  # the first is a moderator's
    start: float
    chats: tuple[tuple[float, str], ...]
    presence: tuple[float, ...]
    leave: float
    tag: str


@dataclass
class ViewerResult:
    index: int
    started: float = 0.0
    joined: float | None = None
    node: str = ""
    error: str = ""
    stanzas_joining: int = 0  # received before the plan's split time
    stanzas: int = 0
    chats: dict[str, float] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)  # seconds per step of the join


async def _at(when: float) -> None:
    delay = when - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


class Crowd:
    """The viewers of one process: each joins at its slot, then listens and pings."""

    def __init__(self, plan: ViewerPlan) -> None:
        self.plan = plan
        self.sessions: dict[int, Session] = {}
        self.results: list[ViewerResult] = []

    async def one(self, index: int) -> None:
        plan, result = self.plan, ViewerResult(index)
        self.results.append(result)
        await _at(plan.start + (index - plan.first) / plan.rate)
        source = plan.sources[index % len(plan.sources)] if plan.sources else None
        session = Session(plan.target, f"{plan.tag}{index:05d}", f"viewer {index}", source=source)
        result.started = time.time()
        try:
            await asyncio.wait_for(session.join(), JOIN_TIMEOUT)
        except (JoinError, TimeoutError) as exc:
            result.error = str(exc) or "join timed out"
            await session.close()
            return
        except asyncio.CancelledError:
            result.error = "still joining when the run ended"
            await session.close()
            raise
        result.joined = time.time()
        result.node = session.vnode
        result.steps = dict(session.steps)
        session.listen()
        self.sessions[index] = session

    async def keepalive(self) -> None:
        """One loop for every session, spread over the interval like independent browsers."""
        while True:
            live = list(self.sessions.values())
            step = self.plan.ping_interval / max(1, len(live))
            for session in live:
                with contextlib.suppress(JoinError):
                    await session.ping()
                await asyncio.sleep(step)
            if not live:
                await asyncio.sleep(self.plan.ping_interval)

    async def split(self) -> None:
        await _at(self.plan.split)
        for result in self.results:
            if result.index in self.sessions:
                result.stanzas_joining = self.sessions[result.index].stanzas

    async def leave(self) -> None:
        for result in self.results:
            session = self.sessions.get(result.index)
            if session is not None:
                result.stanzas, result.chats = session.stanzas, dict(session.chats)
        gate = asyncio.Semaphore(LEAVE_CONCURRENCY)

        async def close(session: Session) -> None:
            async with gate:
                await session.close()

        await asyncio.gather(*(close(s) for s in self.sessions.values()), return_exceptions=True)


async def run_viewers(plan: ViewerPlan) -> dict[str, Any]:
    crowd = Crowd(plan)
    joins = [
        asyncio.ensure_future(crowd.one(i)) for i in range(plan.first, plan.first + plan.count)
    ]
    pinger = asyncio.ensure_future(crowd.keepalive())
    splitter = asyncio.ensure_future(crowd.split())
    await _at(plan.leave)
    pinger.cancel()
    for task in joins:
        task.cancel()
    await asyncio.gather(*joins, splitter, return_exceptions=True)
    await crowd.leave()
    return {"viewers": [asdict(r) for r in sorted(crowd.results, key=lambda r: r.index)]}


async def run_stage(plan: StagePlan) -> dict[str, Any]:
    await _at(plan.start)
    hosts: list[Session] = []
    sent: dict[str, float] = {}
    errors: list[str] = []
    try:
        for i, token in enumerate(plan.tokens):
            host = Session(plan.target, f"{plan.tag}host{i}", f"host {i}", token=token)
            await asyncio.wait_for(host.join(), JOIN_TIMEOUT)
            host.listen()
            hosts.append(host)
        joined = time.time()
        events: list[tuple[float, str, str]] = [(t, "chat", body) for t, body in plan.chats]
        events += [(t, "presence", "") for t in plan.presence]
        for n, (when, kind, body) in enumerate(sorted(events)):
            await _at(when)
            speaker = hosts[n % len(hosts)]
            if kind == "chat":
                sent[body] = time.time()
                await speaker.say(body)
            else:
                await speaker.change_presence(audio_muted=n % 2 == 0)
        await _at(plan.leave)
    except (JoinError, TimeoutError) as exc:
        errors.append(str(exc) or "host join timed out")
        joined = 0.0
    finally:
        for host in hosts:
            await host.close()
    return {"hosts": len(hosts), "joined": joined, "sent": sent, "errors": errors}


def _target(data: dict[str, Any]) -> Target:
    return Target(data["address"], int(data["port"]), data["domain"], data["room"])


def main() -> int:
    spec = json.load(sys.stdin)
    # thousands of sockets: as many open files as this process may have
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    target = _target(spec["target"])
    if spec["role"] == "stage":
        stage = StagePlan(
            target, tuple(spec["tokens"]), spec["start"],
            tuple((float(t), str(b)) for t, b in spec["chats"]),
            tuple(float(t) for t in spec["presence"]), spec["leave"], spec["tag"],
        )  # fmt: skip
        result = asyncio.run(run_stage(stage))
    else:
        viewers = ViewerPlan(
            target, tuple(spec["sources"]), spec["first"], spec["count"], spec["start"],
            spec["rate"], spec["split"], spec["leave"], spec["ping_interval"], spec["tag"],
        )  # fmt: skip
        result = asyncio.run(run_viewers(viewers))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    result["max_rss_kib"] = usage.ru_maxrss
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
