"""Load runs as a person reads them: the README's capacity table, the VM arithmetic, a plot.

Every figure in the table is the median of repeated runs with the range (min-max) after it;
the machine the runs were made on is noisy, so a single run is never quoted.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from components.load.metrics import Summary, grouped
from components.load.run import LoadRun

KIB: Final = 1024


def spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """'median (min-max)' of repeated runs, or the value alone for one run."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "n/a"
    mid = fmt.format(statistics.median(finite))
    if len(finite) == 1:
        return mid
    return f"{mid} ({fmt.format(min(finite))}-{fmt.format(max(finite))})"


@dataclass(frozen=True)
class Scenario:
    """One row of the table: the same run repeated."""

    name: str
    runs: tuple[Summary, ...]

    def values(self, pick: Callable[[Summary], float]) -> list[float]:
        return [pick(s) for s in self.runs]


def table(scenarios: Sequence[Scenario]) -> str:
    """The README's capacity table (markdown)."""
    head = (
        "| scenario | viewers | ramp (joins/s) | failed joins | join p50 / p95 / p99 (s) "
        "| last viewer has a chat (s) | CPU s per 1,000 joins: main / nodes / nginx "
        "| CPU s per 1,000 viewers per minute: nodes | memory per viewer (KiB): main / nodes "
        "/ nginx | stanzas per join | load generator CPU s |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for sc in scenarios:
        r = sc.runs[0]

        def cpu(group: str, s: Summary) -> float:
            return s.cpu_per_1000_joins[group]

        rows.append(
            f"| {sc.name} | {r.viewers} | {r.ramp:g} "
            f"| {spread(sc.values(lambda s: s.failed), '{:.0f}')} "
            f"| {spread(sc.values(lambda s: s.join_p50))} / "
            f"{spread(sc.values(lambda s: s.join_p95))} / "
            f"{spread(sc.values(lambda s: s.join_p99))} "
            f"| {spread(sc.values(lambda s: s.chat_last_viewer))} "
            f"| {spread(sc.values(lambda s: cpu('prosody', s)), '{:.1f}')} / "
            f"{spread(sc.values(lambda s: cpu('nodes', s)), '{:.1f}')} / "
            f"{spread(sc.values(lambda s: cpu('nginx', s)), '{:.1f}')} "
            f"| {spread(sc.values(lambda s: s.cpu_per_1000_viewers_minute['nodes']), '{:.1f}')} "
            f"| {spread(sc.values(lambda s: s.memory_per_viewer['prosody'] / KIB), '{:.0f}')} / "
            f"{spread(sc.values(lambda s: s.memory_per_viewer['nodes'] / KIB), '{:.0f}')} / "
            f"{spread(sc.values(lambda s: s.memory_per_viewer['nginx'] / KIB), '{:.0f}')} "
            f"| {spread(sc.values(lambda s: s.stanzas_per_join), '{:.1f}')} "
            f"| {spread(sc.values(lambda s: s.generator_cpu), '{:.0f}')} |"
        )
    return head + "\n".join(rows) + "\n"


def connected_curve(run: LoadRun) -> tuple[list[float], list[float], dict[str, list[float]]]:
    """Per join: (viewers connected when it completed, its latency); per server sample: the
    cores each process group used since the previous sample, against viewers connected."""
    done = sorted((v["joined"], v["joined"] - v["started"]) for v in run.viewers if v["joined"])
    at = [t for t, _ in done]
    xs = [float(i + 1) for i in range(len(done))]
    latencies = [lat for _, lat in done]
    cores: dict[str, list[float]] = {"connected": []}
    samples = [s for s in run.samples if run.timeline.start <= s.at <= run.timeline.split]
    for a, b in itertools.pairwise(samples):
        dt = b.at - a.at
        if dt <= 0:
            continue
        used = grouped({k: (b.cpu[k] - a.cpu[k]) / dt for k in b.cpu if k in a.cpu})
        cores["connected"].append(float(sum(1 for t in at if t <= b.at)))
        for group, value in used.items():
            cores.setdefault(group, []).append(value)
    return xs, latencies, cores


def plot(runs: Sequence[LoadRun], path: Path) -> None:
    """Join latency and CPU against connected viewers, one column per run."""
    import matplotlib  # noqa: PLC0415 - only the benchmark draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(2, len(runs), figsize=(6 * len(runs), 7), squeeze=False)
    for col, run in enumerate(runs):
        xs, latencies, cores = connected_curve(run)
        top, bottom = axes[0][col], axes[1][col]
        top.scatter(xs, latencies, s=2)
        top.set_title(f"{run.label}: {run.spec.viewers} viewers at {run.spec.ramp:g} joins/s")
        top.set_ylabel("join latency (s)")
        top.set_yscale("log")
        for group in ("prosody", "nodes", "nginx", "jicofo"):
            label = {"prosody": "main prosody", "nodes": "visitor nodes (sum)",
                     "jicofo": "jicofo (stand-in)"}.get(group, group)  # fmt: skip
            bottom.plot(cores["connected"], cores.get(group, []), label=label)
        bottom.set_xlabel("viewers connected")
        bottom.set_ylabel("CPU (cores)")
        bottom.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
