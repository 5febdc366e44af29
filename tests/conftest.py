"""Shared test helpers: example stacks, rendering, and the one place that finds tools."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from components.model.credentials import Credentials
from components.model.planner import Plan, plan
from components.model.settings import Settings, StackFile, load_stack_file
from components.rendering.signaling_files import Layout, SignalingBundle, signaling_bundle
from components.twin import rig

ROOT = Path(__file__).resolve().parent.parent
# The example stacks only: event stacks (`xxl event create`) are the operator's, git-ignored,
# and never become test cases or golden files.
EVENT_PREFIX = "Pulumi.event-"


def example_stacks(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("Pulumi.*.yaml") if not p.name.startswith(EVENT_PREFIX))


STACKS = example_stacks(ROOT / "stacks")
UPSTREAM = ROOT.parent / "shared" / "upstream"


def require_tool(name: str) -> str:
    """The path of a validator; in CI a missing one fails, on a laptop it skips."""
    if path := shutil.which(name):
        return path
    if os.environ.get("CI"):
        pytest.fail(f"{name} missing: .ci/run must install it")
    pytest.skip(f"{name} not installed (allowed on a developer laptop only)")


TWIN_HOST_TOOLS = ("debootstrap", "systemd-nspawn", "nsenter", "ip", "dpkg-scanpackages",
                   "apt-ftparchive", "mount", "chroot")  # fmt: skip


def require_twin() -> None:
    """Root, the host tools and Jitsi's plugins for the twin; in CI each missing piece fails."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the twin needs root (systemd-nspawn, network namespaces)")
        pytest.skip("the twin needs root (systemd-nspawn, network namespaces)")
    for tool in TWIN_HOST_TOOLS:
        require_tool(tool)
    if rig.jitsi_source() is None:
        if os.environ.get("CI"):
            pytest.fail(rig.HOW_TO_PROVIDE)
        pytest.skip(rig.HOW_TO_PROVIDE)


def stack_ids() -> list[str]:
    return [p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in STACKS]


@pytest.fixture(params=STACKS, ids=stack_ids())
def stack(request: pytest.FixtureRequest) -> StackFile:
    path: Path = request.param
    return load_stack_file(path)


def render_stack(
    settings: Settings, layout: Layout | None = None, creds: Credentials | None = None
) -> tuple[Plan, SignalingBundle]:
    the_plan = plan(settings)
    bundle = signaling_bundle(
        settings, the_plan, creds or Credentials.placeholders(), None, layout or Layout()
    )
    return the_plan, bundle
