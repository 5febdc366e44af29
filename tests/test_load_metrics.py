"""The load bench's arithmetic, without a twin: what a run's records mean, and the session's
small decisions (which stanzas stream management owns, where a host's token goes)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.load.capacity import STEADY_HEADROOM, Extrapolation
from components.load.metrics import grouped, percentile, summarize
from components.load.probes import Sample
from components.load.report import spread
from components.load.run import MIN_HOLD, LoadError, LoadRun, LoadSpec, timeline
from components.load.session import _SM_ELEMENT, Target, _has
from components.model.planner import plan
from components.model.settings import load_stack_file
from tests.conftest import ROOT

values = st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=200)


@given(values, st.floats(0.1, 100))
def test_percentile_is_one_of_the_values_and_grows_with_p(xs: list[float], p: float) -> None:
    assert percentile(xs, p) in xs
    assert min(xs) <= percentile(xs, p) <= percentile(xs, 100) == max(xs)
    assert percentile(xs, p / 2) <= percentile(xs, p)


def test_percentile_is_nearest_rank() -> None:
    xs = [float(i) for i in range(1, 101)]
    assert (percentile(xs, 50), percentile(xs, 95), percentile(xs, 99)) == (50, 95, 99)
    assert math.isnan(percentile([], 50))


def test_spread_quotes_median_and_range() -> None:
    assert spread([3.0, 1.0, 2.0]) == "2.00 (1.00-3.00)"
    assert spread([5.0], "{:.0f}") == "5"
    assert spread([float("nan")]) == "n/a"


def test_nodes_fold_into_one_group() -> None:
    folded = grouped({"prosody": 1.0, "v1": 2.0, "v12": 3.0, "nginx": 4.0, "coturn": 9.0})
    assert folded == {"prosody": 1.0, "nodes": 5.0, "nginx": 4.0, "jicofo": 0.0}


@given(st.integers(1, 20_000), st.floats(0.5, 500), st.floats(MIN_HOLD, 600), st.floats(0, 2e9))
def test_the_timeline_keeps_its_order(viewers: int, ramp: float, hold: float, now: float) -> None:
    t = timeline(LoadSpec(viewers, ramp, hold), now)
    assert now < t.stage < t.start < t.split < t.leave
    # the hosts speak only while everyone holds: the split's stanzas are the joins' own
    assert all(t.split < at < t.leave for at, _ in t.chats)
    assert all(t.split < at < t.leave for at in t.presence)
    # the ramp ends before the split
    assert t.start + viewers / ramp < t.split


def test_a_spec_without_time_for_the_hosts_is_refused() -> None:
    with pytest.raises(LoadError, match="hold"):
        LoadSpec(10, 5.0, MIN_HOLD - 1)


def _viewer(index: int, started: float, joined: float | None, stanzas: int) -> dict[str, object]:
    return {
        "index": index, "started": started, "joined": joined, "node": "v1" if joined else "",
        "error": "" if joined else "connect main: TimeoutError", "stanzas_joining": stanzas,
        "stanzas": stanzas + 5, "chats": {"chat-0": 200.5} if joined else {}, "steps": {},
    }  # fmt: skip


def test_summary_arithmetic() -> None:
    spec = LoadSpec(viewers=4, ramp=2.0, hold=60.0)
    t = timeline(spec, 0.0)
    viewers = [_viewer(i, t.start + i, t.start + i + 0.5, 20) for i in range(3)]
    viewers.append(_viewer(3, t.start + 3, None, 0))
    samples = [
        Sample(t.start, {"prosody": 10.0, "v1": 1.0}, {"prosody": 1000, "v1": 0}),
        Sample(t.split, {"prosody": 13.0, "v1": 7.0}, {"prosody": 4000, "v1": 3000}),
        Sample(t.leave, {"prosody": 13.3, "v1": 10.0}, {"prosody": 4000, "v1": 3000}),
    ]
    stage = {"sent": {"chat-0": 200.0}}
    summary = summarize(LoadRun(spec, "x", t, viewers, stage, samples, generator_cpu=1.5))
    assert (summary.joined, summary.failed, summary.errors) == (3, 1, {"connect main": 1})
    assert summary.join_p50 == pytest.approx(0.5)
    # 3 s of the main prosody for 3 joins: 1,000 s per 1,000; the node's 6 s likewise 2,000
    assert summary.cpu_per_1000_joins["prosody"] == pytest.approx(1000)
    assert summary.cpu_per_1000_joins["nodes"] == pytest.approx(2000)
    # 3 s of the node over one minute for 3 viewers
    assert summary.cpu_per_1000_viewers_minute["nodes"] == pytest.approx(1000)
    assert summary.memory_per_viewer == {"prosody": 1000, "nodes": 1000, "nginx": 0, "jicofo": 0}
    assert (summary.chat_delivered, summary.chat_expected) == (3, 3)
    assert summary.chat_last_viewer == pytest.approx(0.5)
    assert summary.stanzas_per_join == 20


def test_extrapolation_arithmetic() -> None:
    the_plan = plan(load_stack_file(ROOT / "stacks" / "Pulumi.hetzner-10k.yaml").settings)
    e = Extrapolation(
        node_hold=6.0, node_join=0.02, main_join=0.01, nginx_join=0.005, nginx_hold=3.0,
        memory=100 * 1024, plan=the_plan, audience=10_000,
    )  # fmt: skip
    # 6 CPU s per 1,000 viewers per minute is 0.1 ms of a core per viewer second
    assert e.viewers_per_node == math.floor(STEADY_HEADROOM / (6.0 / 1000 / 60))
    assert e.nginx_cores == pytest.approx(0.5)
    assert e.nodes == 11
    assert e.holds == 11 * the_plan.max_per_node
    assert "100 s at best" in e.markdown()


def test_stream_management_elements_are_not_stanzas() -> None:
    assert _SM_ELEMENT.match("<r xmlns='urn:xmpp:sm:3'/>")
    assert _SM_ELEMENT.match("<a xmlns='urn:xmpp:sm:3' h='4'/>")
    assert _SM_ELEMENT.match("<enabled xmlns='urn:xmpp:sm:3' resume='true' id='x'/>")
    assert not _SM_ELEMENT.match("<message xmlns='jabber:client'><r xmlns='urn:xmpp:sm:3'/>")
    assert not _SM_ELEMENT.match("<iq type='result' id='r1'/>")


def test_attributes_match_in_either_quotes() -> None:
    assert _has("<presence from='a'>", "from='a'")
    assert _has('<presence from="a">', "from='a'")
    assert not _has("<presence from='ab'>", "from='a'")


def test_a_token_goes_to_the_main_host_only() -> None:
    target = Target("203.0.113.10", 443, "meet.example.org", "room")
    assert "token=T" in target.url(None, "T")
    assert "token" not in target.url("v3", None)
    assert target.url("v3", None).startswith("wss://meet.example.org:443/xmpp-websocket?vnode=v3")
