"""A load run against a booted twin: hosts on stage, a crowd ramping in, holding, leaving.

The crowd comes from the twin's own Internet (the `internet` host's network namespace, one
address per site behind a NAT) to the VM's public address on 443, through nginx's TLS
multiplexer, as browsers do; nothing goes through the host's loopback forwarders. Crowd and
hosts run in child processes (``components.load.crowd``) so that the generator's own CPU is
measured apart from the servers'. The timeline:

    hosts join -> viewers ramp in at `ramp` per second -> settle -> split -> hold -> leave

Stanzas received before the split are the joins' own; during the hold the hosts chat and
change presence, and the time until the last viewer has each chat message is measured.
"""

from __future__ import annotations

import json
import math
import secrets
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from components.load import probes
from components.load.session import Target
from components.model.ports import HTTPS_PORT
from components.model.tokens import HostToken
from components.offline.host_tokens import encode
from components.twin import rig
from components.twin.image import tool

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
STARTUP: Final = 3.0  # for the child processes to import and connect
HOSTS_ON_STAGE: Final = 5.0  # hosts join before the doors open
SETTLE: Final = 10.0  # after the planned ramp end, for stragglers
VIEWERS_PER_WORKER: Final = 6000
MIN_HOLD: Final = 20.0  # the hosts' three chats and two presence changes need the time


class LoadError(Exception):
    """The run could not be carried out (not: some joins failed; that is a result)."""


@dataclass(frozen=True)
class LoadSpec:
    viewers: int
    ramp: float  # joins per second
    hold: float  # seconds everyone stays after the split
    hosts: int = 3
    sites: int = 16
    workers: int = 1
    ping_interval: float = 10.0
    room: str = "townhall"

    def __post_init__(self) -> None:
        if self.viewers < 1 or self.ramp <= 0 or self.hold < MIN_HOLD or self.hosts < 1:
            raise LoadError(f"viewers >= 1, ramp > 0, hold >= {MIN_HOLD} s, hosts >= 1: {self}")


@dataclass(frozen=True)
class Timeline:
    stage: float
    start: float
    split: float
    chats: tuple[tuple[float, str], ...]
    presence: tuple[float, ...]
    leave: float


def timeline(spec: LoadSpec, now: float) -> Timeline:
    stage = now + STARTUP
    start = stage + HOSTS_ON_STAGE + spec.hosts
    split = start + spec.viewers / spec.ramp + SETTLE
    leave = split + spec.hold
    chats = tuple((split + f * spec.hold, f"chat-{i}") for i, f in enumerate((0.1, 0.4, 0.7)))
    presence = (split + 0.25 * spec.hold, split + 0.55 * spec.hold)
    return Timeline(stage, start, split, chats, presence, leave)


@dataclass
class LoadRun:
    """What one run measured: per viewer, per host message, per server sample."""

    spec: LoadSpec
    label: str
    timeline: Timeline
    viewers: list[dict[str, Any]]
    stage: dict[str, Any]
    samples: list[probes.Sample]
    generator_cpu: float
    notes: list[str] = field(default_factory=list)


def host_tokens(twin: rig.Twin, count: int) -> tuple[str, ...]:
    """Host links as `xxl token` makes them: the first a moderator."""
    now = int(time.time())
    return tuple(
        encode(
            HostToken(name=f"host {i}", domain=twin.settings.domain, moderator=i == 0, hours=1)
            .claims(now),
            twin.creds.jwt_app_secret,
        )
        for i in range(count)
    )  # fmt: skip


def run(twin: rig.Twin, spec: LoadSpec, label: str = "") -> LoadRun:
    """One load run; raises LoadError when it cannot be carried out."""
    if twin.box is None:
        raise LoadError("the twin is not running")
    target = Target(rig.PUBLIC_IP, HTTPS_PORT, twin.settings.domain, spec.room)
    sites = twin.internet_sites(spec.sites)
    plan = timeline(spec, time.time())
    tag = secrets.token_hex(2)
    target_data = {"address": target.address, "port": target.port, "domain": target.domain,
                   "room": target.room}  # fmt: skip
    tokens = host_tokens(twin, spec.hosts) if twin.settings.auth.mode.value == "jwt" else ()
    specs: list[dict[str, Any]] = [{
        "role": "stage", "target": target_data, "tokens": list(tokens) or [""] * spec.hosts,
        "start": plan.stage, "chats": [list(c) for c in plan.chats],
        "presence": list(plan.presence), "leave": plan.leave, "tag": tag,
    }]  # fmt: skip
    workers = max(spec.workers, math.ceil(spec.viewers / VIEWERS_PER_WORKER))
    share = math.ceil(spec.viewers / workers)
    for w in range(workers):
        first, count = w * share, min(share, spec.viewers - w * share)
        if count <= 0:
            continue
        specs.append({
            "role": "viewers", "target": target_data, "sources": list(sites),
            # interleaved: worker w takes every `workers`-th slot of the one ramp
            "first": first, "count": count, "start": plan.start + w / spec.ramp,
            "rate": spec.ramp / workers, "split": plan.split, "leave": plan.leave,
            "ping_interval": spec.ping_interval, "tag": tag,
        })  # fmt: skip
    cgroups = probes.groups(twin.box.leader)
    sampler = probes.Sampler(cgroups)
    with sampler.running():
        results = _run_workers(twin.internet, specs, plan.leave + 180)
    stage, crowds = results[0], results[1:]
    viewers = [v for c in crowds for v in c["viewers"]]
    return LoadRun(
        spec=spec, label=label, timeline=plan, viewers=viewers, stage=stage,
        samples=sampler.samples, generator_cpu=sum(r["cpu_seconds"] for r in results),
        notes=[f"a server sample was missed: {m}" for m in sampler.misses[:10]],
    )  # fmt: skip


def _run_workers(netns: Path, specs: list[dict[str, Any]], deadline: float) -> list[dict[str, Any]]:
    """Start one process per spec at once (the plans are timed), then collect their results."""
    argv = [tool("nsenter"), f"--net={netns}", "--", sys.executable, "-m", "components.load.crowd"]
    processes = [
        subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in specs
    ]
    try:
        with ThreadPoolExecutor(len(processes)) as pool:
            outputs = list(
                pool.map(
                    lambda pair: pair[0].communicate(
                        json.dumps(pair[1]), timeout=max(1.0, deadline - time.time())
                    ),
                    zip(processes, specs, strict=True),
                )
            )
    except subprocess.TimeoutExpired:
        raise LoadError("the load processes did not finish in time") from None
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    results = []
    for p, (out, err) in zip(processes, outputs, strict=True):
        if p.returncode != 0:
            raise LoadError(f"a load process failed ({p.returncode}):\n{err[-2000:]}")
        results.append(json.loads(out))
    return results
