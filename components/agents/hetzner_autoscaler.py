"""jitsi-xxl Hetzner autoscaler: runs on the scaler VM of a Hetzner stack (python3 and the
official `hcloud` library).

    hetzner_autoscaler.py --config /etc/jitsi/xxl/autoscaler.json run

Hetzner Cloud has no autoscaling service. Every `poll_seconds` this loop lists the stack's
bridges by label, reads each running bridge's stress from its agent (a read-only endpoint on
the private network), and decides, with the same signal and thresholds as the AWS pool (up
above 0.3, down below 0.1) and cooldowns:

- below the floor (`min`, or the event window's size): add servers;
- average stress above 0.3: add what brings it back to 0.3, at most `max_step_up`, within `max`;
- average stress below 0.1: drain the least-loaded bridge(s), at most `max_step_down`, down to
  the floor. Draining is the bridge's own: the server is shut down (ACPI), its drain unit
  empties the videobridge for up to `graceful_shutdown_max_seconds`, then it powers off; only
  then (or once the bound and a margin have passed) is it deleted.

It holds still when the API fails or a serving bridge gives no metrics: a network blip must
not add or remove servers. What it is doing survives a restart: the servers it made carry
the stack's labels and a name from a fixed pattern (a second create of the same name is
refused by the API), a drain is a label with its start, the times of the last scale-up and
scale-down are kept in a state file. Every decision logs one line.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import lzma
import math
import os
import re
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

DRAINING_LABEL: Final = "jitsi-xxl/draining"
# A shut-down bridge that is not off this long after its drain bound is deleted anyway.
DRAIN_MARGIN_SECONDS: Final = 300
STATS_TIMEOUT: Final = 3.0
# Without a token it cannot act: it says so and exits with this status, which its unit does
# not restart (a restart would not bring a token).
NO_TOKEN_EXIT: Final = 2


def log(message: str) -> None:
    print(f"jitsi-xxl-autoscaler: {message}", flush=True)


@dataclass(frozen=True)
class Config:
    """`/etc/jitsi/xxl/autoscaler.json`, rendered per stack (the token is in its own file)."""

    secrets_file: str  # NAME=value lines (the VM's secrets.env): the token and the bridges' login
    token_name: str
    api_endpoint: str
    selector: str  # label selector of the stack's bridges
    labels: dict[str, str]  # labels of the servers it makes (they match `selector`)
    name_prefix: str
    server_type: str
    image: str
    location: str
    # found by label at run time: Pulumi made them after this file was rendered
    network_selector: str
    ssh_key_selector: str
    ssh_key_names: list[str]  # keys the project had before the stack
    bridge_template: str  # the bridges' cloud-config skeleton and files (see bridge_user_data)
    min: int
    max: int
    scale_up_above: float
    scale_down_below: float
    up_cooldown_seconds: float
    down_cooldown_seconds: float
    max_step_up: int
    max_step_down: int
    warmup_seconds: float
    graceful_shutdown_max_seconds: float
    stats_port: int
    poll_seconds: float
    placement_group_size: int
    state_file: str
    grow_at: float | None = None  # epoch seconds of the event window's schedule, if any
    shrink_at: float | None = None

    @classmethod
    def load(cls, path: Path) -> Config:
        return cls(**json.loads(path.read_text()))

    def policy(self) -> str:
        window = (
            f"; serving from {_utc(self.grow_at)} to {_utc(self.shrink_at)}, empty outside"
            if self.grow_at is not None and self.shrink_at is not None
            else ""
        )
        return (
            f"pool {self.min}..{self.max} bridges; up above {self.scale_up_above} (at most "
            f"{self.max_step_up} a step, {self.up_cooldown_seconds:.0f} s apart), down below "
            f"{self.scale_down_below} (at most {self.max_step_down} a step, "
            f"{self.down_cooldown_seconds:.0f} s apart, drained up to "
            f"{self.graceful_shutdown_max_seconds:.0f} s); every {self.poll_seconds:.0f} s"
            f"{window}"
        )


def _utc(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch or 0, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- what is seen, and what to do -----------------------------------------------------------


@dataclass(frozen=True)
class Bridge:
    """One server of the pool as the API and its agent describe it."""

    id: int
    name: str
    status: str  # Hetzner's: initializing, starting, running, stopping, off, ...
    private_ip: str | None
    created: float
    draining_since: float | None = None
    stress: float | None = None
    endpoints: int | None = None


@dataclass(frozen=True)
class Decision:
    """One step of the loop: servers to add, to drain, to delete, and why."""

    add: int = 0
    drain: tuple[int, ...] = ()
    delete: tuple[int, ...] = ()
    reason: str = ""


def bounds(cfg: Config, now: float) -> tuple[int, int]:
    """Floor and ceiling at `now`: with an event window, nothing outside it."""
    if (
        cfg.grow_at is not None
        and cfg.shrink_at is not None
        and not (cfg.grow_at <= now < cfg.shrink_at)
    ):
        return 0, 0
    return cfg.min, cfg.max


def decide(  # noqa: PLR0911 - one answer per case, each with its reason
    cfg: Config, bridges: Sequence[Bridge], now: float, last_up: float, last_down: float
) -> Decision:
    """What to do about `bridges` at `now` (pure: the loop carries it out)."""
    bound = cfg.graceful_shutdown_max_seconds + DRAIN_MARGIN_SECONDS
    done = tuple(
        b.id
        for b in bridges
        if b.draining_since is not None and (b.status == "off" or now - b.draining_since >= bound)
    )
    active = [b for b in bridges if b.draining_since is None]
    floor, ceiling = bounds(cfg, now)
    n = len(active)
    if n < floor:
        add = min(cfg.max_step_up, floor - n)
        return Decision(add=add, delete=done, reason=f"{n} bridges, below the floor of {floor}")
    if n > ceiling:
        drain = least_loaded(active, min(cfg.max_step_down, n - ceiling))
        return Decision(drain=drain, delete=done, reason=f"{n} bridges, above {ceiling}")
    serving = [b for b in active if b.status == "running" and now - b.created >= cfg.warmup_seconds]
    silent = [b.name for b in serving if b.stress is None]
    if silent:
        return Decision(delete=done, reason=f"holding: no metrics from {', '.join(silent)}")
    if not serving:
        return Decision(delete=done, reason="holding: no bridge is serving yet")
    stress = sum(b.stress or 0.0 for b in serving) / len(serving)
    seen = f"stress {stress:.2f} over {len(serving)} bridges"
    if stress > cfg.scale_up_above:
        if n >= ceiling:
            return Decision(delete=done, reason=f"{seen}: at the ceiling of {ceiling}")
        if now - last_up < cfg.up_cooldown_seconds:
            return Decision(delete=done, reason=f"{seen}: scale-up cooling down")
        # what brings the average back to the target, as target tracking would
        wanted = math.ceil(len(serving) * stress / cfg.scale_up_above) - len(serving)
        add = max(1, min(wanted, cfg.max_step_up, ceiling - n))
        return Decision(add=add, delete=done, reason=f"{seen}, above {cfg.scale_up_above}")
    if stress < cfg.scale_down_below and n > floor:
        if now - last_down < cfg.down_cooldown_seconds:
            return Decision(delete=done, reason=f"{seen}: scale-down cooling down")
        drain = least_loaded(serving, min(cfg.max_step_down, n - floor))
        return Decision(drain=drain, delete=done, reason=f"{seen}, below {cfg.scale_down_below}")
    return Decision(delete=done, reason=f"{seen}: within bounds")


def least_loaded(bridges: Iterable[Bridge], count: int) -> tuple[int, ...]:
    """The `count` bridges with the fewest endpoints (then the lowest stress, then newest)."""
    ranked = sorted(bridges, key=lambda b: (b.endpoints or 0, b.stress or 0.0, -b.created))
    return tuple(b.id for b in ranked[:count])


def free_names(prefix: str, taken: Iterable[str], count: int) -> list[str]:
    """The `count` lowest free names `<prefix>-<k>`: a restarted loop makes the same names,
    and the API refuses a second server of a name, so nothing is made twice."""
    used = set(taken)
    names: list[str] = []
    k = 1
    while len(names) < count:
        name = f"{prefix}-{k}"
        if name not in used:
            names.append(name)
        k += 1
    return names


# --- the bridges' stress ----------------------------------------------------------------------


def read_stats(address: str, port: int, timeout: float = STATS_TIMEOUT) -> tuple[float, int] | None:
    """(stress, endpoints) from a bridge's agent, or None when it cannot say."""
    url = f"http://{address}:{port}/xxl/stats"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            doc = json.loads(response.read().decode())
        stress, endpoints = doc["stress_level"], doc["endpoints"]
        if isinstance(stress, bool) or not isinstance(stress, int | float):
            return None
        if isinstance(endpoints, bool) or not isinstance(endpoints, int):
            return None
        return float(stress), endpoints
    except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError):
        return None


