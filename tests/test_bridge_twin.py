"""Bridge twins: videobridge VMs booted from their exact user data beside the signaling twin.

Each bridge is a Debian 13 container on the signaling twin's private network, booted from the
bridge user data (rendered for the twin's archive), with the cloud stood in for
(`components/twin/bridges.py`, `cloud_stub.py`) and the `jitsi-videobridge2` stand-in
(`components/twin/standins/jvb.py`). Two Hetzner bridges and one AWS bridge; the signaling
twin is the Hetzner example with one visitor node (the bridges need only its main prosody).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import slixmpp

from components.agents.hetzner_autoscaler import NO_TOKEN_EXIT
from components.model import naming
from components.model.ports import BRIDGE_STATS_PORT
from components.model.project import Cloud
from components.model.settings import Settings, load_stack_file
from components.model.xmpp import names
from components.rendering.bridge_files import (
    DRAIN_STOP_MARGIN_SECONDS,
    IDENTITY_FILE,
    STRESS_METRIC,
    STRESS_NAMESPACE,
)
from components.rendering.scaler_files import TOKEN_NAME
from components.rendering.scaler_files import UNIT as AUTOSCALER_UNIT
from components.rendering.secrets_delivery import OFFLINE_STACK, SECRETS_FILE
from components.rendering.signaling_files import LOOPBACK
from components.twin import bridges, rig, scaler
from components.twin.cloud_stub import Call
from components.twin.hcloud_api import HcloudApi
from tests.conftest import ROOT, require_twin
from tests.xmpp_clients import c2s_close, c2s_join, c2s_login

pytestmark = pytest.mark.twin
UNITS = ("jitsi-xxl-drain", "jitsi-videobridge2", "jitsi-xxl-agent", "jitsi-xxl-identity")


def twin_settings() -> Settings:
    base = load_stack_file(ROOT / "stacks" / "Pulumi.hetzner-10k.yaml").settings
    return base.model_copy(update={"visitors": base.visitors.model_copy(update={"nodes": 1})})


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bridge-twin")


@pytest.fixture(scope="module")
def twin(logs: Path) -> Iterator[rig.Twin]:
    require_twin()
    try:
        with rig.running(twin_settings(), keep=logs / "signaling") as booted:
            yield booted
    except rig.TwinError as exc:
        pytest.fail(f"the signaling twin did not boot: {exc}\n(logs kept in {logs})")


@pytest.fixture(scope="module")
def side(twin: rig.Twin) -> Iterator[bridges.CloudSide]:
    with bridges.cloud(twin) as cloud_side:
        yield cloud_side


def _boot(
    twin: rig.Twin, side: bridges.CloudSide, index: int, cloud: Cloud, logs: Path
) -> Iterator[bridges.Bridge]:
    try:
        with bridges.running(twin, side, index, cloud, keep=logs / f"bridge-{index}") as b:
            yield b
    except rig.TwinError as exc:
        pytest.fail(f"bridge {index} ({cloud}) did not boot: {exc}\n(logs kept in {logs})")


@pytest.fixture(scope="module")
def first(twin: rig.Twin, side: bridges.CloudSide, logs: Path) -> Iterator[bridges.Bridge]:
    yield from _boot(twin, side, 0, Cloud.hetzner, logs)


@pytest.fixture(scope="module")
def second(
    twin: rig.Twin, side: bridges.CloudSide, logs: Path, first: bridges.Bridge
) -> Iterator[bridges.Bridge]:
    yield from _boot(twin, side, 1, Cloud.hetzner, logs)


@pytest.fixture(scope="module")
def aws_bridge(twin: rig.Twin, side: bridges.CloudSide, logs: Path) -> Iterator[bridges.Bridge]:
    yield from _boot(twin, side, 2, Cloud.aws, logs)


def unit_log(bridge: rig.Vm, unit: str) -> str:
    return bridge.run("journalctl", "-u", unit, "--no-pager", "-o", "cat").stdout


def timespan_seconds(text: str) -> float:
    """A systemd time span as `systemctl show` prints it ("1h 2min", "7min 30s")."""
    units = {"d": 86400, "h": 3600, "min": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(d|h|min|ms|s)\b", text)
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        raise ValueError(f"not a systemd time span: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def brewery_occupants(twin: rig.Twin) -> list[str]:
    """The brewery's occupants as the signaling VM's prosody reports them to a new occupant
    (the bridges' account, over the published private c2s port)."""
    n = names(twin.settings.domain)

    async def look() -> list[str]:
        client = await c2s_login(n["jvb_jid"], twin.creds.jvb_password, LOOPBACK, twin.ports["c2s"])
        try:
            await c2s_join(client, n["brewery_jid"], "twin-observer")
            await asyncio.sleep(0.5)
            roster = client.plugin["xep_0045"].get_roster(slixmpp.JID(n["brewery_jid"]))
            return sorted(str(nick) for nick in roster)
        finally:
            await c2s_close(client)

    return asyncio.run(look())


# -- identity and the brewery --------------------------------------------------------------


def test_identity_is_unique_and_from_the_metadata(
    first: bridges.Bridge, second: bridges.Bridge, side: bridges.CloudSide
) -> None:
    """The identity step wrote each bridge's own instance id (nickname, relay-id) from what the
    metadata service answered that bridge, and read its private address there."""
    includes = {b.index: b.path(IDENTITY_FILE).read_text() for b in (first, second)}
    assert len(set(includes.values())) == len(includes), includes
    for b in (first, second):
        include = includes[b.index]
        nickname = f"jvb-{b.instance.instance_id}"
        assert f'muc_nickname = "{nickname}"' in include, include
        assert f'relay-id = "{nickname}"' in include, include
        assert f'region = "{b.instance.region}"' in include, include
        assert f"private {b.private_ip}," in unit_log(b, "jitsi-xxl-identity")
        asked = {path for source, _m, path in side.stub.metadata_requests if source == b.private_ip}
        assert "/hetzner/v1/metadata/instance-id" in asked, asked
        assert b.ready_report()["ready"], b.ready_report()


def test_bridges_join_the_brewery_on_the_private_network(
    twin: rig.Twin, first: bridges.Bridge, second: bridges.Bridge
) -> None:
    """Seen from the signaling VM: the brewery MUC holds each bridge under its identity."""
    occupants = brewery_occupants(twin)
    for b in (first, second):
        assert f"jvb-{b.instance.instance_id}" in occupants, occupants
        log = unit_log(b, "jitsi-videobridge2")
        assert f"connecting to {twin.plan.network.signaling_private_ip}:5222" in log, log


def test_the_signaling_vm_reads_each_bridges_stress(
    twin: rig.Twin, first: bridges.Bridge, second: bridges.Bridge
) -> None:
    """Where the Hetzner autoscaler looks: each bridge's agent shows the videobridge's stress
    and endpoints, read-only, on the bridge's private address; the signaling VM reads it over
    the private network."""
    first.set_load(participants=5, stress_level=0.37)
    deadline = time.monotonic() + 60
    while True:
        seen = {}
        for b in (first, second):
            url = f"http://{b.private_ip}:{BRIDGE_STATS_PORT}/xxl/stats"
            got = twin.run("curl", "-fsS", "-m", "3", url)
            seen[b.index] = json.loads(got.stdout) if got.returncode == 0 else None
        if (
            seen[first.index] == {"stress_level": 0.37, "endpoints": 5}
            or time.monotonic() > deadline
        ):
            break
        time.sleep(2)
    assert seen[first.index] == {"stress_level": 0.37, "endpoints": 5}, seen
    other = seen[second.index]
    assert other is not None
    assert set(other) == {"stress_level", "endpoints"}
    # read-only: the drain stays on the videobridge's loopback API
    drain = f"http://{first.private_ip}:{BRIDGE_STATS_PORT}/colibri/drain/enable"
    posted = twin.run("curl", "-sS", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}",
                      "-X", "POST", drain)  # fmt: skip
    assert posted.stdout.strip() == "501", posted.stdout


