"""The Hetzner autoscaler against a local stand-in of the Hetzner Cloud API
(components/twin/hcloud_api.py), driven through the official `hcloud` library pointed at it,
with bridges whose stress the test changes over time."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import hcloud
import hcloud._client
import pytest

from components.agents import hetzner_autoscaler as scaler
from components.model.credentials import Credentials
from components.model.planner import plan
from components.model.project import Cloud
from components.model.settings import load_stack_file
from components.rendering.bridge_files import bridge_bundle
from components.rendering.engine import RenderedFile
from components.rendering.scaler_files import (
    BRIDGE_FILES,
    BRIDGE_TEMPLATE,
    TOKEN_NAME,
    scaler_bundle,
)
from components.rendering.secrets_delivery import SECRETS_FILE
from components.rendering.userdata import USER_DATA_CAPS, user_data_bytes
from components.twin.hcloud_api import HcloudApi, serving
from tests.conftest import ROOT

LABELS = {"jitsi-xxl/stack": "summit", "jitsi-xxl/role": "jvb"}
SELECTOR = "jitsi-xxl/role=jvb,jitsi-xxl/stack=summit"
NETWORK = {"jitsi-xxl/stack": "summit", "jitsi-xxl/role": "network"}
ACCESS = {"jitsi-xxl/stack": "summit", "jitsi-xxl/role": "access"}
LATER = 3600.0  # seconds after the servers were made: past every warmup


def config(tmp_path: Path, api: HcloudApi, **values: Any) -> scaler.Config:
    (tmp_path / "secrets.env").write_text("JVB_PASSWORD=x\nHETZNER_API_TOKEN=stand-in-token\n")
    base: dict[str, Any] = {
        "secrets_file": str(tmp_path / "secrets.env"), "token_name": "HETZNER_API_TOKEN",
        "api_endpoint": api.url, "selector": SELECTOR,
        "labels": LABELS, "name_prefix": "summit-jvb", "server_type": "ccx33",
        "image": "debian-13", "location": "fsn1",
        "network_selector": "jitsi-xxl/role=network,jitsi-xxl/stack=summit",
        "ssh_key_selector": "jitsi-xxl/role=access,jitsi-xxl/stack=summit",
        "ssh_key_names": ["ops"], "bridge_template": str(tmp_path / "template.json"),
        "min": 2, "max": 8,
        "scale_up_above": 0.3, "scale_down_below": 0.1, "up_cooldown_seconds": 300,
        "down_cooldown_seconds": 600, "max_step_up": 2, "max_step_down": 1,
        "warmup_seconds": 300, "graceful_shutdown_max_seconds": 3600, "stats_port": 8081,
        "poll_seconds": 60, "placement_group_size": 10, "state_file": str(tmp_path / "state"),
    }  # fmt: skip
    return scaler.Config(**(base | values))


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[HcloudApi]:
    # the library's retry backoff (up to a minute per try) in milliseconds: same retries
    monkeypatch.setattr(
        hcloud._client, "exponential_backoff_function", lambda **_: lambda retries: 0.001
    )
    # the stand-in refuses requests without the token the autoscaler read from its secrets
    with serving(HcloudApi(token="stand-in-token")) as stand_in:
        stand_in.add_network(4711, NETWORK)
        stand_in.add_network(4712, {**NETWORK, "jitsi-xxl/stack": "other"})
        stand_in.add_ssh_key(77, "summit-generated", ACCESS)
        yield stand_in


class Bridges:
    """The bridges' agents: stress and endpoints by private address, changed by the test."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[float, int] | None] = {}

    def __call__(self, address: str, port: int) -> tuple[float, int] | None:
        return self.seen.get(address, (0.2, 10))

    def set_all(self, api: HcloudApi, stress: float, endpoints: int = 10) -> None:
        for s in api.servers.values():
            self.seen[s["private_net"][0]["ip"]] = (stress, endpoints)


def pool_of(tmp_path: Path, api: HcloudApi, bridges: Bridges, **values: Any) -> scaler.Pool:
    cfg = config(tmp_path, api, **values)
    return scaler.Pool(cfg, scaler.client(cfg), "#cloud-config\n{}\n", stats=bridges)


def state(tmp_path: Path) -> scaler.State:
    return scaler.State.load(tmp_path / "state")


def existing(api: HcloudApi, count: int) -> list[int]:
    return [api.add_server(f"summit-jvb-{i + 1}", LABELS, f"10.0.2.{i + 100}")
            for i in range(count)]  # fmt: skip


