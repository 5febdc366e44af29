"""Boot the signaling VM's exact user data in a Debian 13 container: the twin.

What the twin changes against a cloud render are render options and the cloud around the VM,
never the rendered output:
- package sources (`Layout.packages`): no repository beyond the image's archive, which holds
  Debian's packages and the stand-ins; prosody pinned to the version that archive has;
- the certificate: Let's Encrypt cannot be reached, so a `letsencrypt` stack runs
  self-signed (the bootstrap's own first step for it anyway);
- the cloud: NoCloud seed files instead of the cloud's metadata service, the private network a
  bridge in a network namespace, and nginx's port published on the host's 127.0.0.1;
- the Internet: the VM's public address on its interface (as Hetzner assigns it) and one host
  out there, `internet`, on the same bridge, where tests run TURN clients and peers.
cloud-init in the container writes the archive and runs the bootstrap, as on the VM.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from components.model.credentials import Credentials
from components.model.planner import Plan, plan
from components.model.ports import HTTPS_PORT, MAIN_C2S_PORT
from components.model.settings import Settings, TlsMode, TlsSettings
from components.rendering import scaler_files
from components.rendering.package_sources import image_archive_only
from components.rendering.signaling_files import (
    JITSI_PLUGINS,
    SIGNALING_PACKAGES,
    Layout,
    SignalingBundle,
    signaling_bundle,
)
from components.rendering.userdata import READY_REPORT, user_data_bytes
from components.twin import container, image
from components.twin.standin_packages import StandIn, standins

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
SHARED_UPSTREAM: Final = REPO_ROOT.parent / "shared" / "upstream" / "jitsi-meet"
BOOT_TIMEOUT: Final = 900.0
# Documentation addresses (TEST-NET-3): routed nowhere, and not refused by coturn, so the
# twin's Internet can use them as public addresses.
PUBLIC_IP: Final = "203.0.113.10"
INTERNET_HOST_IP: Final = "203.0.113.20"
PUBLIC_PREFIX: Final = 24
# Sites on the Internet (a company behind one NAT each): more addresses of the `internet` host.
FIRST_SITE: Final = 100
MAX_SITES: Final = 100
HOW_TO_PROVIDE: Final = (
    "Jitsi's prosody plugins are needed: install jitsi-meet-prosody, or put jitsi-meet's "
    "resources/prosody-plugins/ and debian/control at ../shared/upstream/jitsi-meet/ "
    "beside the checkout (or set XXL_JITSI_MEET to such a folder)"
)


class TwinError(Exception):
    """The twin could not be built or booted; the message says which step and why."""


@dataclass(frozen=True)
class JitsiSource:
    """Where Jitsi's real plugins and the real package's control file come from."""

    plugins: Path
    control: str
    origin: str


def jitsi_source() -> JitsiSource | None:
    """`XXL_JITSI_MEET`, else an installed jitsi-meet-prosody, else ../shared/upstream."""
    candidates = [Path(p) for p in [os.environ.get("XXL_JITSI_MEET", "")] if p]
    candidates.append(SHARED_UPSTREAM)
    for base in candidates:
        plugins, control = base / "resources/prosody-plugins", base / "debian/control"
        if plugins.is_dir() and control.is_file():
            return JitsiSource(plugins, control.read_text(), str(base))
    if Path(JITSI_PLUGINS).is_dir():
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=Package: jitsi-meet-prosody\nDepends: ${Depends}\n",
             "jitsi-meet-prosody"],
            check=False, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode == 0:
            return JitsiSource(Path(JITSI_PLUGINS), done.stdout, "installed jitsi-meet-prosody")
    return None


def twin_settings(settings: Settings) -> Settings:
    """The stack's settings, with a self-signed certificate where Let's Encrypt was asked for."""
    if settings.tls.mode is not TlsMode.letsencrypt:
        return settings
    return settings.model_copy(update={"tls": TlsSettings(mode=TlsMode.self_signed)})


def archive_version(archive: Path, package: str) -> str:
    """The version of `package` in the archive's Packages index."""
    for stanza in (archive / "Packages").read_text().split("\n\n"):
        if re.search(rf"^Package: {re.escape(package)}$", stanza, re.M):
            m = re.search(r"^Version: (\S+)$", stanza, re.M)
            if m:
                return m[1]
    raise TwinError(f"{package} is not in the twin's archive {archive}")


# What the bridges' and the scaler VM's bootstraps install from Debian beyond the image (boto3
# on AWS, for the agent and the SSM fetch; the official hcloud library on Hetzner's scaler VM);
# they boot from the signaling twin's archive.
OTHER_VMS_DEBIAN_PACKAGES: Final = ("python3-boto3", *scaler_files.PACKAGES)