# -- drain at poweroff (the Hetzner scale-in path) ------------------------------------------


def test_poweroff_drains_before_the_videobridge_stops(second: bridges.Bridge) -> None:
    """`poweroff` stops the drain unit first; the agent enables drain and graceful shutdown,
    the stand-in's endpoints leave, the drain ends empty, and only then the videobridge stops.
    The bound is proven from the unit and the agent's own line, not waited for."""
    bound = second.settings.bridges.graceful_shutdown_max_minutes * 60
    shown = second.run(
        "systemctl", "show", "jitsi-xxl-drain.service", "-p", "TimeoutStopUSec", "--value"
    ).stdout.strip()
    assert timespan_seconds(shown) == bound + DRAIN_STOP_MARGIN_SECONDS, shown
    assert second.set_load(participants=3, leave_seconds=1, exit_delay_seconds=8)["endpoints"] == 3

    second.poweroff()

    journal = second.journal(*(f"--unit={u}" for u in UNITS)).splitlines()

    def first_line(pattern: str) -> int:
        found = [i for i, line in enumerate(journal) if re.search(pattern, line)]
        assert found, f"no line matches {pattern!r}:\n" + "\n".join(journal[-60:])
        return found[0]

    waiting = first_line(rf"jitsi-xxl-agent: draining: .* waiting at most {bound} s$")
    graceful = first_line(r"graceful shutdown: waiting at most")
    empty = first_line(r"jitsi-xxl-agent: no endpoints left after \d+ s$")
    drained = first_line(r"Stopped jitsi-xxl-drain\.service")
    stopping = first_line(r"Stopping jitsi-videobridge2\.service")
    assert waiting < graceful < empty < drained < stopping, "\n".join(journal[waiting:])
    assert not [line for line in journal if "gave up waiting" in line]