def test_scale_out_under_load(tmp_path: Path, api: HcloudApi) -> None:
    existing(api, 2)
    bridges = Bridges()
    bridges.set_all(api, 0.6)
    pool, st = pool_of(tmp_path, api, bridges), state(tmp_path)
    now = time.time() + LATER
    decision = scaler.step(pool, st, now)
    # target tracking: 2 bridges at 0.6 need 4 to be at 0.3; within the step of 2
    assert decision.add == 2
    made = [s for s in api.servers.values() if s["name"] in {"summit-jvb-3", "summit-jvb-4"}]
    assert len(made) == 2
    for s in made:
        assert s["labels"] == LABELS
        assert s["networks"] == [4711]
        # by label at run time: the stack's network, the project's named key and ours
        assert s["ssh_keys"] == ["ops", 77]
        assert s["user_data"].startswith("#cloud-config")
        assert s["placement_group"] is not None
    # still loaded a minute later: the cooldown holds
    bridges.set_all(api, 0.6)
    again = scaler.step(pool, st, now + 60)
    assert again.add == 0
    assert "cooling down" in again.reason
    # and the ceiling holds whatever the stress
    bridges.set_all(api, 0.9)
    later = scaler.step(pool, st, now + 400)
    assert later.add == 2
    assert len(api.servers) == 6


def test_scale_in_drains_the_least_loaded_then_deletes_it(tmp_path: Path, api: HcloudApi) -> None:
    ids = existing(api, 4)
    bridges = Bridges()
    pool, st = pool_of(tmp_path, api, bridges), state(tmp_path)
    loads = {ids[0]: 5, ids[1]: 0, ids[2]: 12, ids[3]: 3}
    for sid, endpoints in loads.items():
        bridges.seen[api.servers[sid]["private_net"][0]["ip"]] = (0.05, endpoints)
    now = time.time() + LATER
    decision = scaler.step(pool, st, now)
    assert decision.drain == (ids[1],)  # no endpoints: the first to go
    assert api.servers[ids[1]]["status"] == "stopping"  # its drain unit runs
    assert api.servers[ids[1]]["labels"][scaler.DRAINING_LABEL] == str(int(now))
    # while it drains it stays, and nothing else is drained before the cooldown
    half = scaler.step(pool, st, now + 1800)
    assert half.delete == ()
    assert half.drain == (ids[3],)  # cooldown over: the next least-loaded
    assert ids[1] in api.servers
    # the drain is over (the VM powered off): deleted
    api.set_status(ids[1], "off")
    done = scaler.step(pool, st, now + 1860)
    assert done.delete == (ids[1],)
    assert ids[1] not in api.servers
    # a bridge that never gets there is deleted once the bound and a margin have passed
    bound = 3600 + scaler.DRAIN_MARGIN_SECONDS
    assert scaler.step(pool, st, now + 1800 + bound - 60).delete == ()
    assert scaler.step(pool, st, now + 1800 + bound).delete == (ids[3],)
    # never below the floor of 2
    final = scaler.step(pool, st, now + 1800 + bound + 700)
    assert final.drain == ()
    assert len([s for s in api.servers.values() if s["status"] == "running"]) == 2


@pytest.mark.parametrize(
    ("failure", "count"),
    [((503, "unavailable"), 1), ((500, "server_error"), 1), ((429, "rate_limit_exceeded"), 6)],
    ids=["503", "500", "429-beyond-retries"],
)
def test_api_errors_hold_still(
    tmp_path: Path, api: HcloudApi, failure: tuple[int, str], count: int
) -> None:
    existing(api, 2)
    bridges = Bridges()
    bridges.set_all(api, 0.9)  # a reason to act, were the API answering
    pool, st = pool_of(tmp_path, api, bridges), state(tmp_path)
    api.fail_next(count, *failure)
    decision = scaler.step(pool, st, time.time() + LATER)
    assert decision.add == 0
    assert decision.reason.startswith("holding: listing the servers failed")
    assert api.writes() == []


def test_a_short_rate_limit_is_retried_by_the_library(tmp_path: Path, api: HcloudApi) -> None:
    existing(api, 2)
    bridges = Bridges()
    bridges.set_all(api, 0.6)
    pool, st = pool_of(tmp_path, api, bridges), state(tmp_path)
    api.fail_next(2, 429, "rate_limit_exceeded")
    assert scaler.step(pool, st, time.time() + LATER).add == 2
    assert len(api.servers) == 4


def test_missing_metrics_hold_still(tmp_path: Path, api: HcloudApi) -> None:
    ids = existing(api, 3)
    bridges = Bridges()
    bridges.set_all(api, 0.02)
    bridges.seen[api.servers[ids[2]]["private_net"][0]["ip"]] = None  # its agent is silent
    pool, st = pool_of(tmp_path, api, bridges), state(tmp_path)
    decision = scaler.step(pool, st, time.time() + LATER)
    assert (decision.add, decision.drain) == (0, ())
    assert "no metrics from summit-jvb-3" in decision.reason
    assert api.writes() == []


