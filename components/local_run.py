"""Run a stack's signaling topology on loopback: the main prosody, every visitor prosody and
nginx, from the very files `xxl render` makes, rendered with the local-run options.

What differs from the VM is chosen through the renderer's own options, never by editing
its output: every path sits under a scratch root, nginx listens on high loopback ports, the
bridges' address is 127.0.0.1, and the prosody plugin folders are Jitsi's (where installed)
followed by this project's local stand-ins (`components/local_plugins/`, see README,
Testing). What the VM's bootstrap does after unpacking (certificates, the enabled site,
accounts) is done here the same way, with the same tools.

Used by `xxl up-local` and by the live tests.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from components.bridge_files import bridge_bundle
from components.credentials import Credentials
from components.planner import MAIN_C2S_PORT, MAIN_HTTP_PORT, MAIN_S2S_PORT, Plan, plan
from components.render import RenderedFile
from components.settings import VISITOR_DOMAIN_SUFFIX, Settings
from components.signaling_files import (
    JITSI_PLUGINS,
    LOOPBACK,
    Layout,
    cert_names,
    names,
    signaling_bundle,
)
from components.userdata import VmBundle

LOCAL_PLUGINS: Final = str(Path(__file__).resolve().parent / "local_plugins")
HTTPS_PORT: Final = 18443
HTTP_PORT: Final = 18080
START_TIMEOUT: Final = 15.0


class LocalRunError(Exception):
    """The topology could not start; the message says which part and why."""


@dataclass(frozen=True)
class Listener:
    """A port something of the topology listens on."""

    owner: str  # "main", "v3", "nginx"
    kind: str  # "c2s", "s2s", "http", "https"
    port: int


def listeners(the_plan: Plan, https_port: int = HTTPS_PORT) -> tuple[Listener, ...]:
    out = [
        Listener("main", "c2s", MAIN_C2S_PORT),
        Listener("main", "s2s", MAIN_S2S_PORT),
        Listener("main", "http", MAIN_HTTP_PORT),
    ]
    for n in the_plan.nodes:
        out += [
            Listener(n.name, "c2s", n.c2s_port),
            Listener(n.name, "s2s", n.s2s_port),
            Listener(n.name, "http", n.http_port),
        ]
    out.append(Listener("nginx", "https", https_port))
    return tuple(out)


def check_ports_free(wanted: tuple[Listener, ...]) -> None:
    """Fail before starting anything if a port is taken, naming the node and the port."""
    for item in wanted:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # as the servers do: connections of an earlier run in TIME_WAIT do not count
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((LOOPBACK, item.port))
            except OSError:
                raise LocalRunError(
                    f"{item.owner} {item.kind} port {item.port} on {LOOPBACK} is already in use"
                ) from None


def local_plan(settings: Settings) -> Plan:
    """The stack's plan, with the bridges' address of the signaling VM on loopback."""
    the_plan = plan(settings)
    network = dataclasses.replace(the_plan.network, signaling_private_ip=LOOPBACK)
    return dataclasses.replace(the_plan, network=network)


def local_layout(root: Path, https_port: int = HTTPS_PORT) -> Layout:
    # the stand-ins are copied under the scratch root (see prepare): prosody's user must
    # read them, and a checkout may sit in a folder only its owner can enter
    stand_ins = str(root / "prosody-plugins")
    plugins = (JITSI_PLUGINS, stand_ins) if Path(JITSI_PLUGINS).is_dir() else (stand_ins,)
    return Layout(
        root=str(root),
        plugin_paths=plugins,
        https_listen=(f"{LOOPBACK}:{https_port}",),
        http_listen=(f"{LOOPBACK}:{HTTP_PORT}",),
    )


@dataclass
class Topology:
    """A rendered, runnable topology under `root`, and the processes started from it."""

    settings: Settings
    plan: Plan
    creds: Credentials
    root: Path
    files: tuple[RenderedFile, ...]
    bridge: VmBundle
    https_port: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def path(self, absolute: str) -> Path:
        return Path(str(self.root) + absolute)

    def main_config(self) -> Path:
        return self.path("/etc/prosody/prosody.cfg.lua")

    def node_config(self, name: str) -> Path:
        return self.path(f"/etc/prosody-{name}/prosody.cfg.lua")

    def file(self, absolute: str) -> str:
        return next(f.content for f in self.files if f.path == str(self.root) + absolute)

    @property
    def websocket_url(self) -> str:
        return f"wss://{LOOPBACK}:{self.https_port}/xmpp-websocket"


def _tool(name: str) -> str:
    path = shutil.which(name) or (
        f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
    )
    if path is None:
        raise LocalRunError(f"{name} is not installed (Debian: apt-get install {name})")
    return path


def _as_prosody(argv: list[str]) -> list[str]:
    """Prosody refuses to run as root: run it as the package's prosody user then."""
    if os.geteuid() != 0:
        return argv
    return [_tool("setpriv"), "--reuid=prosody", "--regid=prosody", "--init-groups", *argv]


