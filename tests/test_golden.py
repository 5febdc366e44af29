"""Golden files: every rendered file of every example stack, with placeholder secrets.

A change to any rendered byte fails here with a readable diff; `make golden` (or
UPDATE_GOLDEN=1) rewrites the files after a deliberate change.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from components.model.credentials import Credentials
from components.model.project import Cloud
from components.model.settings import StackFile
from components.offline import cli
from components.rendering.bridge_files import bridge_bundle
from components.rendering.scaler_files import BRIDGE_FILES, scaler_bundle
from components.rendering.scaler_files import PATH as SCALER_PATH
from components.rendering.signaling_files import XXL_PLUGINS
from tests.conftest import render_stack

GOLDEN = Path(__file__).parent / "golden"
STACKS_DIR = Path(__file__).resolve().parent.parent / "stacks"


def rendered(stack: StackFile) -> dict[str, str]:
    the_plan, bundle = render_stack(stack.settings)
    bridge = bridge_bundle(stack.settings, the_plan, Credentials.placeholders())
    out = {"signaling/cloud-init.yaml": bundle.user_data}
    # our prosody modules are shipped as they are; their sources are under test in their own right
    out |= {
        f"signaling/rootfs{f.path}": f.content
        for f in bundle.files
        if not f.path.startswith(XXL_PLUGINS)
    }
    out["jvb/cloud-init.yaml"] = bridge.user_data
    out |= {
        f"jvb/rootfs{f.path}": f.content
        for f in bridge.files
        # the agent is shipped as it is; its source is under test in its own right
        if not f.path.endswith("bridge_agent.py")
    }
    if stack.settings.cloud is Cloud.hetzner:
        scaler = scaler_bundle(stack.settings, the_plan, Credentials.placeholders())
        out["scaler/cloud-init.yaml"] = scaler.user_data
        out |= {
            f"scaler/rootfs{f.path}": f.content
            for f in scaler.files
            # the autoscaler is shipped as it is; the bridges' files are the jvb goldens
            if not (f.path == SCALER_PATH or f.path.startswith(BRIDGE_FILES + "/"))
        }
    out["outputs/s2s.cfg.lua"] = bundle.s2s_config
    out["outputs/jicofo-visitors.conf"] = bundle.jicofo_visitors_config
    return out


def test_golden(stack: StackFile) -> None:
    folder = GOLDEN / stack.name
    files = rendered(stack)
    if os.environ.get("UPDATE_GOLDEN"):
        for stale in folder.rglob("*"):
            if stale.is_file() and str(stale.relative_to(folder)) not in files:
                stale.unlink()
        for rel, text in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text)
    expected = {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()}
    assert sorted(expected) == sorted(files), "rendered file set changed; run `make golden`"
    diffs = [
        "".join(
            difflib.unified_diff(
                expected[rel].splitlines(keepends=True),
                files[rel].splitlines(keepends=True),
                f"golden/{stack.name}/{rel}",
                f"rendered/{rel}",
            )
        )
        for rel in sorted(files)
        if files[rel] != expected[rel]
    ]
    assert not diffs, "render changed (run `make golden` if intended):\n" + "\n".join(diffs)


def test_golden_files_hold_no_real_secret(stack: StackFile) -> None:
    placeholders = Credentials.placeholders().values()
    text = "".join(rendered(stack).values())
    assert all(p in text for p in placeholders[:2])
    for path in (GOLDEN / stack.name).rglob("*"):
        if path.is_file():
            body = path.read_text()
            assert "PRIVATE KEY" not in body


def test_render_is_byte_identical(stack: StackFile) -> None:
    assert rendered(stack) == rendered(stack)


def test_throwaway_secrets_differ_but_plan_does_not(stack: StackFile) -> None:
    a = render_stack(stack.settings, creds=Credentials.throwaway())
    b = render_stack(stack.settings, creds=Credentials.throwaway())
    assert a[0] == b[0]
    assert a[1].jicofo_visitors_config != b[1].jicofo_visitors_config
    assert a[1].s2s_config == b[1].s2s_config


@pytest.mark.parametrize("name", ["aws-10k", "hetzner-10k", "trial"])
def test_plan_markdown_is_stable(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`xxl plan --format markdown`, the pull-request comment, pinned as a golden file."""
    assert (
        cli.main(
            ["plan", "--stack", str(STACKS_DIR / f"Pulumi.{name}.yaml"), "--format", "markdown"]
        )
        == 0
    )
    text = capsys.readouterr().out
    golden = GOLDEN / "plan" / f"{name}.md"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    diff = "".join(
        difflib.unified_diff(
            golden.read_text().splitlines(keepends=True), text.splitlines(keepends=True),
            f"golden/plan/{name}.md", "rendered",
        )
    )  # fmt: skip
    assert not diff, "plan markdown changed (run `make golden` if intended):\n" + diff