def test_new_bridges_are_not_judged_before_their_warmup(tmp_path: Path, api: HcloudApi) -> None:
    existing(api, 2)
    bridges = Bridges()
    bridges.set_all(api, 0.9)
    pool, st = pool_of(tmp_path, api, bridges), state(tmp_path)
    decision = scaler.step(pool, st, time.time() + 10)
    assert decision.add == 0
    assert decision.reason == "holding: no bridge is serving yet"


def test_placement_groups_hold_ten_and_the_server_limit_is_met(
    tmp_path: Path, api: HcloudApi
) -> None:
    bridges = Bridges()
    pool, st = pool_of(tmp_path, api, bridges, min=12, max=20, max_step_up=12), state(tmp_path)
    scaler.step(pool, st, time.time() + LATER)
    sizes = sorted(len(g["servers"]) for g in api.groups.values())
    assert sizes == [2, 10]
    assert all(g["type"] == "spread" and g["labels"] == LABELS for g in api.groups.values())
    # the project's limit: the API refuses, the loop logs it and goes on next round
    api.max_servers = len(api.servers)
    pool2 = pool_of(tmp_path, api, bridges, min=14, max=20)
    decision = scaler.step(pool2, st, time.time() + LATER)
    assert decision.add == 2
    assert len(api.servers) == 12


def test_a_restart_mid_action_makes_nothing_twice(tmp_path: Path, api: HcloudApi) -> None:
    """The second create's answer is lost (the server exists, the loop saw an error); a new
    process lists what is there and only makes what is missing, under free names."""
    bridges = Bridges()
    pool, st = pool_of(tmp_path, api, bridges, min=3), state(tmp_path)
    original = api.handle
    answered: list[int] = []

    def lose_second_create(
        method: str, path: str, body: dict[str, Any], authorization: str = ""
    ) -> tuple[int, Any]:
        status, answer = original(method, path, body, authorization)
        if method == "POST" and path.startswith("/v1/servers") and "name" in body:
            answered.append(status)
            if len(answered) == 2:
                return 500, {"error": {"code": "server_error", "message": "lost"}}
        return status, answer

    api.handle = lose_second_create  # type: ignore[method-assign]
    now = time.time() + LATER
    scaler.step(pool, st, now)
    assert sorted(s["name"] for s in api.servers.values()) == ["summit-jvb-1", "summit-jvb-2"]
    restarted = pool_of(tmp_path, api, bridges, min=3)
    scaler.step(restarted, state(tmp_path), now + 1)
    names = sorted(s["name"] for s in api.servers.values())
    assert names == ["summit-jvb-1", "summit-jvb-2", "summit-jvb-3"]
    # and a create of a name that exists (a stale view) is refused by the API, not doubled
    restarted._servers = {}
    restarted.add(1)
    assert len(api.servers) == 3


def test_the_pool_follows_the_event_window(tmp_path: Path, api: HcloudApi) -> None:
    now = time.time() + LATER
    bridges = Bridges()
    window = {"grow_at": now + 1000, "shrink_at": now + 5000}
    pool, st = pool_of(tmp_path, api, bridges, **window), state(tmp_path)
    assert scaler.step(pool, st, now).add == 0  # before: nothing bills
    assert scaler.step(pool, st, now + 1000).add == 2  # grown to the floor
    for s in api.servers.values():
        s["created"] = "2020-01-01T00:00:00+00:00"
    bridges.set_all(api, 0.2)
    after = scaler.step(pool, st, now + 5000)
    assert len(after.drain) == 1  # emptied after the end, a step at a time
    assert "above 0" in after.reason


def test_no_token_no_action(
    tmp_path: Path, api: HcloudApi, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path, api)
    Path(cfg.secrets_file).write_text("JVB_PASSWORD=x\nHETZNER_API_TOKEN=\n")
    with pytest.raises(SystemExit) as stopped:
        scaler.client(cfg)
    assert stopped.value.code == 2
    assert "no API token" in capsys.readouterr().out
    assert api.calls == []


def test_every_round_logs_one_line(
    tmp_path: Path, api: HcloudApi, capsys: pytest.CaptureFixture[str]
) -> None:
    existing(api, 2)
    bridges = Bridges()
    bridges.set_all(api, 0.2)
    scaler.step(pool_of(tmp_path, api, bridges), state(tmp_path), time.time() + LATER)
    (line,) = capsys.readouterr().out.splitlines()
    assert line == (
        "jitsi-xxl-autoscaler: 2 servers; stress 0.20 over 2 bridges: within bounds; "
        "add 0, drain 0, delete 0"
    )


