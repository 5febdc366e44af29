"""How the bridge pool follows an event: what size it has when it is created, and which
scheduled sizes are still to come.

With a window, an idle pool costs nothing: it is created empty (unless the event is about
to start or running), grown shortly before the start and emptied after the end. A scheduled
action whose time has passed is not sent: AWS refuses a start time in the past, and the
size it would have set is the size the pool is created with. Without a window the pool is
sized by the planner and scaled by stress.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from components.model.planner import BridgePool

# Bridges need a few minutes to boot, install and join the brewery: grow well before the
# doors open. Empty the pool a little after the end, once the last viewers have left.
GROW_BEFORE: Final = timedelta(minutes=30)
SHRINK_AFTER: Final = timedelta(minutes=15)
# A scheduled action must lie this far ahead to be sent: AWS refuses start times that are
# not in the future, and a `pulumi up` takes minutes between plan and request.
SEND_AHEAD: Final = timedelta(minutes=5)


@dataclass(frozen=True)
class PoolSize:
    """Bounds and wish of the pool at one moment."""

    min: int
    desired: int
    max: int


@dataclass(frozen=True)
class ScheduledSize:
    """A size the pool takes at a given moment (an Auto Scaling scheduled action)."""

    name: str
    at: datetime
    size: PoolSize


@dataclass(frozen=True)
class PoolTimeline:
    """The pool's size now (at creation, and what an update sets: the size the schedule has
    given it by now), and the scheduled sizes still to come."""

    initial: PoolSize
    scheduled: tuple[ScheduledSize, ...]


def serving(pool: BridgePool) -> PoolSize:
    return PoolSize(min=pool.min, desired=pool.desired, max=pool.max)


def idle(pool: BridgePool) -> PoolSize:
    # the ceiling stays: the scaling policy may still act, within it
    return PoolSize(min=0, desired=0, max=pool.max)


def grow_at(start: datetime) -> datetime:
    return start - GROW_BEFORE


def shrink_at(end: datetime) -> datetime:
    return end + SHRINK_AFTER


def size_at(pool: BridgePool, window: tuple[datetime, datetime] | None, t: datetime) -> PoolSize:
    """The size the event wants the pool to have at moment `t`."""
    if window is None:
        return serving(pool)
    start, end = window
    return serving(pool) if grow_at(start) <= t < shrink_at(end) else idle(pool)


def scheduled_sizes(
    pool: BridgePool, window: tuple[datetime, datetime] | None
) -> tuple[ScheduledSize, ...]:
    """Every scheduled size of the event, whether or not its time has come."""
    if window is None:
        return ()
    start, end = window
    return (
        ScheduledSize("grow", grow_at(start), serving(pool)),
        ScheduledSize("shrink", shrink_at(end), idle(pool)),
    )


def timeline(
    pool: BridgePool, window: tuple[datetime, datetime] | None, now: datetime
) -> PoolTimeline:
    """What to create and schedule at `now` so that the pool has `size_at` from then on."""
    if window is None:
        return PoolTimeline(initial=serving(pool), scheduled=())
    planned = scheduled_sizes(pool, window)
    # an action too close to be sent takes effect now: the pool is created at its size
    cutoff = now + SEND_AHEAD
    return PoolTimeline(
        initial=size_at(pool, window, cutoff),
        scheduled=tuple(s for s in planned if s.at > cutoff),
    )
