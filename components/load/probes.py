"""CPU and memory of the twin's server processes, read from outside them.

systemd in the container gives every service its own cgroup; the host reads them through the
container's root (``/proc/<systemd's pid>/root``). CPU is the cgroup's ``cpu.stat``
(``usage_usec`` counts every process the service ever ran, so nothing is lost when a worker
exits); memory is the proportional set size of the processes the cgroup holds (nginx's master
and workers share pages, so PSS adds up where RSS would count shared pages once per worker).
On hosts that mount cgroup v1 beside v2 the container's v2 hierarchy is under ``unified/``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

NODES_SLICE: Final = "system-prosody\\x2dv.slice"
SERVICES: Final = {
    "prosody": "prosody.service",
    "nginx": "nginx.service",
    "jicofo": "jicofo.service",
}


class ProbeError(Exception):
    """The container's cgroups cannot be read."""


def system_slice(leader: int) -> Path:
    """The container's system.slice as the host sees it."""
    root = Path(f"/proc/{leader}/root/sys/fs/cgroup")
    for candidate in (root / "unified/system.slice", root / "system.slice"):
        if (candidate / "cgroup.procs").exists():
            return candidate
    raise ProbeError(f"no system.slice cgroup under {root}")


def groups(leader: int) -> dict[str, Path]:
    """Each measured process group and its cgroup: prosody, v1..vN, nginx, jicofo."""
    base = system_slice(leader)
    found = {name: base / unit for name, unit in SERVICES.items() if (base / unit).is_dir()}
    nodes = base / NODES_SLICE
    if nodes.is_dir():
        for unit in sorted(nodes.glob("prosody-v@*.service"), key=_node_number):
            found[f"v{_node_number(unit)}"] = unit
    return found


def _node_number(unit: Path) -> int:
    return int(unit.name.removeprefix("prosody-v@").removesuffix(".service"))


def cpu_seconds(cgroup: Path) -> float:
    for line in (cgroup / "cpu.stat").read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    raise ProbeError(f"no usage_usec in {cgroup / 'cpu.stat'}")


def memory_bytes(cgroup: Path) -> int:
    """The summed PSS of the cgroup's processes (0 for a process gone meanwhile)."""
    total = 0
    for pid in (cgroup / "cgroup.procs").read_text().split():
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
                break
    return total


@dataclass(frozen=True)
class Sample:
    at: float  # wall clock
    cpu: dict[str, float]
    memory: dict[str, int]


def sample(cgroups: dict[str, Path]) -> Sample:
    return Sample(
        time.time(),
        {name: cpu_seconds(path) for name, path in cgroups.items()},
        {name: memory_bytes(path) for name, path in cgroups.items()},
    )


@dataclass
class Sampler:
    """Samples every `interval` seconds in a thread while the run goes on."""

    cgroups: dict[str, Path]
    interval: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(sample(self.cgroups))
            except (OSError, ProbeError, ValueError) as exc:
                # a service restarting: the next sample reads it again
                self.misses.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.interval)

    @contextlib.contextmanager
    def running(self) -> Iterator[Sampler]:
        thread = threading.Thread(target=self._loop, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
