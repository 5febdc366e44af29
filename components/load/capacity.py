"""From measured costs to what one 16-vCPU signaling VM holds, beside the planner's defaults.

Every prosody is one single-threaded process, so each instance is bounded by one core: the
main prosody carries every viewer's first connection (the conference request), each visitor
node its share of the audience. The arithmetic takes the medians of the runs' costs and keeps
headroom for what a run does not show (a chat burst, a node restarting and its viewers
rejoining elsewhere).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from components.load.metrics import Summary
from components.model.planner import MAX_NODES_PER_ROOM, Plan

VM_VCPUS: Final = 16
# Cores not available to visitor nodes: the main prosody's one, jicofo (a JVM: its XMPP
# connections and bridge selection) two, the system with coturn one.
RESERVED_CORES: Final = 4
# A node at steady state runs at most at half a core: the other half is for bursts.
STEADY_HEADROOM: Final = 0.5
KIB: Final = 1024


@dataclass(frozen=True)
class Extrapolation:
    node_hold: float  # CPU s per 1,000 connected viewers per minute, all nodes together
    node_join: float  # CPU s per join on its node
    main_join: float  # CPU s per join on the main prosody
    nginx_join: float
    nginx_hold: float  # CPU s per 1,000 viewers per minute
    memory: float  # bytes per viewer, every process
    plan: Plan
    audience: int

    @property
    def viewers_per_node(self) -> int:
        """Viewers one node holds at steady state within STEADY_HEADROOM of a core."""
        per_viewer_core = self.node_hold / 1000 / 60
        return math.floor(STEADY_HEADROOM / per_viewer_core) if per_viewer_core > 0 else 0

    @property
    def nginx_cores(self) -> float:
        """nginx's cores for the audience at steady state."""
        return self.audience * self.nginx_hold / 1000 / 60

    @property
    def node_cores(self) -> int:
        return max(0, math.floor(VM_VCPUS - RESERVED_CORES - self.nginx_cores))

    @property
    def nodes(self) -> int:
        """Nodes one conference can use on the VM: one core each, at most 16 per room."""
        return min(self.node_cores, MAX_NODES_PER_ROOM)

    @property
    def holds(self) -> int:
        return self.nodes * min(self.viewers_per_node, self.plan.max_per_node)

    def markdown(self) -> str:
        p = self.plan
        main_storm = self.audience * self.main_join
        node_storm = p.visitors_per_node * self.node_join
        lines = [
            f"What one {VM_VCPUS}-vCPU VM holds, from the medians above:",
            "",
            f"- A visitor node costs {self.node_hold:.1f} CPU s per 1,000 connected viewers per "
            f"minute: at most half a core at steady state is {self.viewers_per_node:,} viewers "
            "per node.",
            f"- nginx needs {self.nginx_cores:.1f} cores for {self.audience:,} viewers; "
            f"{VM_VCPUS} vCPUs less {RESERVED_CORES} (main prosody, jicofo, system) and nginx "
            f"leave {self.node_cores} cores, one per node; one conference uses at most "
            f"{MAX_NODES_PER_ROOM} nodes: {self.nodes} nodes.",
            f"- So the VM holds about {self.nodes} x {min(self.viewers_per_node, p.max_per_node):,}"
            f" = {self.holds:,} viewers at steady state (nodes x min(viewers per node by CPU, "
            f"max_per_node {p.max_per_node:,})).",
            f"- The join storm: the main prosody spends {self.main_join * 1000:.1f} ms of its one "
            f"core per join, so {self.audience:,} viewers pass it in {main_storm:.0f} s at best; "
            f"a node spends {self.node_join * 1000:.1f} ms per join, so its share of "
            f"{p.visitors_per_node:,} is in after {node_storm:.0f} s. Every viewer's first stop "
            "is the main prosody, which is why the limits in front of it matter most.",
            f"- Memory: {self.memory / KIB:.0f} KiB per viewer across main prosody, nodes and "
            f"nginx: {self.audience * self.memory / 2**30:.1f} GiB for {self.audience:,} viewers.",
            f"- The planner's defaults for {self.audience:,} viewers: {len(p.nodes)} nodes, "
            f"max_per_node {p.max_per_node:,}, {p.visitors_per_node:,} per node expected: "
            + (
                "within what the measurement supports."
                if len(p.nodes) <= self.nodes and p.visitors_per_node <= self.viewers_per_node
                else "more than the measurement supports; see the note below."
            ),
        ]
        return "\n".join(lines) + "\n"


def extrapolate(runs: Sequence[Summary], the_plan: Plan) -> Extrapolation:
    """Median costs over `runs` (their as-rendered runs) for `the_plan`'s audience."""

    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    return Extrapolation(
        node_hold=med([r.cpu_per_1000_viewers_minute["nodes"] for r in runs]),
        node_join=med([r.cpu_per_1000_joins["nodes"] / 1000 for r in runs]),
        main_join=med([r.cpu_per_1000_joins["prosody"] / 1000 for r in runs]),
        nginx_join=med([r.cpu_per_1000_joins["nginx"] / 1000 for r in runs]),
        nginx_hold=med([r.cpu_per_1000_viewers_minute["nginx"] for r in runs]),
        memory=med(
            [sum(r.memory_per_viewer[g] for g in ("prosody", "nodes", "nginx")) for r in runs]
        ),
        plan=the_plan,
        audience=the_plan.visitors_per_node * len(the_plan.nodes),
    )
