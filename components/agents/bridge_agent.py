"""jitsi-xxl bridge agent: runs on every videobridge VM (python3 and its standard library;
boto3 on AWS only).

    bridge_agent.py --config /etc/jitsi/xxl/agent.json identity   # at boot, before the JVB
    bridge_agent.py --config /etc/jitsi/xxl/agent.json run        # health; AWS: metric, lifecycle
    bridge_agent.py --config /etc/jitsi/xxl/agent.json drain      # on stop: empty the JVB

identity: every bridge boots from the same user data, so what must be unique (MUC nickname,
relay-id, colibri-ws server-id, the public address for ICE) is read from the cloud's instance
metadata and written to an include of jvb.conf.

run: watches the JVB's health check; once it has failed for a few minutes the bridge is
reported not serving (AWS: the instance is set Unhealthy, so the group replaces it; both
clouds: the `health` entry of the readiness report). On AWS it also publishes the JVB's
stress_level to CloudWatch every minute with the Auto Scaling group as dimension (the signal
the group scales on), watches the instance's target lifecycle state, and on termination
drains the bridge, sending lifecycle heartbeats, then completes the lifecycle action with
CONTINUE, retrying until the hook's heartbeat timeout and exiting non-zero (so systemd runs it
again) if it never succeeds.

drain: enable drain mode, ask for graceful shutdown, and wait until no endpoints are left
(participants minus relays) or the bound passes. Systemd runs it when the VM shuts down, which
is how a Hetzner server deleted with "shutdown before deletion" empties first.

Nothing here may take the bridge down: every failure is logged on one line and retried. A
drain that is interrupted (the agent restarted) continues on the clock it started with: its
start is kept in a state file until the machine reboots.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final, Protocol

HTTP_TIMEOUT: Final = 5.0
# How often a failed one-off call (drain mode, graceful shutdown) is tried before moving on.
TRIES: Final = 5
LIFECYCLE_HOOK: Final = "jitsi-xxl-drain"


def log(message: str) -> None:
    print(f"jitsi-xxl-agent: {message}", flush=True)


# --- the videobridge's REST API ---------------------------------------------------------------


class JvbError(Exception):
    """The JVB answered with an error, or not in time."""


class JvbGoneError(JvbError):
    """Nothing listens on the JVB's port: it has exited."""


class Jvb:
    """The JVB's private REST API (COLIBRI stats, drain, graceful shutdown)."""

    def __init__(self, base_url: str, timeout: float = HTTP_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - a fixed loopback URL from our config
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                text = response.read().decode() or "null"
        except urllib.error.HTTPError as exc:
            raise JvbError(f"{method} {path}: HTTP {exc.code}") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ConnectionRefusedError):
                raise JvbGoneError(f"{method} {path}: connection refused") from None
            raise JvbError(f"{method} {path}: {exc.reason}") from None
        except ConnectionRefusedError:
            raise JvbGoneError(f"{method} {path}: connection refused") from None
        # a reset, a cut-off or garbled answer, a body that is not text: all "try again"
        except (OSError, http.client.HTTPException, UnicodeDecodeError) as exc:
            raise JvbError(f"{method} {path}: {type(exc).__name__} {exc}") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text

    def stats(self) -> dict[str, Any]:
        stats = self._call("GET", "/colibri/stats")
        if not isinstance(stats, dict):
            raise JvbError("GET /colibri/stats: not a JSON object")
        return stats

    def healthy(self) -> bool:
        """Whether the JVB's own health check passes (any error counts as failing)."""
        try:
            self._call("GET", "/about/health")
        except JvbError:
            return False
        return True

    def enable_drain(self) -> None:
        self._call("POST", "/colibri/drain/enable")

    def graceful_shutdown(self) -> None:
        self._call("POST", "/colibri/shutdown", {"graceful-shutdown": True})