def debian_packages(stand_ins: tuple[StandIn, ...]) -> tuple[str, ...]:
    own = {p.name for p in stand_ins}
    wanted = dict.fromkeys((*SIGNALING_PACKAGES, *OTHER_VMS_DEBIAN_PACKAGES))
    return tuple(p for p in wanted if p not in own)


@dataclass(kw_only=True)
class Vm:
    """A VM's container: its root, its network namespace, and systemd booted in it."""

    root: Path
    netns: Path
    console: Path
    archive: Path
    box: container.Container | None = None
    _boot: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    # -- inside the container -------------------------------------------------------------
    def run(
        self, *argv: str, timeout: float = 60, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        if self.box is None:
            raise TwinError("the container is not running")
        return self.box.run(argv, timeout=timeout, check=check)

    def path(self, absolute: str) -> Path:
        """A file of the container, read from the host."""
        return self.root / absolute.lstrip("/")

    def ready_report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.path(READY_REPORT).read_text())
        return data

    # -- boot -----------------------------------------------------------------------------
    def boot(self, timeout: float = BOOT_TIMEOUT, wait_for: str = READY_REPORT) -> None:
        """Boot the root (again) and wait until `wait_for` exists, or the boot failed."""
        if self.box is not None:
            raise TwinError("the container is already running")
        name = self.netns.name
        binds = [(self.archive, image.ARCHIVE_MOUNT)]
        self.box = self._boot.enter_context(
            container.booted(name, self.root, self.netns, binds, self.console)
        )
        self._wait(self.path(wait_for), time.monotonic() + timeout)

    def shutdown(self) -> None:
        """An orderly poweroff of the container; the root stays for another boot."""
        self._boot.close()
        self.box = None

    def _wait(self, target: Path, deadline: float) -> None:
        result = self.path("/var/lib/cloud/data/result.json")
        while time.monotonic() < deadline:
            if target.exists():
                return
            if self.box is None or not self.box.alive():
                raise TwinError("the container stopped while booting:\n" + self._tail())
            if result.exists() and json.loads(result.read_text()).get("v1", {}).get("errors"):
                raise TwinError("cloud-init reported errors:\n" + self._tail())
            time.sleep(1)
        raise TwinError(f"{target} did not appear within the boot timeout:\n" + self._tail())

    def _tail(self, lines: int = 40) -> str:
        log = self.path("/var/log/cloud-init-output.log")
        text = log.read_text(errors="replace") if log.exists() else "(no cloud-init output yet)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass(kw_only=True)
class Twin(Vm):
    """A booted signaling twin: the rendered bundle, the container, and its ports on the host."""

    settings: Settings
    plan: Plan
    # secrets stay out of reprs (a failing test prints its fixtures)
    creds: Credentials = field(repr=False)
    bundle: SignalingBundle = field(repr=False)
    internet: Path  # the network namespace of a host on the Internet (INTERNET_HOST_IP)
    lan: container.Lan  # the private network, where the bridges join
    ports: dict[str, int] = field(default_factory=dict)

    def internet_sites(self, count: int) -> tuple[str, ...]:
        """`count` addresses of the Internet host, each standing for one site behind a NAT."""
        if not 1 <= count <= MAX_SITES:
            raise TwinError(f"sites: {count} is not between 1 and {MAX_SITES}")
        prefix = INTERNET_HOST_IP.rsplit(".", 1)[0]
        sites = tuple(f"{prefix}.{FIRST_SITE + i}" for i in range(count))
        for address in sites:
            container.add_address(self.internet, address, PUBLIC_PREFIX)
        return sites


def prepare_images(settings: Settings, jitsi: JitsiSource) -> tuple[Path, Path]:
    """The cached root and archive for `settings` (built on first use)."""
    try:
        root = image.base_root()
        stand_ins = standins(settings.release, jitsi.plugins, jitsi.control)
        archive = image.archive(root, debian_packages(stand_ins), stand_ins)
        image.prune(keep=[root.parent, archive.parent])
    except image.ImageError as exc:
        raise TwinError(str(exc)) from None
    return root, archive


