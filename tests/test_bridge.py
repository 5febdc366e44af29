"""Bridge VM: jvb.conf against the videobridge's reference.conf, the units and the bootstrap
through the real tools, and the agent (identity, stress metric, drain) against stand-ins.

Stand-ins, each playing a documented protocol on 127.0.0.1, because the real thing cannot
run here:
- the videobridge's private REST API (COLIBRI `GET /colibri/stats`, `POST /colibri/drain/
  enable`, `POST /colibri/shutdown` with `{"graceful-shutdown": true}`, per the
  jitsi-videobridge docs `rest.md`), with participants falling over time;
- EC2 instance metadata, IMDSv2 only (`PUT /latest/api/token`, then `GET /latest/meta-data/
  ...` with the token header), including `autoscaling/target-lifecycle-state`;
- Hetzner Cloud's metadata service (`/hetzner/v1/metadata/...`).
The Auto Scaling and CloudWatch APIs stand in as botocore Stubbers: the real boto3 clients,
which validate every call against the services' own API models, without the network.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st
from pyhocon import ConfigFactory

from components.agents import bridge_agent as agent
from components.model.credentials import Credentials
from components.model.planner import bridge_server_id, colibri_ws_route, plan
from components.model.settings import StackFile, load_stack_file, parse_settings
from components.rendering.bridge_files import IDENTITY_FILE, agent_config, bridge_bundle
from components.rendering.userdata import empty_python_docs
from tests.conftest import ROOT, example_stacks, require_tool
from tests.hocon_oracle import known_keys, leaf_paths

# reference.conf leaves `apis.xmpp-client.configs.<id>` to MucClientConfiguration; these are
# the keys the videobridge's Debian package writes there (jitsi-visitors.md, section 7.1).
MUC_CLIENT_KEYS = {
    "hostname", "domain", "username", "password", "muc_jids", "muc_nickname",
    "disable_certificate_verification",
}  # fmt: skip


def bridge(stack: StackFile) -> Any:
    return bridge_bundle(stack.settings, plan(stack.settings), Credentials.placeholders())


AWS_ID = agent.Identity("i-0abc123def4567890", "10.0.1.37", "3.120.5.6", "eu-central-1", True)
HETZNER_ID = agent.Identity("48213377", "10.0.2.5", "49.12.1.2", "eu-central", False)


# --- jvb.conf -------------------------------------------------------------------------------


def parsed_jvb(stack: StackFile, identity: agent.Identity, tmp_path: Path) -> Any:
    jvb = bridge(stack).file("/etc/jitsi/videobridge/jvb.conf")
    (tmp_path / "jvb.conf").write_text(jvb.content)
    (tmp_path / Path(IDENTITY_FILE).name).write_text(
        agent.identity_hocon(identity, stack.settings.bridges.websockets)
    )
    return ConfigFactory.parse_file(str(tmp_path / "jvb.conf"))


@pytest.mark.parametrize("identity", [AWS_ID, HETZNER_ID], ids=["aws", "hetzner"])
def test_every_jvb_key_exists_upstream(
    stack: StackFile, identity: agent.Identity, tmp_path: Path
) -> None:
    reference = known_keys("videobridge")
    conf = parsed_jvb(stack, identity, tmp_path)
    ours = leaf_paths(conf)
    prefix = "videobridge.apis.xmpp-client.configs.xxl."
    muc = {k.removeprefix(prefix) for k in ours if k.startswith(prefix)}
    assert muc <= MUC_CLIENT_KEYS
    unknown = {k for k in ours if not k.startswith(prefix)} - reference
    assert not unknown, f"keys the videobridge does not know: {sorted(unknown)}"


def test_jvb_conf_values(stack: StackFile, tmp_path: Path) -> None:
    conf = parsed_jvb(stack, AWS_ID, tmp_path)
    p = plan(stack.settings)
    client = conf["videobridge.apis.xmpp-client.configs.xxl"]
    assert client["hostname"] == p.network.signaling_private_ip
    assert client["domain"] == f"auth.{stack.settings.domain}"
    assert client["username"] == "jvb"
    assert client["muc_jids"] == f"jvbbrewery@internal.auth.{stack.settings.domain}"
    assert client["muc_nickname"] == AWS_ID.name
    assert conf["videobridge.apis.rest.enabled"] is True
    assert conf["videobridge.rest.shutdown.enabled"] is True
    assert conf["videobridge.http-servers.private.host"] == "127.0.0.1"
    assert conf["videobridge.relay.enabled"] is True
    assert conf["videobridge.relay.relay-id"] == AWS_ID.name
    assert conf["videobridge.relay.region"] == "eu-central-1"
    assert conf["videobridge.ice.udp.port"] == 10000
    minutes = stack.settings.bridges.graceful_shutdown_max_minutes
    assert conf["videobridge.shutdown.graceful-shutdown-max-duration"] == f"{minutes} minutes"
    mapping = conf["ice4j.harvest.mapping.static-mappings"][0]
    assert (mapping["local-address"], mapping["public-address"]) == ("10.0.1.37", "3.120.5.6")


def test_websockets_match_the_nginx_route(tmp_path: Path) -> None:
    settings = parse_settings(
        {
            "cloud": "hetzner",
            "domain": "live.example.org",
            "audience": 500,
            "tls": {"mode": "self-signed"},
            "bridges": {"websockets": True},
        }
    )
    stack = StackFile(name="ws", settings=settings, providers={}, secrets=frozenset())
    conf = parsed_jvb(stack, HETZNER_ID, tmp_path)
    assert conf["videobridge.websockets.enabled"] is True
    assert conf["videobridge.websockets.domains"] == ["live.example.org:443"]
    assert conf["videobridge.http-servers.public.port"] == 9090
    server_id = conf["videobridge.websockets.server-id"]
    regex, _ = colibri_ws_route(settings.network.cidr, 9090)
    assert re.match(regex, f"/colibri-ws/{server_id}/conf/ep")


def test_hetzner_needs_no_ice_mapping(tmp_path: Path) -> None:
    text = agent.identity_hocon(HETZNER_ID, websockets=False)
    assert "static-mappings" not in text
    assert "server-id" not in text


# --- real tools -------------------------------------------------------------------------------


def test_units_verify_silently(stack: StackFile, tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    units = [f for f in bridge(stack).files if f.path.endswith(".service")]
    assert {Path(u.path).name for u in units} >= {
        "jitsi-xxl-identity.service",
        "jitsi-xxl-drain.service",
    }
    for unit in units:
        path = tmp_path / Path(unit.path).name
        path.write_text(unit.content)
        proc = subprocess.run(
            [analyze, "verify", str(path)], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == "", proc.stderr


def test_drain_unit_outlasts_the_drain(stack: StackFile) -> None:
    unit = bridge(stack).file("/etc/systemd/system/jitsi-xxl-drain.service").content
    timeout = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1))  # type: ignore[union-attr]
    assert timeout > stack.settings.bridges.graceful_shutdown_max_minutes * 60
    assert "After=network-online.target jitsi-videobridge2.service" in unit


def test_bootstrap_shellcheck(stack: StackFile, tmp_path: Path) -> None:
    shellcheck = require_tool("shellcheck")
    script = tmp_path / "bootstrap"
    script.write_text(bridge(stack).file("/usr/local/sbin/jitsi-xxl-bootstrap").content)
    proc = subprocess.run(
        [shellcheck, "--severity=style", str(script)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout


def test_cloud_init_schema_and_caps(stack: StackFile, tmp_path: Path) -> None:
    cloud_init = require_tool("cloud-init")
    path = tmp_path / "cloud-init.yaml"
    path.write_text(bridge(stack).user_data)
    proc = subprocess.run(
        [cloud_init, "schema", "--config-file", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_agent_is_shipped_as_it_is(stack: StackFile) -> None:
    shipped = bridge(stack).file("/usr/local/lib/jitsi-xxl/bridge_agent.py").content
    # as it is, but for its docstrings and comments (userdata.empty_python_docs)
    assert shipped == empty_python_docs(Path(agent.__file__).read_text())
    config = json.loads(bridge(stack).file("/etc/jitsi/xxl/agent.json").content)
    assert config == agent_config(stack.settings)
    assert agent.Config(**config).graceful_shutdown_max_seconds == (
        stack.settings.bridges.graceful_shutdown_max_minutes * 60
    )


def test_agent_runs_on_the_vms_python_alone(tmp_path: Path) -> None:
    """The agent imports nothing of this project: it must start with a bare python3."""
    python = shutil.which("python3") or "python3"
    script = tmp_path / "bridge_agent.py"
    script.write_text(Path(agent.__file__).read_text())
    proc = subprocess.run(
        [python, "-I", str(script), "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "identity" in proc.stdout


# --- identity -------------------------------------------------------------------------------


@given(st.ip_addresses(v=4))
def test_server_id_equals_the_planners(ip: Any) -> None:
    identity = agent.Identity("i-1", str(ip), None, "r", False)
    assert identity.server_id == bridge_server_id(str(ip))


@given(st.lists(st.text(min_size=1, max_size=40), min_size=2, max_size=2, unique=True))
def test_names_are_safe_tokens(ids: list[str]) -> None:
    for instance_id in ids:
        name = agent.Identity(instance_id, "10.0.0.1", None, "r", False).name
        assert re.fullmatch(r"jvb-[a-z0-9-]*", name)


# --- stand-in servers -----------------------------------------------------------------------

TRUNCATED = '{"participants": '  # an answer the stand-in cuts off mid-body


class StandIn:
    """A loopback HTTP server whose answers come from a function of (method, path, body)."""

    def __init__(
        self, answer: Callable[[str, str, bytes, dict[str, str]], tuple[int, str]]
    ) -> None:
        self.calls: list[tuple[str, str, bytes]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                stand_in.calls.append((self.command, self.path, body))
                # HTTP header names are case-insensitive: hand them over in lower case
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, text = answer(self.command, self.path, body, headers)
                data = text.encode()
                self.send_response(status)
                # a cut-off answer: more announced than sent, then the connection closes
                cut = text == TRUNCATED
                self.send_header("Content-Length", str(len(data) + 64 if cut else len(data)))
                if cut:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _serve  # noqa: N815

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def paths(self, method: str | None = None) -> list[str]:
        return [p for m, p, _ in self.calls if method is None or m == method]


@pytest.fixture
def stand_ins() -> Iterator[list[StandIn]]:
    made: list[StandIn] = []
    yield made
    for s in made:
        s.close()


def fake_jvb(
    participants: list[int], fail: Callable[[int], int | None] = lambda _: None
) -> Callable[..., tuple[int, str]]:
    """COLIBRI REST: stats report `participants[i]` on the i-th call (the last one repeats);
    `fail(i)` may answer an HTTP error status for the i-th stats call instead."""
    state = {"stats": 0}

    def answer(method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        if method == "POST" and path in {"/colibri/drain/enable", "/colibri/shutdown"}:
            if path == "/colibri/shutdown" and json.loads(body) != {"graceful-shutdown": True}:
                return 400, "bad shutdown body"
            return 200, ""
        if method == "GET" and path == "/about/health":
            return 200, ""
        if method == "GET" and path == "/colibri/stats":
            i = state["stats"]
            state["stats"] += 1
            status = fail(i)
            if status:
                return status, "oops"
            count = participants[min(i, len(participants) - 1)]
            return 200, json.dumps(
                {"participants": count + 1, "octo_endpoints": 1, "stress_level": 0.42}
            )
        return 404, ""

    return answer


def agent_cfg(folder: Path, **values: Any) -> agent.Config:
    """The agent's config as rendered, pointed at stand-ins; state and report in `folder`."""
    rendered = agent_config(parse_settings({"cloud": "aws", "domain": "meet.example.org",
                                            "tls": {"mode": "self-signed"}}))  # fmt: skip
    rendered |= {
        "identity_file": str(folder / "identity.conf"),
        "ready_report": str(folder / "ready.json"),
        "drain_state_file": str(folder / "run" / "drain-started"),
        "poll_seconds": 30,
    }
    return agent.Config(**(rendered | values))


