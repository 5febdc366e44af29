"""Live faults: a taken port is named before anything starts; `xxl up-local` starts the
topology, says how to connect, and leaves nothing running after Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components.local_run import LocalRunError, running
from components.settings import load_stack_file
from tests.conftest import ROOT, require_tool

pytestmark = pytest.mark.live

TRIAL = ROOT / "stacks" / "Pulumi.trial.yaml"


@pytest.fixture(autouse=True)
def tools() -> None:
    for tool in ("prosody", "prosodyctl", "nginx", "openssl", "setpriv"):
        require_tool(tool)


def test_a_taken_port_is_named_and_nothing_starts() -> None:
    settings = load_stack_file(TRIAL).settings
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", 52802))  # v2's http port
        squatter.listen()
        with (
            pytest.raises(
                LocalRunError, match=r"v2 http port 52802 on 127\.0\.0\.1 is already in use"
            ),
            running(settings),
        ):
            pass
    assert not _our_servers()


def _our_servers() -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "jitsi-xxl-local-" in line]


def test_up_local_runs_until_ctrl_c_and_leaves_nothing() -> None:
    xxl = Path(sys.executable).parent / "xxl"
    proc = subprocess.Popen(
        [str(xxl), "up-local", "--stack", str(TRIAL)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("ready"):
            break
    text = "".join(seen)
    assert "ready; Ctrl-C stops everything" in text, text + (
        proc.stderr.read() if proc.stderr else ""
    )
    assert "?vnode=v1" in text
    pids = [int(p) for p in re.findall(r"=(\d+)", text.split("processes:")[1].splitlines()[0])]
    assert len(pids) == 4  # main, v1, v2, nginx
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "nothing left running" in out
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not _our_servers()