# -- the AWS lifecycle path -------------------------------------------------------------------


def _one(calls: list[Call], what: str) -> Call:
    assert calls, f"no {what} call was recorded"
    return calls[-1]


def test_aws_lifecycle_drains_and_completes(
    aws_bridge: bridges.Bridge, side: bridges.CloudSide
) -> None:
    """Secrets came from SSM with the instance role; the stress metric is the stand-in's;
    Terminated at the metadata service makes the agent drain and complete with CONTINUE."""
    stub, me = side.stub, aws_bridge.private_ip
    ssm = _one(stub.calls_of("GetParametersByPath", me), "SSM")
    assert ssm.signed_with(stub.access_key), "SSM was not called with the instance role's keys"
    assert aws_bridge.ready_report()["ready"], aws_bridge.ready_report()

    aws_bridge.set_load(participants=2, stress_level=0.42, leave_seconds=1, exit_delay_seconds=8)
    # the agent publishes once a minute, the first time when it starts: restart it rather
    # than wait for the next minute
    aws_bridge.run("systemctl", "restart", "jitsi-xxl-agent.service", check=True)
    metric = bridges.wait_for(
        "PutMetricData with the stand-in's stress",
        lambda: [
            c
            for c in stub.calls_of("PutMetricData", me)
            if c.params.get("MetricData.member.1.Value") == "0.42"
        ],
        timeout=60,
    )[-1]
    assert metric.params["Namespace"] == STRESS_NAMESPACE
    assert metric.params["MetricData.member.1.MetricName"] == STRESS_METRIC
    assert metric.params["MetricData.member.1.Dimensions.member.1.Value"] == (
        aws_bridge.instance.group
    )

    aws_bridge.set_lifecycle_state("Terminated")
    complete = bridges.wait_for(
        "CompleteLifecycleAction",
        lambda: stub.calls_of("CompleteLifecycleAction", me),
        timeout=120,
    )[-1]
    assert complete.params["LifecycleActionResult"] == "CONTINUE"
    assert complete.params["InstanceId"] == aws_bridge.instance.instance_id
    assert complete.params["AutoScalingGroupName"] == aws_bridge.instance.group
    assert complete.signed_with(stub.access_key), "not signed with the instance role's keys"
    log = unit_log(aws_bridge, "jitsi-xxl-agent")
    assert "lifecycle action completed with CONTINUE (empty)" in log, log


# -- Hetzner's scaler VM ----------------------------------------------------------------------


def scaler_settings() -> Settings:
    """The twin's stack with a pool of 1 to 3 bridges: one bridge twin under load is enough
    to make the autoscaler grow it."""
    base = twin_settings()
    return base.model_copy(update={"bridges": base.bridges.model_copy(update={"min": 1, "max": 3})})


@pytest.fixture(scope="module")
def hcloud_api(twin: rig.Twin, side: bridges.CloudSide) -> Iterator[HcloudApi]:
    # the stand-in takes only this token, which the test gives the VM after its first boot
    with scaler.hcloud(twin, side, HcloudApi(token=secrets.token_hex(32))) as api:
        yield api


@pytest.fixture(scope="module")
def scaler_vm(twin: rig.Twin, hcloud_api: HcloudApi, logs: Path) -> Iterator[scaler.Scaler]:
    try:
        with scaler.running(twin, scaler_settings(), hcloud_api.url, keep=logs / "scaler") as vm:
            yield vm
    except rig.TwinError as exc:
        pytest.fail(f"the scaler VM did not boot: {exc}\n(logs kept in {logs})")