def test_read_stats_from_an_agent() -> None:
    answers = iter([
        json.dumps({"stress_level": 0.42, "endpoints": 17}),
        json.dumps({"stress_level": "high", "endpoints": 17}),
        "<html>",
    ])  # fmt: skip

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = next(answers).encode() if self.path == "/xxl/stats" else b""
            self.send_response(200 if data else 404)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        assert scaler.read_stats("127.0.0.1", port) == (0.42, 17)
        assert scaler.read_stats("127.0.0.1", port) is None
        assert scaler.read_stats("127.0.0.1", port) is None
    finally:
        server.shutdown()
        server.server_close()


def test_a_destroy_leaves_no_labelled_server(api: HcloudApi) -> None:
    """The sweep's delete removes every server of the stack's bridge labels (made by the
    autoscaler or not) and their placement groups; another stack's servers stay."""
    from components.cloud.hetzner.sweep import SweepProvider

    ours = existing(api, 3)
    other = api.add_server("other-jvb-1", {"jitsi-xxl/stack": "other", "jitsi-xxl/role": "jvb"},
                           "10.0.3.5")  # fmt: skip
    api.groups[1] = {
        "id": 1, "name": "summit-jvb-spread-1", "type": "spread", "labels": LABELS,
        "servers": list(ours), "created": "2026-11-28T10:00:00+00:00",
    }  # fmt: skip
    provider = SweepProvider()
    props = {"selector": SELECTOR, "endpoint": api.url, "token": "stand-in-token"}
    assert provider.create(props).id == SELECTOR
    # a changed token is an update, never a replacement (which would sweep a running pool)
    assert provider.diff(SELECTOR, props, {**props, "token": "new"}).replaces == []
    api.action_status = "running"  # deletions take a moment, as on Hetzner
    provider.delete(SELECTOR, props)
    assert list(api.servers) == [other]
    assert api.groups == {}
    # each deletion was seen finished before the group (which must be empty) went
    waited = [
        i for i, (m, p) in enumerate(api.calls) if m == "GET" and p.startswith("/v1/actions/")
    ]
    group_gone = api.calls.index(("DELETE", "/v1/placement_groups/1"))
    assert len(waited) == len(ours)
    assert max(waited) < group_gone


def unpacked(files: tuple[RenderedFile, ...], root: Path) -> dict[str, Any]:
    """The scaler VM's files written under `root`; its bridge template, pointing there."""
    for f in files:
        target = root / f.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f.content)
    template: dict[str, Any] = json.loads((root / BRIDGE_TEMPLATE.lstrip("/")).read_text())
    return {**template, "files_dir": str(root) + template["files_dir"]}


@pytest.mark.parametrize("stack", ["hetzner-10k", "trial"])
def test_bridges_made_on_the_vm_get_exactly_the_rendered_user_data(
    stack: str, tmp_path: Path
) -> None:
    """The scaler VM carries the bridges' files with placeholders (no second copy of their
    password in its archive beside its own secrets.env); the autoscaler fills and packs them.
    The result is byte for byte the bridges' render with the values."""
    settings = load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml").settings
    the_plan = plan(settings)
    creds = Credentials.throwaway()
    vm = scaler_bundle(settings, the_plan, creds, api_token="a" * 64)
    template = unpacked(vm.files, tmp_path)
    carried = "\n".join(f.content for f in vm.files if f.path.startswith(BRIDGE_FILES))
    assert creds.jvb_password not in carried
    values = scaler.read_secrets(tmp_path / SECRETS_FILE.lstrip("/"))
    assert values[TOKEN_NAME] == "a" * 64
    made = scaler.bridge_user_data(template, values)
    assert made == bridge_bundle(settings, the_plan, creds).user_data
    with pytest.raises(ValueError, match="no value for the bridges' JVB_PASSWORD"):
        scaler.bridge_user_data(template, {})


def test_the_scaler_vm_has_room_left_under_the_cap() -> None:
    """Its own 32 KiB: the template and the autoscaler with a third of the cap to spare,
    whatever the number of visitor nodes (the bridges do not depend on it)."""
    for stack in ("hetzner-10k", "trial"):
        settings = load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml").settings
        vm = scaler_bundle(settings, plan(settings), Credentials.throwaway(), api_token="a" * 64)
        size = len(user_data_bytes(vm.user_data, Cloud.hetzner))
        assert size <= USER_DATA_CAPS[Cloud.hetzner] * 2 // 3, size


def test_without_a_token_the_vm_carries_none() -> None:
    settings = load_stack_file(ROOT / "stacks" / "Pulumi.trial.yaml").settings
    vm = scaler_bundle(settings, plan(settings), Credentials.throwaway())
    assert TOKEN_NAME not in vm.file(SECRETS_FILE).content