# --- the loop -------------------------------------------------------------------------------------


@dataclass
class State:
    """What must outlive a restart: when the pool last grew and shrank."""

    path: Path
    last_up: float = 0.0
    last_down: float = 0.0

    @classmethod
    def load(cls, path: Path) -> State:
        try:
            doc = json.loads(path.read_text())
            return cls(path, float(doc["last_up"]), float(doc["last_down"]))
        except (OSError, ValueError, KeyError, TypeError):
            return cls(path)

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"last_up": self.last_up, "last_down": self.last_down}) + "\n")
        tmp.replace(self.path)


@dataclass
class Pool:
    """The Hetzner side: list, create, drain and delete the stack's bridges."""

    cfg: Config
    client: Any  # hcloud.Client
    user_data: str
    stats: Callable[[str, int], tuple[float, int] | None] = read_stats
    _servers: dict[int, Any] = field(default_factory=dict)

    def bridges(self) -> list[Bridge]:
        found = self.client.servers.get_all(label_selector=self.cfg.selector)
        self._servers = {s.id: s for s in found}
        bridges = []
        for s in found:
            private = s.private_net[0].ip if s.private_net else None
            draining = s.labels.get(DRAINING_LABEL)
            bridge = Bridge(
                id=s.id,
                name=s.name,
                status=s.status,
                private_ip=private,
                created=_epoch(s.created),
                draining_since=float(draining) if draining and draining.isdigit() else None,
            )
            if bridge.status == "running" and private and bridge.draining_since is None:
                seen = self.stats(private, self.cfg.stats_port)
                if seen is not None:
                    bridge = replace(bridge, stress=seen[0], endpoints=seen[1])
            bridges.append(bridge)
        return bridges

    def add(self, count: int) -> None:
        from hcloud import APIException  # noqa: PLC0415 - on the VM only
        from hcloud.images import Image  # noqa: PLC0415
        from hcloud.locations import Location  # noqa: PLC0415
        from hcloud.networks import Network  # noqa: PLC0415
        from hcloud.server_types import ServerType  # noqa: PLC0415
        from hcloud.ssh_keys import SSHKey  # noqa: PLC0415

        names = free_names(self.cfg.name_prefix, (s.name for s in self._servers.values()), count)
        networks = self.client.networks.get_all(label_selector=self.cfg.network_selector)
        if len(networks) != 1:
            raise LookupError(f"{len(networks)} networks match {self.cfg.network_selector}")
        labelled = self.client.ssh_keys.get_all(label_selector=self.cfg.ssh_key_selector)
        keys = [*(SSHKey(name=k) for k in self.cfg.ssh_key_names),
                *(SSHKey(id=k.id) for k in labelled)]  # fmt: skip
        if not keys:
            # Hetzner would mail a root password instead: the stack always gives a key
            raise LookupError(f"no SSH key matches {self.cfg.ssh_key_selector}")
        # the stack's spread groups, listed once: how full each is, counted here as servers go in
        groups = self.client.placement_groups.get_all(label_selector=self.cfg.selector)
        filled = {g.name: len(g.servers) for g in groups}
        for name in names:
            group = self._placement_group(groups, filled)
            try:
                self.client.servers.create(
                    name=name,
                    server_type=ServerType(name=self.cfg.server_type),
                    image=Image(name=self.cfg.image),
                    location=Location(name=self.cfg.location),
                    networks=[Network(id=networks[0].id)],
                    ssh_keys=keys,
                    user_data=self.user_data,
                    labels=dict(self.cfg.labels),
                    placement_group=group,
                )
            except APIException as exc:
                if exc.code != "uniqueness_error":
                    raise
                log(f"{name} exists already (made before a restart): not made again")
                continue
            filled[group.name] += 1
            log(f"created {name}")

    def _placement_group(self, groups: list[Any], filled: dict[str, int]) -> Any:
        """A spread group of the stack with room (Hetzner allows 10 servers in one); a new
        one, added to `groups` and `filled`, when all are full."""
        for g in sorted(groups, key=lambda g: g.name):
            if filled[g.name] < self.cfg.placement_group_size:
                return g
        name = free_names(f"{self.cfg.name_prefix}-spread", filled, 1)[0]
        made = self.client.placement_groups.create(
            name=name, type="spread", labels=dict(self.cfg.labels)
        )
        log(f"created placement group {name}")
        groups.append(made.placement_group)
        filled[name] = 0
        return made.placement_group

    def drain(self, server_id: int, now: float) -> None:
        server = self._servers[server_id]
        # the intent first: a restarted loop sees the drain and its start
        server.update(labels={**server.labels, DRAINING_LABEL: str(int(now))})
        server.shutdown()
        log(f"draining {server.name}: shut down, its drain unit empties it first")

    def delete(self, server_id: int) -> None:
        server = self._servers[server_id]
        server.delete()
        log(f"deleted {server.name}")