def endpoints_left(stats: dict[str, Any]) -> int:
    """Endpoints that would be dropped: participants minus relays (octo) to other bridges.
    Raises JvbError if the answer does not hold whole numbers there."""
    counts = [stats.get("participants", 0), stats.get("octo_endpoints", 0)]
    whole = [v for v in counts if isinstance(v, int) and not isinstance(v, bool)]
    if len(whole) != len(counts):
        raise JvbError(f"stats without usable counts: {counts!r}")
    return max(0, whole[0] - whole[1])


# --- what differs between clouds -------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """What makes one bridge distinct from the others of the pool."""

    instance_id: str
    private_ip: str
    public_ip: str | None
    region: str
    # AWS puts the public address on a 1:1 NAT, not on the interface: ICE needs a mapping.
    map_public_ip: bool

    @property
    def name(self) -> str:
        """MUC nickname and relay-id: the instance id, as a safe token."""
        return "jvb-" + re.sub(r"[^a-z0-9-]", "-", self.instance_id.lower()).strip("-")

    @property
    def server_id(self) -> str:
        """Colibri-ws server-id; the signaling nginx routes `/colibri-ws/<it>/` back here."""
        return "jvb-" + str(ipaddress.IPv4Address(self.private_ip)).replace(".", "-")


class Cloud(Protocol):
    """Instance metadata, termination lifecycle, and the stress metric."""

    def identity(self) -> Identity: ...

    def termination_requested(self) -> bool: ...

    def heartbeat(self) -> None: ...

    def complete(self) -> None: ...

    def publish_stress(self, value: float) -> None: ...

    def mark_unhealthy(self, reason: str) -> None: ...


