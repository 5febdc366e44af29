"""The bridge pool follows the event: properties of the timeline, and the program under the
mocks at moments before, during and after a window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.cloud import deployment
from components.model.planner import BridgePool
from components.model.schedule import (
    GROW_BEFORE,
    SEND_AHEAD,
    SHRINK_AFTER,
    PoolSize,
    idle,
    serving,
    size_at,
    timeline,
)
from components.offline.mocks import OfflineRun, run_program
from tests.test_program import config_of, of_type

T0 = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)

pools = st.builds(
    lambda low, extra, more: BridgePool(needed=low, min=low, desired=low + extra,
                                        max=low + extra + more),
    st.integers(0, 200), st.integers(0, 50), st.integers(1, 100),
)  # fmt: skip
windows = st.builds(
    lambda start, length: (T0 + timedelta(minutes=start), T0 + timedelta(minutes=start + length)),
    st.integers(-600, 600), st.integers(1, 720),
)  # fmt: skip
moments = st.integers(-1500, 1500).map(lambda m: T0 + timedelta(minutes=m))


def replay(initial: PoolSize, scheduled: list[tuple[datetime, PoolSize]], t: datetime) -> PoolSize:
    """The size AWS gives the group at `t`: the last scheduled action at or before it."""
    size = initial
    for at, s in sorted(scheduled, key=lambda x: x[0]):
        if at <= t:
            size = s
    return size


@given(pools, windows, moments, st.integers(0, 2000))
def test_the_pool_has_the_events_size_from_shortly_after_now(
    pool: BridgePool, window: tuple[datetime, datetime], now: datetime, later: int
) -> None:
    """Created and scheduled at `now`, the pool has the size the event wants at every moment
    from `now + SEND_AHEAD` on; no action lies in the past or too close to send."""
    plan = timeline(pool, window, now)
    for s in plan.scheduled:
        assert s.at > now + SEND_AHEAD
    t = now + SEND_AHEAD + timedelta(minutes=later)
    got = replay(plan.initial, [(s.at, s.size) for s in plan.scheduled], t)
    assert got == size_at(pool, window, t)


@given(pools, windows)
def test_created_well_ahead_the_pool_is_idle_then_grown_then_emptied(
    pool: BridgePool, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    plan = timeline(pool, window, start - GROW_BEFORE - timedelta(days=1))
    assert plan.initial == idle(pool)
    assert plan.initial.max == pool.max  # the ceiling stays for the scaling policy
    assert [(s.name, s.at, s.size) for s in plan.scheduled] == [
        ("grow", start - GROW_BEFORE, serving(pool)),
        ("shrink", end + SHRINK_AFTER, idle(pool)),
    ]


@given(pools, moments)
def test_without_a_window_the_planner_sizes_the_pool(pool: BridgePool, now: datetime) -> None:
    plan = timeline(pool, None, now)
    assert plan.initial == serving(pool)
    assert plan.scheduled == ()


# --- the program at given moments ------------------------------------------------------------

WINDOW = '{"start": "2026-12-03T14:00:00Z", "end": "2026-12-03T18:00:00Z"}'


def run_at(
    now: datetime, monkeypatch: pytest.MonkeyPatch, window: str | None = WINDOW
) -> OfflineRun:
    monkeypatch.setattr(deployment, "utc_now", lambda: now)
    config = config_of("aws-10k")
    if window:
        config["jitsi-xxl:event"] = window
    return run_program(config, "aws-10k")


def group_sizes(r: OfflineRun) -> tuple[int, int, int]:
    (group,) = of_type(r, "aws:autoscaling/group:Group")
    return (group.inputs["minSize"], group.inputs["desiredCapacity"], group.inputs["maxSize"])


def schedules(r: OfflineRun) -> dict[str, str]:
    return {
        s.name.rsplit("-", 1)[-1]: s.inputs["startTime"]
        for s in of_type(r, "aws:autoscaling/schedule:Schedule")
    }


@pytest.mark.parametrize(
    ("now", "sizes", "sent"),
    [
        # days ahead: created empty, both actions sent
        (T0 - timedelta(days=2), (0, 0, 77), {"grow": "2026-12-03T13:30:00Z",
                                               "shrink": "2026-12-03T18:15:00Z"}),
        # in the last 30 minutes before the start: the grow time has passed (AWS would refuse
        # it); the pool is created grown
        (T0 - timedelta(minutes=10), (51, 51, 77), {"shrink": "2026-12-03T18:15:00Z"}),
        # during the event
        (T0 + timedelta(hours=2), (51, 51, 77), {"shrink": "2026-12-03T18:15:00Z"}),
        # after the shrink: nothing to send, nothing to run
        (T0 + timedelta(hours=5), (0, 0, 77), {}),
    ],
    ids=["days-ahead", "last-half-hour", "during", "after"],
)  # fmt: skip
def test_schedules_in_the_past_are_not_sent(
    now: datetime,
    sizes: tuple[int, int, int],
    sent: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r = run_at(now, monkeypatch)
    assert group_sizes(r) == sizes
    assert schedules(r) == sent


def test_later_ups_set_what_the_schedule_set_and_leave_the_wish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An up during the event applies a raised floor; one after the end-of-event shrink keeps
    the pool empty; the desired size is never the stack's once the group exists."""
    config = config_of("aws-10k")
    config["jitsi-xxl:event"] = WINDOW
    config["jitsi-xxl:bridges"] = '{"participants_per_bridge": 200, "min": 60}'
    monkeypatch.setattr(deployment, "utc_now", lambda: T0 + timedelta(hours=1))
    during = run_program(config, "aws-10k")
    assert group_sizes(during)[0] == 60
    (group,) = of_type(during, "aws:autoscaling/group:Group")
    assert group.ignore_changes == ["desiredCapacity"]
    assert group_sizes(run_at(T0 + timedelta(hours=5), monkeypatch))[:2] == (0, 0)


def test_without_a_window_the_floor_is_the_stacks(monkeypatch: pytest.MonkeyPatch) -> None:
    r = run_at(T0, monkeypatch, window=None)
    (group,) = of_type(r, "aws:autoscaling/group:Group")
    assert group.ignore_changes == ["desiredCapacity"]
    assert group_sizes(r) == (51, 51, 77)
    assert schedules(r) == {}


def test_no_instance_refresh_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    (group,) = of_type(run_at(T0, monkeypatch), "aws:autoscaling/group:Group")
    assert group.inputs.get("instanceRefresh") is None
    config = config_of("aws-10k")
    config["jitsi-xxl:bridges"] = '{"refresh_on_change": true}'
    (asked,) = of_type(run_program(config, "aws-10k"), "aws:autoscaling/group:Group")
    assert asked.inputs["instanceRefresh"]["strategy"] == "Rolling"
    assert asked.inputs["instanceRefresh"]["preferences"]["minHealthyPercentage"] == 90