def _epoch(moment: datetime | str) -> float:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return moment.timestamp()


def step(pool: Pool, state: State, now: float) -> Decision:
    """One round: observe, decide, act, log one line. API failures hold still."""
    try:
        bridges = pool.bridges()
    except Exception as exc:
        decision = Decision(reason=f"holding: listing the servers failed ({type(exc).__name__})")
        log(decision.reason)
        return decision
    decision = decide(pool.cfg, bridges, now, state.last_up, state.last_down)
    log(
        f"{len(bridges)} servers; {decision.reason}; add {decision.add}, drain "
        f"{len(decision.drain)}, delete {len(decision.delete)}"
    )
    try:
        for server_id in decision.delete:
            pool.delete(server_id)
        for server_id in decision.drain:
            pool.drain(server_id, now)
        if decision.drain:
            state.last_down = now
        if decision.add:
            state.last_up = now
            pool.add(decision.add)
    except Exception as exc:
        log(f"acting failed ({type(exc).__name__}: {exc}); the next round starts from what is")
    finally:
        state.save()
    return decision


def read_secrets(path: Path) -> dict[str, str]:
    """`NAME=value` lines of a secrets file (read, never sourced); empty if it is missing."""
    if not path.is_file():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs}


# The bridges' user data is made here from what the program rendered: the cloud-config with a
# marker where the archive goes, and the archive's files, whose secrets.env holds placeholders
# (the scaler VM's archive carries no second copy of the bridges' login). Its values come
# from this VM's own secrets; the archive is packed as the program packs it (userdata.tar_xz),
# so the result is byte for byte what the program would render with the values.
_PLACEHOLDER: Final = re.compile(r"@@XXL_SECRET_([A-Z0-9_]+)@@")
BRIDGE_SECRETS_PATH: Final = "/etc/jitsi/xxl/secrets.env"
ARCHIVE_MARKER: Final = "XXL-ARCHIVE-CONTENT"
_XZ_FILTER: Final = {
    "id": lzma.FILTER_LZMA2,
    "preset": 9 | lzma.PRESET_EXTREME,
    "dict_size": 1 << 20,
}