@contextlib.contextmanager
def running(
    settings: Settings, *, https_port: int = 0, keep: Path | None = None, boot: bool = True
) -> Iterator[Twin]:
    """Boot the twin of `settings`' signaling VM; everything is undone on exit.

    `https_port` 0 picks a free port on 127.0.0.1 for nginx. `keep` (a folder) keeps the
    container's console and logs there after the run.
    """
    jitsi = jitsi_source()
    if jitsi is None:
        raise TwinError(HOW_TO_PROVIDE)
    settings = twin_settings(settings)
    base, archive = prepare_images(settings, jitsi)
    the_plan = plan(settings)
    creds = Credentials.throwaway()
    layout = Layout(packages=image_archive_only(archive_version(archive, "prosody")))
    bundle = signaling_bundle(settings, the_plan, creds, None, layout)
    try:
        with contextlib.ExitStack() as stack:
            scratch, root = vm_root(stack, "twin-", base, keep)
            seed(root, user_data_bytes(bundle.user_data, settings.cloud), scratch.name, "signaling")
            name = container.run_id()
            net = stack.enter_context(container.lan(name))
            prefix = int(settings.network.cidr.split("/")[1])
            private_ip = the_plan.network.signaling_private_ip
            netns = stack.enter_context(container.host_netns(net, "sig", private_ip, prefix))
            container.add_address(netns, PUBLIC_IP, PUBLIC_PREFIX)
            internet = stack.enter_context(
                container.host_netns(net, "net", INTERNET_HOST_IP, PUBLIC_PREFIX)
            )
            twin = Twin(
                settings=settings, plan=the_plan, creds=creds, bundle=bundle, root=root,
                netns=netns, console=scratch / "console.log", archive=archive, internet=internet,
                lan=net,
            )  # fmt: skip
            stack.callback(twin.shutdown)
            https = stack.enter_context(
                container.published(netns, ("127.0.0.1", HTTPS_PORT), https_port)
            )
            c2s = stack.enter_context(container.published(netns, (private_ip, MAIN_C2S_PORT)))
            twin.ports = {"https": https.port, "c2s": c2s.port}
            if boot:
                twin.boot()
            yield twin
    except (container.ContainerError, image.ImageError) as exc:
        # one error type for callers: xxl up-local prints it, the tests report it
        raise TwinError(str(exc)) from None


def seed(root: Path, user_data: bytes, instance: str, hostname: str) -> None:
    """cloud-init's NoCloud seed: the exact user data, and the instance's meta-data."""
    seed = root / "var/lib/cloud/seed/nocloud"
    seed.mkdir(parents=True, exist_ok=True)
    (seed / "user-data").write_bytes(user_data)
    (seed / "meta-data").write_text(f"instance-id: {instance}\nlocal-hostname: {hostname}\n")
    for p in seed.iterdir():
        p.chmod(0o600)


def vm_root(
    stack: contextlib.ExitStack, prefix: str, lower: Path, keep: Path | None
) -> tuple[Path, Path]:
    """A VM's scratch folder under the cache's `runs` (removed on exit; with `keep`, the VM's
    logs are copied there first) and its root: `lower` mounted writable in it."""
    runs = image.cache_dir() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=runs))
    stack.callback(shutil.rmtree, scratch, True)
    if keep is not None:
        stack.callback(keep_logs, scratch, keep)
    return scratch, stack.enter_context(image.overlay(lower, scratch))


def default_environment(root: Path, drop_in: str, why: str, assignment: str) -> None:
    """What the cloud gives every service of a VM here (`NAME=value`): a systemd
    `DefaultEnvironment` drop-in in the container's root, never in the rendered files."""
    path = root / drop_in.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {why}\n[Manager]\nDefaultEnvironment={assignment}\n")


def keep_logs(scratch: Path, keep: Path) -> None:
    keep.mkdir(parents=True, exist_ok=True)
    upper = scratch / "upper"
    for rel in ("var/log", "var/lib/jitsi-xxl/ready.json"):
        src = upper / rel
        if src.is_dir():
            shutil.copytree(src, keep / rel, dirs_exist_ok=True, symlinks=True)
        elif src.is_file():
            (keep / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, keep / rel)
    if (scratch / "console.log").exists():
        shutil.copy2(scratch / "console.log", keep / "console.log")


def how_to_connect(twin: Twin) -> str:
    """What `xxl up-local` prints once the twin is ready."""
    domain, https = twin.settings.domain, twin.ports["https"]
    nodes = ", ".join(n.name for n in twin.plan.nodes)
    return (
        f"the twin of {domain} is ready ({len(twin.plan.nodes)} visitor nodes: {nodes})\n"
        f"  web and XMPP over WebSocket: https://127.0.0.1:{https}/ "
        f"(Host {domain}, self-signed)\n"
        f"    curl -k --resolve {domain}:{https}:127.0.0.1 https://{domain}:{https}/\n"
        f"    wss://{domain}:{https}/xmpp-websocket?room=ROOM   (add &vnode=v1 for a node)\n"
        f"  c2s of the main prosody (as the bridges reach it): 127.0.0.1:{twin.ports['c2s']}\n"
        f"  inside: nsenter -t {twin.box.leader if twin.box else '?'} -a  "
        f"(journalctl, systemctl, /var/log/cloud-init-output.log)\n"
        "Ctrl-C stops the container and removes its mounts and network namespaces.\n"
    )