class Clock:
    """Drain's clock and sleep, so a one-hour bound takes milliseconds."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_drain_sequence_in_order(stand_ins: list[StandIn]) -> None:
    jvb = StandIn(fake_jvb([40, 25, 10, 3, 0]))
    stand_ins.append(jvb)
    beats: list[float] = []
    clock = Clock()
    reason = agent.drain(
        agent.Jvb(jvb.url), lambda: beats.append(clock.now),
        max_seconds=3600, poll_seconds=30, heartbeat_seconds=60, clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert reason.reason == "empty"
    assert jvb.paths()[:2] == ["/colibri/drain/enable", "/colibri/shutdown"]
    assert jvb.paths()[2:] == ["/colibri/stats"] * 5
    assert beats, "no lifecycle heartbeat while draining"


def test_drain_stops_at_the_bound(stand_ins: list[StandIn]) -> None:
    jvb = StandIn(fake_jvb([7]))  # never empties
    stand_ins.append(jvb)
    clock = Clock()
    beats: list[float] = []
    reason = agent.drain(
        agent.Jvb(jvb.url), lambda: beats.append(clock.now),
        max_seconds=600, poll_seconds=5, heartbeat_seconds=60, clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert reason.reason == "bound"
    assert 600 <= clock.now <= 605
    # a heartbeat every minute until the bound, well inside the hook's 5-minute timeout
    assert beats == [60.0 * i for i in range(1, 10)]


def test_drain_survives_errors_and_slowness(stand_ins: list[StandIn]) -> None:
    def slow_then_error(i: int) -> int | None:
        if i == 1:
            time.sleep(0.5)  # longer than the client's timeout below
        return 500 if i in {0, 2} else None

    jvb = StandIn(fake_jvb([9, 9, 9, 4, 0], slow_then_error))
    stand_ins.append(jvb)
    clock = Clock()
    reason = agent.drain(
        agent.Jvb(jvb.url, timeout=0.2), lambda: None,
        max_seconds=3600, poll_seconds=5, heartbeat_seconds=60, clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert reason.reason == "empty"


def test_drain_of_a_stopped_jvb_returns_at_once() -> None:
    free = StandIn(fake_jvb([0]))
    url = free.url
    free.close()  # nothing listens there any more
    assert agent.drain(
        agent.Jvb(url), lambda: None, max_seconds=3600, poll_seconds=5, heartbeat_seconds=60,
        clock=Clock(), sleep=lambda _: None,
    ).reason == "exited"  # fmt: skip


def fake_imds(states: list[str], token: str = "tok-1") -> Callable[..., tuple[int, str]]:  # noqa: S107
    """IMDSv2: a token from PUT, required on every GET; the lifecycle state follows `states`."""
    meta = {
        "instance-id": "i-0abc123def4567890",
        "local-ipv4": "10.0.1.37",
        "public-ipv4": "3.120.5.6",
        "placement/region": "eu-central-1",
        "tags/instance/aws:autoscaling:groupName": "jitsi-jvb-asg",
    }
    state = {"lifecycle": 0}

    def answer(method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        if method == "PUT" and path == "/latest/api/token":
            return (200, token) if "x-aws-ec2-metadata-token-ttl-seconds" in headers else (400, "")
        if headers.get("x-aws-ec2-metadata-token") != token:
            return 401, ""  # IMDSv1 is off
        key = path.removeprefix("/latest/meta-data/")
        if key == "autoscaling/target-lifecycle-state":
            i = state["lifecycle"]
            state["lifecycle"] += 1
            return 200, states[min(i, len(states) - 1)]
        return (200, meta[key]) if key in meta else (404, "")

    return answer


class Recording:
    """A boto3 client wrapper that records every API call made through it."""

    def __init__(self, client: Any, calls: list[str]) -> None:
        self._client = client
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            self._calls.append(name)
            return method(**kwargs)

        return call


def stubbed_clients(
    expect: Callable[[Stubber, Stubber], None],
) -> tuple[Callable[[str, str], Any], list[Stubber], list[str]]:
    keys = {"region_name": "eu-central-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    asg = boto3.client("autoscaling", **keys)
    cw = boto3.client("cloudwatch", **keys)
    stubs = [Stubber(asg), Stubber(cw)]
    expect(*stubs)
    for s in stubs:
        s.activate()
    calls: list[str] = []
    clients = {"autoscaling": Recording(asg, calls), "cloudwatch": Recording(cw, calls)}
    return (lambda service, region: clients[service]), stubs, calls


def test_aws_identity_needs_imdsv2(stand_ins: list[StandIn]) -> None:
    imds = StandIn(fake_imds(["InService"]))
    stand_ins.append(imds)
    identity = agent.Aws(imds.url, "JitsiXXL", "StressLevel").identity()
    assert identity == AWS_ID
    assert imds.paths("PUT") == ["/latest/api/token"]


def test_hetzner_identity(stand_ins: list[StandIn]) -> None:
    meta = {
        "instance-id": "48213377",
        "public-ipv4": "49.12.1.2",
        "region": "eu-central",
        "private-networks": "- ip: 10.0.2.5\n  alias_ips: []\n  interface_num: 1\n"
        "  network_id: 4711\n  network: 10.0.0.0/16\n  subnet: 10.0.2.0/24\n",
    }
    server = StandIn(
        lambda m, path, b, h: (
            (200, meta[k])
            if (k := path.removeprefix("/hetzner/v1/metadata/")) in meta
            else (404, "")
        )
    )
    stand_ins.append(server)
    assert agent.Hetzner(server.url).identity() == HETZNER_ID


def test_identities_of_two_bridges_differ() -> None:
    other = agent.Identity("i-0fff", "10.0.2.9", "3.1.1.1", "eu-central-1", True)
    assert AWS_ID.name != other.name
    assert AWS_ID.server_id != other.server_id
    assert agent.identity_hocon(AWS_ID, True) != agent.identity_hocon(other, True)


def test_run_publishes_stress_then_drains_and_completes_once(
    stand_ins: list[StandIn], tmp_path: Path
) -> None:
    jvb = StandIn(fake_jvb([5, 5, 5, 2, 0]))
    imds = StandIn(fake_imds(["InService", "InService", "Terminated"]))
    stand_ins += [jvb, imds]
    hook = {
        "LifecycleHookName": "jitsi-xxl-drain",
        "AutoScalingGroupName": "jitsi-jvb-asg",
        "InstanceId": "i-0abc123def4567890",
    }

    def expect(asg: Stubber, cw: Stubber) -> None:
        cw.add_response("put_metric_data", {}, {
            "Namespace": "JitsiXXL",
            "MetricData": [{
                "MetricName": "StressLevel", "Value": 0.42, "Unit": "None",
                "Dimensions": [{"Name": "AutoScalingGroupName", "Value": "jitsi-jvb-asg"}],
            }],
        })  # fmt: skip
        asg.add_response("record_lifecycle_action_heartbeat", {}, hook)
        asg.add_response(
            "complete_lifecycle_action", {}, {**hook, "LifecycleActionResult": "CONTINUE"}
        )

    clients, stubs, calls = stubbed_clients(expect)
    cfg = agent_cfg(tmp_path, jvb_url=jvb.url, metadata_url=imds.url)
    clock = Clock()
    cloud = agent.Aws(imds.url, cfg.metric_namespace, cfg.metric_name, clients)
    reason = agent.run(agent.Jvb(jvb.url), cloud, cfg, clock=clock, sleep=clock.sleep, rounds=10)
    assert reason == "empty"
    for s in stubs:
        s.assert_no_pending_responses()
    # one metric point, one heartbeat, and the lifecycle action completed exactly once
    assert calls == [
        "put_metric_data",
        "record_lifecycle_action_heartbeat",
        "complete_lifecycle_action",
    ]
    assert jvb.paths("POST") == ["/colibri/drain/enable", "/colibri/shutdown"]


def test_run_survives_a_failing_cloud(stand_ins: list[StandIn], tmp_path: Path) -> None:
    jvb = StandIn(fake_jvb([3]))
    imds = StandIn(lambda *a: (500, "down"))
    stand_ins += [jvb, imds]
    cfg = agent_cfg(
        tmp_path, jvb_url=jvb.url, metadata_url=imds.url, graceful_shutdown_max_seconds=60,
        poll_seconds=5, metric_namespace="N", metric_name="M",
    )  # fmt: skip
    clock = Clock()
    cloud = agent.Aws(imds.url, "N", "M", lambda s, r: None)
    assert (
        agent.run(agent.Jvb(jvb.url), cloud, cfg, clock=clock, sleep=clock.sleep, rounds=5)
        == "stopped"
    )


# --- the agent's failure cases -------------------------------------------------------------


def garbled_jvb(answers: list[tuple[int, str]]) -> Callable[..., tuple[int, str]]:
    """COLIBRI REST whose stats calls answer `answers` in turn (the last one repeats)."""
    state = {"stats": 0}

    def answer(method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        if method == "POST":
            return 200, ""
        if path == "/colibri/stats":
            i = state["stats"]
            state["stats"] += 1
            return answers[min(i, len(answers) - 1)]
        return 200, ""

    return answer


def test_malformed_answers_do_not_end_the_drain(stand_ins: list[StandIn]) -> None:
    """A cut-off body, HTML, counts that are not numbers, a list: logged, and the drain goes
    on on the same clock until the bridge is empty."""
    jvb = StandIn(garbled_jvb([
        (200, TRUNCATED),
        (200, "<html>busy</html>"),
        (200, json.dumps({"participants": "many", "octo_endpoints": 0})),
        (200, json.dumps({"participants": {"n": 3}})),
        (200, json.dumps([1, 2])),
        (200, json.dumps({"participants": 4, "octo_endpoints": 1})),
        (200, json.dumps({"participants": 1, "octo_endpoints": 1})),
    ]))  # fmt: skip
    stand_ins.append(jvb)
    clock = Clock()
    drained = agent.drain(
        agent.Jvb(jvb.url), lambda: None,
        max_seconds=3600, poll_seconds=5, heartbeat_seconds=60, clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert drained.reason == "empty"
    assert jvb.paths("GET").count("/colibri/stats") == 7
    assert clock.now == 30.0  # one poll per answer: nothing started the wait again


def test_a_restarted_agent_continues_the_drain_on_its_clock(
    stand_ins: list[StandIn], tmp_path: Path
) -> None:
    """The drain's start is kept: an agent started again 50 minutes into a 60-minute drain
    waits the 10 minutes left, not another hour."""
    state = tmp_path / "run" / "drain-started"
    wall = {"now": 1_000_000.0}
    first = agent.DrainClock(state, wall=lambda: wall["now"])
    assert first.started() == 0.0
    wall["now"] += 3000  # the agent is restarted 50 minutes later
    already = agent.DrainClock(state, wall=lambda: wall["now"]).started()
    assert already == 3000.0
    jvb = StandIn(fake_jvb([7]))  # never empties
    stand_ins.append(jvb)
    clock = Clock()
    drained = agent.drain(
        agent.Jvb(jvb.url), lambda: None, max_seconds=3600, poll_seconds=5,
        heartbeat_seconds=60, clock=clock, sleep=clock.sleep, already=already,
    )  # fmt: skip
    assert drained.reason == "bound"
    assert 600 <= clock.now <= 605


def always_failing(calls: list[float], clock: Clock, succeed_after: int | None = None) -> Any:
    def complete() -> None:
        calls.append(clock.now)
        if succeed_after is None or len(calls) <= succeed_after:
            raise RuntimeError("Rate exceeded")

    return complete


def test_completion_is_retried_until_the_hook_times_out() -> None:
    clock = Clock()
    calls: list[float] = []
    done = agent.complete_until(
        always_failing(calls, clock), deadline=300.0, clock=clock, sleep=clock.sleep
    )
    assert done is False
    assert len(calls) > agent.TRIES  # more than the old five tries
    assert calls[-1] >= 300.0  # the last try is at or after the hook's timeout
    assert clock.now < 300.0 + 31  # and nothing waits past it for long


def test_completion_that_succeeds_late_is_done() -> None:
    clock = Clock()
    calls: list[float] = []
    done = agent.complete_until(
        always_failing(calls, clock, succeed_after=7), 300.0, clock=clock, sleep=clock.sleep
    )
    assert done is True
    assert len(calls) == 8


class FailingLifecycle:
    """A cloud whose instance is being terminated and whose lifecycle API always fails."""

    def __init__(self) -> None:
        self.completes = 0

    def identity(self) -> agent.Identity:
        return AWS_ID

    def termination_requested(self) -> bool:
        return True

    def heartbeat(self) -> None:
        raise RuntimeError("throttled")

    def complete(self) -> None:
        self.completes += 1
        raise RuntimeError("throttled")

    def publish_stress(self, value: float) -> None:
        return None

    def mark_unhealthy(self, reason: str) -> None:
        return None


def test_run_reports_an_incomplete_lifecycle_action(
    stand_ins: list[StandIn], tmp_path: Path
) -> None:
    """The agent's exit status is non-zero then (main maps `incomplete` to 1), so systemd's
    Restart=on-failure runs it again; before, it exited 0 after five tries."""
    jvb = StandIn(fake_jvb([0]))
    stand_ins.append(jvb)
    cloud = FailingLifecycle()
    clock = Clock()
    cfg = agent_cfg(tmp_path, jvb_url=jvb.url, metadata_url="http://127.0.0.1:9")
    reason = agent.run(agent.Jvb(jvb.url), cloud, cfg, clock=clock, sleep=clock.sleep, rounds=3)
    assert reason == "incomplete"
    assert cloud.completes > agent.TRIES
    assert clock.now >= cfg.hook_heartbeat_timeout_seconds


def health_jvb(healthy: Callable[[], bool]) -> Callable[..., tuple[int, str]]:
    def answer(method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        if path == "/about/health":
            return (200, "") if healthy() else (500, "unhealthy")
        if path == "/colibri/stats":
            return 200, json.dumps({"participants": 0, "stress_level": 0.1})
        return 404, ""

    return answer


def test_a_bridge_not_serving_is_reported_unhealthy_once(
    stand_ins: list[StandIn], tmp_path: Path
) -> None:
    """AWS: after the health check has failed for `unhealthy_after_seconds`, the instance is
    set Unhealthy once (the group replaces it) and the readiness report says so."""
    clock = Clock()
    jvb = StandIn(health_jvb(lambda: clock.now < 100))
    imds = StandIn(fake_imds(["InService"]))
    stand_ins += [jvb, imds]
    (tmp_path / "ready.json").write_text(json.dumps({"ready": True}))

    def expect(asg: Stubber, cw: Stubber) -> None:
        cw.add_response("put_metric_data", {})
        asg.add_response("set_instance_health", {}, {
            "InstanceId": "i-0abc123def4567890", "HealthStatus": "Unhealthy",
            "ShouldRespectGracePeriod": True,
        })  # fmt: skip
        for _ in range(20):
            cw.add_response("put_metric_data", {})

    clients, _, calls = stubbed_clients(expect)
    cfg = agent_cfg(tmp_path, jvb_url=jvb.url, metadata_url=imds.url, poll_seconds=10)
    cloud = agent.Aws(imds.url, cfg.metric_namespace, cfg.metric_name, clients)
    agent.run(agent.Jvb(jvb.url), cloud, cfg, clock=clock, sleep=clock.sleep, rounds=60)
    assert calls.count("set_instance_health") == 1
    report = json.loads((tmp_path / "ready.json").read_text())
    assert report["ready"] is True  # the bootstrap's part stays
    assert report["health"]["serving"] is False
    assert "health check has failed for 180 s" in report["health"]["detail"]


def test_hetzner_health_goes_to_the_readiness_report(
    stand_ins: list[StandIn], tmp_path: Path
) -> None:
    """No service replaces a Hetzner server: the report says not serving, then serving again.
    The agent never makes the report: its presence tells that the boot is over."""
    clock = Clock()
    jvb = StandIn(health_jvb(lambda: not 100 <= clock.now < 400))
    stand_ins.append(jvb)
    cfg = agent_cfg(tmp_path, cloud="hetzner", jvb_url=jvb.url, poll_seconds=10)
    hetzner = agent.Hetzner("http://127.0.0.1:9")
    agent.run(agent.Jvb(jvb.url), hetzner, cfg, clock=clock, sleep=clock.sleep, rounds=3)
    assert not (tmp_path / "ready.json").exists()
    (tmp_path / "ready.json").write_text(json.dumps({"ready": True}))
    states: list[bool] = []

    def watch(seconds: float) -> None:
        clock.sleep(seconds)
        if (tmp_path / "ready.json").exists():
            serving = json.loads((tmp_path / "ready.json").read_text())["health"]["serving"]
            if not states or states[-1] != serving:
                states.append(serving)

    agent.run(agent.Jvb(jvb.url), hetzner, cfg, clock=clock, sleep=watch, rounds=60)
    assert states == [True, False, True]
    assert json.loads((tmp_path / "ready.json").read_text())["ready"] is True


@pytest.mark.parametrize("stack", example_stacks(ROOT / "stacks"), ids=lambda p: p.stem)
def test_videobridge_files_belong_to_the_packages_group(stack: Path) -> None:
    """The real jitsi-videobridge2 runs as jvb in group jitsi and deletes any `jvb` group:
    a file or chgrp naming `jvb` stops the bootstrap (the bridge twin found it)."""
    files = bridge(load_stack_file(stack))
    assert files.file("/etc/jitsi/videobridge/jvb.conf").group == "jitsi"
    bootstrap = next(f for f in files.files if f.path.endswith("jitsi-xxl-bootstrap")).content
    assert 'chgrp jitsi "${IDENTITY_FILE}"' in bootstrap
    assert "chgrp jvb" not in bootstrap
    assert all(f.group != "jvb" for f in files.files)


def test_hetzner_bridges_show_their_stress_to_the_autoscaler(
    stand_ins: list[StandIn], tmp_path: Path
) -> None:
    """The agent keeps the videobridge's stress and endpoints on a read-only board the
    autoscaler reads over the private network; stale or never filled, it answers 503."""
    clock = Clock()
    jvb = StandIn(fake_jvb([6]))
    stand_ins.append(jvb)
    cfg = agent_cfg(tmp_path, cloud="hetzner", jvb_url=jvb.url, poll_seconds=10)
    board = agent.Board(clock=clock, fresh=30)
    assert board.read() is None
    server = agent.serve_board(board, "127.0.0.1", 0)
    port = server.server_address[1]
    try:
        with pytest.raises(urllib.error.HTTPError) as empty:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/xxl/stats", timeout=2)
        assert empty.value.code == 503
        agent.run(agent.Jvb(jvb.url), agent.Hetzner("http://127.0.0.1:9"), cfg,
                  clock=clock, sleep=clock.sleep, rounds=2, board=board)  # fmt: skip
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/xxl/stats", timeout=2) as r:
            assert json.loads(r.read()) == {"stress_level": 0.42, "endpoints": 6}
        clock.sleep(31)
        assert board.read() is None
    finally:
        server.shutdown()
        server.server_close()
    assert (
        agent_config(
            parse_settings(
                {"cloud": "hetzner", "domain": "a.example.org", "tls": {"mode": "self-signed"}}
            )
        )["stats_port"]
        == 8081
    )
    assert agent_cfg(tmp_path).stats_port == 0  # AWS publishes to CloudWatch instead