def autoscaler_state(vm: scaler.Scaler) -> dict[str, str]:
    shown = vm.run(
        "systemctl", "show", AUTOSCALER_UNIT, "-p", "ActiveState", "-p", "ExecMainStatus",
        "-p", "NRestarts",
    ).stdout  # fmt: skip
    return dict(line.split("=", 1) for line in shown.split())


def test_the_autoscaler_starts_with_the_rendered_config_and_refuses_without_a_token(
    scaler_vm: scaler.Scaler, hcloud_api: HcloudApi
) -> None:
    """Booted from its user data with no token (offline renders carry none): the unit reads
    the rendered config, loads Debian's hcloud library, says it has no token and exits with
    the status its unit does not restart; the API never hears from it."""
    log = unit_log(scaler_vm, AUTOSCALER_UNIT)
    assert "pool 1..3 bridges; up above 0.3" in log, log
    assert re.search(r"hcloud library 2\.\d+\.\d+; bridges from /etc/jitsi/xxl/bridge/", log), log
    assert f"no API token ({TOKEN_NAME} in {SECRETS_FILE}): refusing to act" in log, log
    assert autoscaler_state(scaler_vm) == {
        "ActiveState": "failed", "ExecMainStatus": str(NO_TOKEN_EXIT), "NRestarts": "0",
    }  # fmt: skip
    report = scaler_vm.ready_report()
    assert report["ready"] is False
    assert {"name": "autoscaler", "ok": False} in report["checks"]
    pool = report["bridge_pool"]
    assert (pool["min"], pool["max"], pool["scale_up_above"]) == (1, 3, 0.3), pool
    assert hcloud_api.calls == []


def test_with_a_token_it_grows_the_pool_on_a_bridges_stress(
    twin: rig.Twin, first: bridges.Bridge, scaler_vm: scaler.Scaler, hcloud_api: HcloudApi
) -> None:
    """Given its token, the autoscaler (Debian's library, the API stand-in) lists the stack's
    one bridge, reads its stress over the private network from the bridge twin's own board,
    and adds what brings the average back to 0.3 within the ceiling: two servers on the
    stack's network (found by label), with its key, in a spread group, and the user data
    the program renders for the bridges, byte for byte."""
    stack = OFFLINE_STACK
    hcloud_api.add_network(4711, naming.labels(stack, "network"))
    hcloud_api.add_ssh_key(77, "generated", naming.labels(stack, "access"))
    prefix = f"{naming.resource_prefix(stack)}-jvb"
    hcloud_api.add_server(f"{prefix}-1", naming.labels(stack, "jvb"), first.private_ip,
                          created="2026-01-01T00:00:00+00:00")  # fmt: skip
    first.set_load(participants=40, stress_level=0.9)
    board = f"http://{first.private_ip}:{BRIDGE_STATS_PORT}/xxl/stats"

    def board_says_loaded() -> bool:
        got = scaler_vm.run("curl", "-fsS", "-m", "3", board)
        return got.returncode == 0 and json.loads(got.stdout)["stress_level"] == 0.9

    # the agent takes the videobridge's stress every few seconds: start once it shows
    bridges.wait_for("the bridge's board at 0.9", board_says_loaded, timeout=30)
    try:
        env = scaler_vm.path(SECRETS_FILE)
        env.write_text(env.read_text() + f"{TOKEN_NAME}={hcloud_api.token}\n")
        scaler_vm.run("systemctl", "restart", AUTOSCALER_UNIT, check=True)
        made = bridges.wait_for(
            "two servers made", lambda: len(hcloud_api.servers) == 3, timeout=90
        )
        assert made
    finally:
        first.set_load(participants=0, stress_level=0.0)
    log = unit_log(scaler_vm, AUTOSCALER_UNIT)
    assert "stress 0.90 over 1 bridges, above 0.3; add 2, drain 0, delete 0" in log, log
    want = bridges.bridge_render(twin, Cloud.hetzner)[1].user_data
    added = [s for s in hcloud_api.servers.values() if s["name"] != f"{prefix}-1"]
    assert sorted(s["name"] for s in added) == [f"{prefix}-2", f"{prefix}-3"]
    for s in added:
        assert s["labels"] == naming.labels(stack, "jvb")
        assert s["networks"] == [4711]
        assert s["ssh_keys"] == [77]
        assert s["placement_group"] is not None
        assert s["user_data"] == want
    assert autoscaler_state(scaler_vm)["ActiveState"] == "active"
