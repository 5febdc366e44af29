"""Network namespaces, a booted container, and ports published to the host's loopback.

Each twin run gets its own network namespaces, named after the run, so nothing it does can
meet another process on the machine: a "lan" namespace holding a bridge (the cloud's private
network), and one namespace per VM joined to it by a veth pair whose VM end is `eth0` with
the VM's private address. systemd-nspawn boots the root inside the VM's namespace with
systemd as PID 1 (`--register=no --keep-unit`: the host need not run systemd).

Ports are published to 127.0.0.1 of the host by a forwarder thread: its listening socket is
made in the host's namespace, then the thread enters the VM's namespace (setns acts on the
calling thread only), so every upstream connection it opens is inside the VM.

Everything is undone by the context managers, in reverse order, also on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from components.twin.image import tool

CLONE_NEWNET: Final = 0x40000000
NETNS_DIR: Final = Path("/run/netns")
STOP_TIMEOUT: Final = 60.0
CONTAINER_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
T = TypeVar("T")


class ContainerError(Exception):
    """A container or its network could not be set up; the message says which step."""


def _ip(*args: str) -> None:
    done = subprocess.run([tool("ip"), *args], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise ContainerError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def run_id() -> str:
    """A short name unique to this run, for namespaces and machine names."""
    return f"xxl{os.getpid() % 100000}{secrets.token_hex(2)}"


@dataclass(frozen=True)
class Lan:
    """The private network: a bridge in its own namespace."""

    name: str

    @property
    def netns(self) -> str:
        return f"{self.name}-lan"


@contextlib.contextmanager
def lan(name: str) -> Iterator[Lan]:
    net = Lan(name)
    _ip("netns", "add", net.netns)
    try:
        _ip("-n", net.netns, "link", "add", "br0", "type", "bridge")
        _ip("-n", net.netns, "link", "set", "br0", "up")
        yield net
    finally:
        subprocess.run([tool("ip"), "netns", "del", net.netns], check=False, capture_output=True)


@contextlib.contextmanager
def host_netns(net: Lan, host: str, address: str, prefix: int) -> Iterator[Path]:
    """A VM's namespace: loopback, and `eth0` on the lan with `address/prefix`."""
    ns = f"{net.name}-{host}"
    _ip("netns", "add", ns)
    try:
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", net.netns, "link", "add", host, "type", "veth", "peer", "name", "eth0",
            "netns", ns)  # fmt: skip
        _ip("-n", net.netns, "link", "set", host, "master", "br0", "up")
        _ip("-n", ns, "addr", "add", f"{address}/{prefix}", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        yield NETNS_DIR / ns
    finally:
        subprocess.run([tool("ip"), "netns", "del", ns], check=False, capture_output=True)


def add_address(netns: Path, address: str, prefix: int, device: str = "eth0") -> None:
    """One more address on a VM's interface (a public one, where the cloud puts it there);
    it goes with the namespace. Adding one that is there already changes nothing."""
    _ip("-n", netns.name, "addr", "replace", f"{address}/{prefix}", "dev", device)


@dataclass
class Container:
    """A booted root: its nspawn process and the PID of its systemd."""

    name: str
    root: Path
    process: subprocess.Popen[bytes]
    leader: int
    console: Path

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` as run inside the container (all its namespaces, a clean environment)."""
        return [tool("nsenter"), "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", "--",
                "/usr/bin/env", "-i", f"PATH={CONTAINER_PATH}", "LANG=C.UTF-8", *argv]  # fmt: skip

    def run(
        self,
        argv: Sequence[str],
        timeout: float = 60,
        check: bool = False,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.command(argv), check=False, capture_output=True, text=True, timeout=timeout,
            input=stdin,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise ContainerError(
                f"{' '.join(argv)} in {self.name} exited {done.returncode}: "
                f"{(done.stderr or done.stdout).strip()[-2000:]}"
            )
        return done

    def alive(self) -> bool:
        return self.process.poll() is None


def _leader(nspawn_pid: int, deadline: float) -> int:
    children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children")
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            pids = children.read_text().split()
            if pids:
                return int(pids[0])
        time.sleep(0.05)
    raise ContainerError("systemd-nspawn started no container")


@contextlib.contextmanager
def booted(
    name: str, root: Path, netns: Path, binds: Sequence[tuple[Path, str]], console: Path
) -> Iterator[Container]:
    """Boot `root` with systemd as PID 1 in `netns`; shut it down (bounded) on exit.

    The console is a pipe to `console` (a log file): a pseudo-terminal that nobody reads
    fills up, and systemd then blocks writing to it.
    """
    argv = [tool("systemd-nspawn"), "--quiet", "--boot", "--register=no", "--keep-unit",
            f"--machine={name}", f"--directory={root}", f"--network-namespace-path={netns}",
            "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=pipe",
            # firewall rules of its own, as on a VM (the metadata guard): confined to the
            # container's network namespace
            "--capability=CAP_NET_ADMIN",
            # open files as on a VM, where systemd raises its own hard limit to fs.nr_open; a
            # container otherwise inherits whatever limit the process that started it had
            f"--rlimit=RLIMIT_NOFILE={_nr_open()}",
            *(f"--bind-ro={src}:{dst}" for src, dst in binds)]  # fmt: skip
    # /proc/sys/net writable, as on a VM: the VM's network namespace is its own, and the
    # bootstrap reserves the visitor nodes' ports there (nspawn leaves it read-only when it
    # did not make the namespace itself)
    env = {**os.environ, "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}
    with console.open("ab") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    try:
        leader = _leader(process.pid, time.monotonic() + 30)
        yield Container(name, root, process, leader, console)
    finally:
        stop(process)


def _nr_open() -> int:
    return int(Path("/proc/sys/fs/nr_open").read_text())


def stop(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """An orderly shutdown (nspawn turns SIGTERM into one), then SIGKILL past `timeout`."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _enter_netns(path: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


def run_in_netns(netns: Path, fn: Callable[[], T]) -> T:
    """`fn()` in a thread inside `netns` (setns acts on the calling thread only): the sockets
    it opens are that namespace's. Its exception, if any, is raised here."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            _enter_netns(netns)
            outcome.append(fn())
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"in-{netns.name}", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


class Forwarder:
    """127.0.0.1:<port> of the host to `target` inside a network namespace."""

    def __init__(self, netns: Path, target: tuple[str, int], port: int = 0) -> None:
        self.netns = netns
        self.target = target
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._listener.bind(("127.0.0.1", port))
        except OSError as exc:
            self._listener.close()
            raise ContainerError(f"127.0.0.1:{port} is not free: {exc.strerror}") from None
        self._listener.listen(4096)
        self.port: int = self._listener.getsockname()[1]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, name=f"forward-{self.port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(10) or self._loop is None:
            raise ContainerError(f"forwarder for {target} did not start")

    def _serve(self) -> None:
        _enter_netns(self.netns)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)  # this thread's own loop, also for the clean-up below
        self._loop = loop

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            with contextlib.suppress(OSError):
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.close()
                return
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        server = loop.run_until_complete(asyncio.start_server(handle, sock=self._listener))
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    def close(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._listener.close()


@contextlib.contextmanager
def published(netns: Path, target: tuple[str, int], port: int = 0) -> Iterator[Forwarder]:
    fwd = Forwarder(netns, target, port)
    try:
        yield fwd
    finally:
        fwd.close()
