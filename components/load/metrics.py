"""What a load run means: latencies, rates, and each server process's cost per viewer.

Windows on the run's timeline (`components.load.run`):
- joining: from the first viewer's start to the split (hosts are silent then), so CPU and
  stanzas in it are the joins' cost;
- holding: from the split to the leave, everyone connected, hosts chatting: the cost of an
  audience that is just there.
Memory per viewer is the growth of each process's PSS from just before the ramp to the split.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Final

from components.load.probes import Sample
from components.load.run import LoadRun

PROCESS_GROUPS: Final = ("prosody", "nodes", "nginx", "jicofo")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def grouped(values: dict[str, float]) -> dict[str, float]:
    """Per-process figures folded into PROCESS_GROUPS (every vN into "nodes")."""
    out = dict.fromkeys(PROCESS_GROUPS, 0.0)
    for name, value in values.items():
        key = "nodes" if name.startswith("v") and name[1:].isdigit() else name
        if key in out:
            out[key] += value
    return out


@dataclass(frozen=True)
class Summary:
    label: str
    viewers: int
    ramp: float
    joined: int
    failed: int
    errors: dict[str, int]
    nodes_used: int
    join_p50: float
    join_p95: float
    join_p99: float
    joins_per_second: float
    chat_delivered: int  # chat messages x viewers that received them
    chat_expected: int
    chat_last_viewer: float  # the slowest chat's time until its last viewer had it
    cpu_per_1000_joins: dict[str, float]  # CPU seconds
    cpu_per_1000_viewers_minute: dict[str, float]
    memory_per_viewer: dict[str, float]  # bytes
    stanzas_per_join: float
    generator_cpu: float


def _delta(a: Sample, b: Sample, field: str) -> dict[str, float]:
    first, last = getattr(a, field), getattr(b, field)
    return {k: float(last[k] - first[k]) for k in last if k in first}


def summarize(run: LoadRun, sample_at: SampleLookup | None = None) -> Summary:
    viewers = run.viewers
    joined = [v for v in viewers if v["joined"] is not None]
    latencies = [v["joined"] - v["started"] for v in joined]
    errors = Counter(v["error"].split(":")[0] for v in viewers if v["error"])
    sent: dict[str, float] = run.stage.get("sent", {})
    delivered = sum(1 for v in joined for body in sent if body in v["chats"])
    last = max(
        (max((v["chats"][b] for v in joined if b in v["chats"]), default=t) - t
         for b, t in sent.items()),
        default=float("nan"),
    )  # fmt: skip
    lookup = sample_at or SampleLookup(run.samples)
    begin, split, leave = run.timeline.start, run.timeline.split, run.timeline.leave
    n = max(1, len(joined))
    join_cpu = grouped(_delta(lookup(begin), lookup(split), "cpu"))
    hold_cpu = grouped(_delta(lookup(split), lookup(leave), "cpu"))
    memory = grouped(_delta(lookup(begin), lookup(split), "memory"))
    minutes = (leave - split) / 60
    span = (max(v["joined"] for v in joined) - min(v["started"] for v in joined)) if joined else 0
    return Summary(
        label=run.label,
        viewers=run.spec.viewers,
        ramp=run.spec.ramp,
        joined=len(joined),
        failed=len(viewers) - len(joined),
        errors=dict(errors),
        nodes_used=len({v["node"] for v in joined}),
        join_p50=percentile(latencies, 50),
        join_p95=percentile(latencies, 95),
        join_p99=percentile(latencies, 99),
        joins_per_second=len(joined) / span if span > 0 else float("nan"),
        chat_delivered=delivered,
        chat_expected=len(sent) * len(joined),
        chat_last_viewer=last,
        cpu_per_1000_joins={k: v * 1000 / n for k, v in join_cpu.items()},
        cpu_per_1000_viewers_minute={k: v / (n / 1000) / minutes for k, v in hold_cpu.items()},
        memory_per_viewer={k: v / n for k, v in memory.items()},
        stanzas_per_join=sum(v["stanzas_joining"] for v in joined) / n,
        generator_cpu=run.generator_cpu,
    )


class SampleLookup:
    """The server sample nearest a time of the run."""

    def __init__(self, samples: list[Sample]) -> None:
        self.samples = samples

    def __call__(self, when: float) -> Sample:
        return min(self.samples, key=lambda s: abs(s.at - when))