def bridge_user_data(template: dict[str, Any], values: dict[str, str]) -> str:
    """The bridges' cloud-config: `template`'s files (read from its `files_dir`), secrets
    filled, packed into its skeleton."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in sorted(template["files"], key=lambda f: f["path"]):
            content = Path(template["files_dir"] + f["path"]).read_text()
            if f["path"] == BRIDGE_SECRETS_PATH:
                content = _PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), content)
                if left := _PLACEHOLDER.findall(content):
                    raise ValueError(f"no value for the bridges' {', '.join(sorted(left))}")
            data = content.encode()
            info = tarfile.TarInfo(f["path"].lstrip("/"))
            info.size, info.mode, info.mtime = len(data), f["mode"], 0
            info.uid = info.gid = 0
            info.uname, info.gname = "root", f["group"]
            tar.addfile(info, io.BytesIO(data))
    packed = lzma.compress(raw.getvalue(), format=lzma.FORMAT_XZ, filters=[_XZ_FILTER])
    skeleton: str = template["cloud_config"]
    if skeleton.count(ARCHIVE_MARKER) != 1:
        raise ValueError("the bridge template's cloud-config has no single archive marker")
    return skeleton.replace(ARCHIVE_MARKER, base64.b64encode(packed).decode())


# The API's address from the environment, as Hetzner's own CLI reads it: for a stand-in.
ENDPOINT_VARIABLE: Final = "HCLOUD_ENDPOINT"


def client(cfg: Config) -> Any:
    """The official library's client, or SystemExit when there is no token to act with."""
    token = read_secrets(Path(cfg.secrets_file)).get(cfg.token_name, "")
    if not token:
        log(f"no API token ({cfg.token_name} in {cfg.secrets_file}): refusing to act")
        raise SystemExit(NO_TOKEN_EXIT)
    from hcloud import Client  # noqa: PLC0415 - on the VM only

    endpoint = os.environ.get(ENDPOINT_VARIABLE) or cfg.api_endpoint
    return Client(token=token, api_endpoint=endpoint, application_name="jitsi-xxl")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jitsi-xxl-autoscaler")
    parser.add_argument("--config", type=Path, default=Path("/etc/jitsi/xxl/autoscaler.json"))
    parser.add_argument("command", choices=("run", "once"))
    args = parser.parse_args(argv)
    cfg = Config.load(args.config)
    template = json.loads(Path(cfg.bridge_template).read_text())
    log(cfg.policy())
    import hcloud  # noqa: PLC0415 - on the VM only

    version = getattr(hcloud, "__version__", "unknown")
    log(f"hcloud library {version}; bridges from {cfg.bridge_template}")
    hcloud_client = client(cfg)
    user_data = bridge_user_data(template, read_secrets(Path(cfg.secrets_file)))
    pool = Pool(cfg, hcloud_client, user_data)
    state = State.load(Path(cfg.state_file))
    while True:
        step(pool, state, time.time())
        if args.command == "once":
            return 0
        time.sleep(cfg.poll_seconds)


if __name__ == "__main__":
    sys.exit(main())