def _self_signed(crt: Path, key: Path, hosts: list[str]) -> None:
    crt.parent.mkdir(parents=True, exist_ok=True)
    san = ",".join(f"DNS:{h}" for h in hosts)
    subprocess.run(
        [_tool("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", f"/CN={hosts[0]}",
         "-addext", f"subjectAltName={san}", "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True,
    )  # fmt: skip
    key.chmod(0o644)  # scratch material, read by prosody's user and nginx's workers


def prepare(settings: Settings, root: Path, https_port: int = HTTPS_PORT) -> Topology:
    """Render the stack for a local run under `root` and do the bootstrap's local steps."""
    the_plan = local_plan(settings)
    creds = Credentials.throwaway()
    layout = local_layout(root, https_port)
    bundle = signaling_bundle(settings, the_plan, creds, None, layout)
    topo = Topology(
        settings=settings,
        plan=the_plan,
        creds=creds,
        root=root,
        files=bundle.files,
        bridge=bridge_bundle(settings, the_plan, creds),
        https_port=https_port,
    )
    shutil.copytree(LOCAL_PLUGINS, root / "prosody-plugins")
    for f in bundle.files:
        path = Path(f.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f.content)
        path.chmod(0o644)
    domain = settings.domain
    etc = topo.path("/etc/prosody")
    (etc / "conf.d").mkdir(exist_ok=True)
    (etc / "conf.d" / f"{domain}.cfg.lua").symlink_to(f"../conf.avail/{domain}.cfg.lua")
    _self_signed(
        etc / "certs" / "jitsi-xxl.crt",
        etc / "certs" / "jitsi-xxl.key",
        cert_names(domain, the_plan),
    )
    tls = topo.path("/etc/jitsi/xxl/tls")
    _self_signed(tls / f"{domain}.crt", tls / f"{domain}.key", [domain])
    state = [
        topo.path("/var/lib/prosody"),
        topo.path("/var/log/prosody"),
        topo.path("/run/prosody"),
    ]
    for n in the_plan.nodes:
        topo.path(f"/etc/prosody-{n.name}/certs").symlink_to(etc / "certs")
        state += [topo.path(n.data_dir), topo.path(n.log_dir), topo.path(n.run_dir)]
    for folder in state:
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(folder, "prosody", "prosody")
    subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
    _write_nginx_conf(topo)
    _accounts(topo)
    return topo


def _write_nginx_conf(topo: Topology) -> None:
    prefix = topo.path("/nginx")
    for sub in ("logs", "scratch"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    site = topo.path(f"/etc/nginx/sites-available/{topo.settings.domain}.conf")
    temp = "\n".join(
        f"  {kind}_temp_path {prefix}/scratch/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (prefix / "nginx.conf").write_text(
        f"pid {prefix}/nginx.pid;\nerror_log {prefix}/logs/error.log;\n"
        f"events {{ worker_connections 1024; }}\n"
        f"http {{\n  access_log off;\n{temp}\n  include {site};\n}}\n"
    )


def _prosodyctl(config: Path, *args: str) -> None:
    argv = _as_prosody([_tool("prosodyctl"), "--config", str(config), *args])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise LocalRunError(f"prosodyctl {' '.join(args[:2])} failed: {proc.stdout}{proc.stderr}")


def _accounts(topo: Topology) -> None:
    """The bootstrap's accounts: focus and jvb on the main prosody, focus on every node."""
    hosts = names(topo.settings.domain)
    _prosodyctl(
        topo.main_config(), "register", "focus", hosts["auth_domain"], topo.creds.jicofo_password
    )
    _prosodyctl(
        topo.main_config(), "register", "jvb", hosts["auth_domain"], topo.creds.jvb_password
    )
    for n in topo.plan.nodes:
        _prosodyctl(
            topo.node_config(n.name),
            "register",
            "focus",
            f"auth.{VISITOR_DOMAIN_SUFFIX}",
            topo.creds.visitor_focus_password,
        )


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise LocalRunError(f"{what} exited with status {process.returncode}:\n{tail}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.05)
    raise LocalRunError(f"{what} did not listen on {LOOPBACK}:{port} within {START_TIMEOUT:.0f} s")


def start_prosody(topo: Topology, name: str) -> None:
    """Start the main prosody (`main`) or visitor node `vN`, and wait for its c2s port."""
    if name == "main":
        config, port, log = (
            topo.main_config(),
            MAIN_C2S_PORT,
            topo.path("/var/log/prosody/prosody.log"),
        )
    else:
        node = next(n for n in topo.plan.nodes if n.name == name)
        config, port = topo.node_config(name), node.c2s_port
        log = topo.path(f"{node.log_dir}/prosody.log")
    argv = _as_prosody([_tool("prosody"), "-F", "--config", str(config)])
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    topo.processes[name] = process
    _wait_for_port(port, process, f"prosody {name}", log)


def start_nginx(topo: Topology) -> None:
    prefix = topo.path("/nginx")
    argv = [
        _tool("nginx"),
        "-c",
        str(prefix / "nginx.conf"),
        "-p",
        str(prefix),
        "-g",
        "daemon off;",
    ]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    topo.processes["nginx"] = process
    _wait_for_port(topo.https_port, process, "nginx", prefix / "logs" / "error.log")


def start(topo: Topology) -> None:
    """Main prosody, every visitor node, nginx: the VM's start order."""
    check_ports_free(listeners(topo.plan, topo.https_port))
    start_prosody(topo, "main")
    for n in topo.plan.nodes:
        start_prosody(topo, n.name)
    start_nginx(topo)


def stop(topo: Topology) -> None:
    """Stop every process started, by its own PID; SIGKILL what does not go in time."""
    for process in topo.processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    for process in topo.processes.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        if process.poll() is None:
            process.kill()
            process.wait()
    topo.processes.clear()


_NOT_LOADED = re.compile(r"Unable to load module '([\w-]+)'")


def modules_not_loaded(topo: Topology) -> list[str]:
    """Modules the configs name that this machine's prosody could not load (from the logs)."""
    found: set[str] = set()
    for log in topo.root.glob("var/log/prosody*/prosody.*"):
        found.update(_NOT_LOADED.findall(log.read_text(errors="replace")))
    return sorted(found)


@contextlib.contextmanager
def running(settings: Settings, https_port: int = HTTPS_PORT) -> Iterator[Topology]:
    """The topology, started in a scratch folder; stopped and removed on exit, also on error."""
    root = Path(tempfile.mkdtemp(prefix="jitsi-xxl-local-"))
    root.chmod(0o755)
    topo: Topology | None = None
    try:
        topo = prepare(settings, root, https_port)
        start(topo)
        yield topo
    finally:
        if topo is not None:
            stop(topo)
        shutil.rmtree(root, ignore_errors=True)


def how_to_connect(topo: Topology) -> str:
    """What `xxl up-local` prints once everything listens."""
    lines = [
        f"jitsi-xxl local run of {topo.settings.domain}: {len(topo.plan.nodes)} visitor nodes",
        f"  files and logs under {topo.root}",
        f"  XMPP over WebSocket (self-signed TLS): {topo.websocket_url}",
        f"    add ?vnode=vN for visitor node N, e.g. {topo.websocket_url}?vnode=v1",
        f"  main prosody c2s {LOOPBACK}:{MAIN_C2S_PORT} (anonymous on {topo.settings.domain})",
    ]
    lines += [
        f"  {n.name}: c2s {LOOPBACK}:{n.c2s_port}, s2s {n.s2s_port}, http {n.http_port}"
        for n in topo.plan.nodes
    ]
    missing = modules_not_loaded(topo)
    if missing:
        lines.append(f"  not loaded (Jitsi modules not on this machine): {', '.join(missing)}")
    pids = " ".join(f"{name}={p.pid}" for name, p in topo.processes.items())
    lines += [f"  processes: {pids}", "ready; Ctrl-C stops everything"]
    return "\n".join(lines) + "\n"