def _http(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, timeout: float = 2.0
) -> str | None:
    """A metadata request: the body, or None for 404."""
    request = urllib.request.Request(url, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # noqa: PLR2004
            return None
        raise


class Aws:
    """EC2 instance metadata (IMDSv2 only), Auto Scaling lifecycle, CloudWatch."""

    def __init__(
        self,
        metadata_url: str,
        namespace: str,
        metric: str,
        clients: Callable[[str, str], Any] | None = None,
    ) -> None:
        self.metadata_url = metadata_url.rstrip("/")
        self.namespace = namespace
        self.metric = metric
        self._clients = clients or _boto3_client
        self._token: tuple[str, float] | None = None

    def _meta(self, path: str) -> str | None:
        if self._token is None or self._token[1] < time.monotonic():
            token = _http(
                f"{self.metadata_url}/latest/api/token",
                method="PUT",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"},
            )
            if not token:
                raise RuntimeError("IMDSv2 gave no token")
            self._token = (token, time.monotonic() + 21000)
        return _http(
            f"{self.metadata_url}/latest/meta-data/{path}",
            headers={"X-aws-ec2-metadata-token": self._token[0]},
        )

    def _require(self, path: str) -> str:
        value = self._meta(path)
        if not value:
            raise RuntimeError(f"instance metadata has no {path}")
        return value.strip()

    def identity(self) -> Identity:
        return Identity(
            instance_id=self._require("instance-id"),
            private_ip=self._require("local-ipv4"),
            public_ip=(self._meta("public-ipv4") or "").strip() or None,
            region=self._require("placement/region"),
            map_public_ip=True,
        )

    def group(self) -> str:
        # instance metadata tags are enabled in the launch template
        return self._require("tags/instance/aws:autoscaling:groupName")

    def termination_requested(self) -> bool:
        state = (self._meta("autoscaling/target-lifecycle-state") or "").strip()
        return state == "Terminated"

    def _lifecycle(self, action: str) -> None:
        client = self._clients("autoscaling", self._require("placement/region"))
        params = {
            "LifecycleHookName": LIFECYCLE_HOOK,
            "AutoScalingGroupName": self.group(),
            "InstanceId": self._require("instance-id"),
        }
        if action == "heartbeat":
            client.record_lifecycle_action_heartbeat(**params)
        else:
            client.complete_lifecycle_action(**params, LifecycleActionResult="CONTINUE")

    def mark_unhealthy(self, reason: str) -> None:
        # the group then replaces the instance (after its grace period), through the same
        # lifecycle hook: the drain still runs
        client = self._clients("autoscaling", self._require("placement/region"))
        client.set_instance_health(
            InstanceId=self._require("instance-id"),
            HealthStatus="Unhealthy",
            ShouldRespectGracePeriod=True,
        )

    def heartbeat(self) -> None:
        self._lifecycle("heartbeat")

    def complete(self) -> None:
        self._lifecycle("complete")

    def publish_stress(self, value: float) -> None:
        client = self._clients("cloudwatch", self._require("placement/region"))
        client.put_metric_data(
            Namespace=self.namespace,
            MetricData=[
                {
                    "MetricName": self.metric,
                    "Dimensions": [{"Name": "AutoScalingGroupName", "Value": self.group()}],
                    "Value": value,
                    "Unit": "None",
                }
            ],
        )


def _boto3_client(service: str, region: str) -> Any:
    import boto3  # noqa: PLC0415 - only AWS bridges have it

    return boto3.client(service, region_name=region)


class Hetzner:
    """Hetzner Cloud's metadata service. No autoscaling service, so no lifecycle or metric:
    the pool is resized by changing the stack, and a deleted server drains on shutdown."""

    def __init__(self, metadata_url: str) -> None:
        self.base = metadata_url.rstrip("/") + "/hetzner/v1/metadata"

    def _require(self, path: str) -> str:
        value = _http(f"{self.base}/{path}")
        if not value or not value.strip():
            raise RuntimeError(f"instance metadata has no {path}")
        return value.strip()

    def identity(self) -> Identity:
        return Identity(
            instance_id=self._require("instance-id"),
            private_ip=hetzner_private_ip(self._require("private-networks")),
            public_ip=(_http(f"{self.base}/public-ipv4") or "").strip() or None,
            region=self._require("region"),
            # the public address is on the interface; ICE finds it without help
            map_public_ip=False,
        )

    def termination_requested(self) -> bool:
        return False

    def heartbeat(self) -> None:
        return None

    def complete(self) -> None:
        return None

    def publish_stress(self, value: float) -> None:
        return None

    def mark_unhealthy(self, reason: str) -> None:
        # no service replaces a server here: the readiness report says it (see `run`)
        return None


def hetzner_private_ip(text: str) -> str:
    """The first `ip:` of the private-networks document (YAML list of mappings)."""
    match = re.search(r"^\s*-?\s*ip:\s*['\"]?([0-9.]+)", text, re.MULTILINE)
    if not match:
        raise RuntimeError("the server is attached to no private network")
    return str(ipaddress.IPv4Address(match.group(1)))


def identity_hocon(identity: Identity, websockets: bool) -> str:
    """The include that jvb.conf pulls in: only what differs per bridge."""
    lines = [
        "# Written at boot by jitsi-xxl-agent from the instance metadata; do not edit.",
        f"videobridge.apis.xmpp-client.configs.xxl.muc_nickname = {json.dumps(identity.name)}",
        f"videobridge.relay.relay-id = {json.dumps(identity.name)}",
        f"videobridge.relay.region = {json.dumps(identity.region)}",
    ]
    if websockets:
        lines.append(f"videobridge.websockets.server-id = {json.dumps(identity.server_id)}")
    if identity.map_public_ip and identity.public_ip:
        mapping = {
            "local-address": identity.private_ip,
            "public-address": identity.public_ip,
            "name": "public",
        }
        lines.append(f"ice4j.harvest.mapping.static-mappings = [{json.dumps(mapping)}]")
    return "\n".join(lines) + "\n"


# --- drain and the agent loop --------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """`/etc/jitsi/xxl/agent.json`, rendered per stack."""

    cloud: str
    jvb_url: str
    metadata_url: str
    identity_file: str
    websockets: bool
    graceful_shutdown_max_seconds: int
    poll_seconds: float
    heartbeat_seconds: float
    metric_seconds: float
    metric_namespace: str
    metric_name: str
    # the lifecycle hook's heartbeat timeout: how long a completion may be retried
    hook_heartbeat_timeout_seconds: float
    # a health check failing this long means the bridge is not serving
    unhealthy_after_seconds: float
    ready_report: str
    drain_state_file: str
    # where the Hetzner autoscaler reads this bridge's stress (0: nobody does, as on AWS)
    stats_port: int

    @classmethod
    def load(cls, path: Path) -> Config:
        return cls(**json.loads(path.read_text()))


def _try(what: str, action: Callable[[], None], sleep: Callable[[float], None]) -> bool:
    for attempt in range(1, TRIES + 1):
        try:
            action()
        except JvbGoneError:
            raise
        except Exception as exc:
            log(f"{what} failed (attempt {attempt}/{TRIES}): {exc}")
            sleep(min(2.0 * attempt, 10.0))
        else:
            return True
    return False


class DrainClock:
    """When this drain started, in wall-clock seconds, kept in a file so that a restarted
    agent continues the same drain instead of starting the bound again. The file lives under
    /run: a reboot is a new life for the bridge."""

    def __init__(self, path: Path | None, wall: Callable[[], float] = time.time) -> None:
        self.path = path
        self.wall = wall

    def started(self) -> float:
        """Seconds already spent draining (0 for a new drain, which is then recorded)."""
        now = self.wall()
        if self.path is None:
            return 0.0
        try:
            began = float(self.path.read_text().strip())
        except (OSError, ValueError):
            began = now
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text(f"{began}\n")
            except OSError as exc:
                log(f"cannot keep the drain's start ({exc}); a restart would begin again")
        return max(0.0, now - began)


@dataclass(frozen=True)
class Drained:
    """How a drain ended, and when the lifecycle action was last kept alive."""

    reason: str  # empty, exited or bound
    last_heartbeat: float  # on the drain's clock


def drain(
    jvb: Jvb,
    heartbeat: Callable[[], None],
    *,
    max_seconds: float,
    poll_seconds: float,
    heartbeat_seconds: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    already: float = 0.0,
) -> Drained:
    """Empty the bridge, `already` seconds into the drain; says why it stopped waiting."""
    start = clock() - already
    log(
        f"draining: new endpoints go elsewhere; waiting at most {max_seconds:.0f} s"
        + (f", {already:.0f} s of it spent before a restart" if already else "")
    )
    try:
        if _try("enabling drain", jvb.enable_drain, sleep):
            log("drain mode on")
        if _try("asking for graceful shutdown", jvb.graceful_shutdown, sleep):
            log("graceful shutdown requested")
    except JvbGoneError:
        log("the videobridge is not running: nothing to drain")
        return Drained("exited", clock())
    last_heartbeat = clock()
    reported: tuple[int, float] | None = None  # (count, when): log changes, or once a minute
    while True:
        elapsed = clock() - start
        try:
            left = endpoints_left(jvb.stats())
        except JvbGoneError:
            log(f"the videobridge has exited after {elapsed:.0f} s")
            return Drained("exited", last_heartbeat)
        except Exception as exc:
            # whatever the answer was, the drain goes on on the same clock
            log(f"reading stats failed ({exc}); still waiting")
        else:
            if left == 0:
                log(f"no endpoints left after {elapsed:.0f} s")
                return Drained("empty", last_heartbeat)
            if reported is None or reported[0] != left or elapsed - reported[1] >= 60:  # noqa: PLR2004
                log(f"{left} endpoints left after {elapsed:.0f} s")
                reported = (left, elapsed)
        if elapsed >= max_seconds:
            log(f"gave up waiting after {elapsed:.0f} s (bound {max_seconds:.0f} s)")
            return Drained("bound", last_heartbeat)
        if clock() - last_heartbeat >= heartbeat_seconds:
            try:
                heartbeat()
                log("lifecycle heartbeat sent")
                last_heartbeat = clock()
            except Exception as exc:
                log(f"lifecycle heartbeat failed: {exc}")
        sleep(poll_seconds)


def complete_until(
    complete: Callable[[], None],
    deadline: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Complete the lifecycle action, retrying with backoff until `deadline` (the hook's
    heartbeat timeout, after which the group goes on by itself)."""
    attempt = 0
    while True:
        attempt += 1
        try:
            complete()
        except Exception as exc:
            left = deadline - clock()
            log(f"completing the lifecycle action failed (attempt {attempt}): {exc}")
            if left <= 0:
                return False
            sleep(min(2.0 ** min(attempt, 5), 30.0, max(left, 0.1)))
        else:
            return True


class Health:
    """The JVB's health over time: not serving once its check has failed for a while.
    Each change goes into the readiness report's `health` entry once the bootstrap has
    written the report (the agent never creates it: the report's presence means the boot is
    over), and a bridge that stops serving is reported to the cloud once."""

    def __init__(self, cfg: Config, cloud: Cloud, clock: Callable[[], float]) -> None:
        self.cfg = cfg
        self.cloud = cloud
        self.clock = clock
        self.failing_since: float | None = None
        self.written: bool | None = None  # what the report says
        self.reported = False

    def observe(self, healthy: bool) -> None:
        now = self.clock()
        if healthy:
            self.failing_since = None
            self._record(True, "the videobridge's health check passes")
            return
        if self.failing_since is None:
            self.failing_since = now
            log("the videobridge's health check fails")
        failing = now - self.failing_since
        if failing < self.cfg.unhealthy_after_seconds:
            return
        detail = f"the videobridge's health check has failed for {failing:.0f} s"
        self._record(False, detail)
        if not self.reported:
            try:
                self.cloud.mark_unhealthy(detail)
                self.reported = True
                log(f"reported this bridge unhealthy: {detail}")
            except Exception as exc:
                log(f"reporting this bridge unhealthy failed (next check tries again): {exc}")

    def _record(self, serving: bool, detail: str) -> None:
        if self.written is not serving and write_health(
            Path(self.cfg.ready_report), serving, detail
        ):
            self.written = serving


def write_health(report: Path, serving: bool, detail: str) -> bool:
    """Set the readiness report's `health` entry, the rest as the bootstrap wrote it; False
    while there is no report yet."""
    try:
        doc = json.loads(report.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(doc, dict):
        return False
    doc["health"] = {
        "serving": serving,
        "detail": detail,
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    try:
        tmp = report.with_name(report.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        tmp.replace(report)
    except OSError as exc:
        log(f"cannot write {report}: {exc}")
        return False
    return True


class Board:
    """The bridge's latest stress and endpoints, for the Hetzner autoscaler to read on the
    private network (read-only: drain and shutdown stay on the videobridge's loopback API)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, fresh: float = 60.0) -> None:
        self.clock = clock
        self.fresh = fresh
        self._lock = threading.Lock()
        self._seen: tuple[float, int, float] | None = None  # stress, endpoints, when

    def update(self, stress: float, endpoints: int) -> None:
        with self._lock:
            self._seen = (stress, endpoints, self.clock())

    def read(self) -> dict[str, Any] | None:
        """What the bridge last said, or None if it is stale or was never said."""
        with self._lock:
            seen = self._seen
        if seen is None or self.clock() - seen[2] > self.fresh:
            return None
        return {"stress_level": seen[0], "endpoints": seen[1]}


def serve_board(board: Board, address: str, port: int) -> ThreadingHTTPServer:
    """`GET /xxl/stats` on `address:port`: the board as JSON, 503 when it has nothing fresh."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            doc = board.read() if self.path == "/xxl/stats" else None
            status = 200 if doc is not None else (503 if self.path == "/xxl/stats" else 404)
            data = json.dumps(doc).encode() if doc is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer((address, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log(f"serving stress for the autoscaler on {address}:{port}")
    return server


def run(
    jvb: Jvb,
    cloud: Cloud,
    cfg: Config,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rounds: int | None = None,
    drain_clock: DrainClock | None = None,
    board: Board | None = None,
) -> str:
    """Watch health and publish stress; on termination, drain and complete once. Returns
    why it stopped; `incomplete` means the lifecycle action could not be completed."""
    next_metric = clock()
    health = Health(cfg, cloud, clock)
    done = 0
    while rounds is None or done < rounds:
        done += 1
        try:
            terminating = cloud.termination_requested()
        except Exception as exc:
            log(f"reading the lifecycle state failed: {exc}")
            terminating = False
        if terminating:
            log("the Auto Scaling group is terminating this instance")
            already = (drain_clock or DrainClock(Path(cfg.drain_state_file))).started()
            drained = drain(
                jvb,
                cloud.heartbeat,
                max_seconds=cfg.graceful_shutdown_max_seconds,
                poll_seconds=cfg.poll_seconds,
                heartbeat_seconds=cfg.heartbeat_seconds,
                clock=clock,
                sleep=sleep,
                already=already,
            )
            deadline = drained.last_heartbeat + cfg.hook_heartbeat_timeout_seconds
            if complete_until(cloud.complete, deadline, clock=clock, sleep=sleep):
                log(f"lifecycle action completed with CONTINUE ({drained.reason})")
                return drained.reason
            log("the lifecycle action could not be completed before the hook's timeout")
            return "incomplete"
        health.observe(jvb.healthy())
        if board is not None:
            try:
                stats = jvb.stats()
                board.update(float(stats["stress_level"]), endpoints_left(stats))
            except Exception as exc:
                log(f"reading stats for the autoscaler failed: {exc}")
        if clock() >= next_metric:
            next_metric = clock() + cfg.metric_seconds
            try:
                stress = float(jvb.stats()["stress_level"])
                cloud.publish_stress(stress)
                log(f"published stress_level {stress:.3f}")
            except Exception as exc:
                log(f"publishing stress failed: {exc}")
        sleep(cfg.poll_seconds)
    return "stopped"


def make_cloud(cfg: Config) -> Cloud:
    if cfg.cloud == "aws":
        return Aws(cfg.metadata_url, cfg.metric_namespace, cfg.metric_name)
    if cfg.cloud == "hetzner":
        return Hetzner(cfg.metadata_url)
    raise ValueError(f"unknown cloud {cfg.cloud!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jitsi-xxl-agent")
    parser.add_argument("--config", type=Path, default=Path("/etc/jitsi/xxl/agent.json"))
    parser.add_argument("command", choices=("identity", "run", "drain"))
    args = parser.parse_args(argv)
    cfg = Config.load(args.config)
    cloud = make_cloud(cfg)
    jvb = Jvb(cfg.jvb_url)
    if args.command == "identity":
        for attempt in range(1, 31):
            try:
                identity = cloud.identity()
                break
            except Exception as exc:
                log(f"reading instance metadata failed (attempt {attempt}/30): {exc}")
                time.sleep(2)
        else:
            return 1
        Path(cfg.identity_file).write_text(identity_hocon(identity, cfg.websockets))
        log(f"identity {identity.name}, private {identity.private_ip}, region {identity.region}")
        return 0
    if args.command == "drain":
        # on shutdown there is no lifecycle action to keep alive; a drain the agent began
        # on termination goes on on its clock
        drain(
            jvb,
            lambda: None,
            max_seconds=cfg.graceful_shutdown_max_seconds,
            poll_seconds=cfg.poll_seconds,
            heartbeat_seconds=cfg.heartbeat_seconds,
            already=DrainClock(Path(cfg.drain_state_file)).started(),
        )
        return 0
    # non-zero makes systemd start the agent again, which completes the action then
    board = None
    if cfg.stats_port:
        # the autoscaler reads the board on this bridge's private address
        board = Board(fresh=3 * cfg.poll_seconds)
        for attempt in range(1, 31):
            try:
                serve_board(board, cloud.identity().private_ip, cfg.stats_port)
                break
            except Exception as exc:
                log(f"serving stress failed (attempt {attempt}/30): {exc}")
                time.sleep(2)
        else:
            return 1
    return 1 if run(jvb, cloud, cfg, board=board) == "incomplete" else 0


if __name__ == "__main__":
    sys.exit(main())
