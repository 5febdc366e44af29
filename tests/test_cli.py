"""`xxl render` and `xxl plan` on the example stacks."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import yaml

from components.model.credentials import Credentials
from components.offline import cli
from tests.conftest import STACKS, stack_ids
from tests.test_userdata import unpack

KNOWN = Credentials(
    jicofo_password="known-jicofo-9f1c0000",
    jvb_password="known-jvb-7a2e00000000",
    visitor_focus_password="known-vnode-3b8d00000",
    turn_secret="known-turn-5c6a0000000",
    jwt_app_secret="known-jwt-1d4f00000000",
)


@pytest.fixture(autouse=True)
def known_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Credentials, "throwaway", classmethod(lambda cls: KNOWN))


@pytest.mark.parametrize("path", STACKS, ids=stack_ids())
def test_render_writes_every_file(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert cli.main(["render", "--stack", str(path), "--out", str(out)]) == 0
    stdout, stderr = capsys.readouterr()
    assert "throwaway" in stderr
    rootfs = out / "signaling" / "rootfs"
    domain = json.loads((out / "plan.json").read_text())["domain"]
    for rel in (
        "etc/prosody/prosody.cfg.lua",
        f"etc/prosody/conf.avail/{domain}.cfg.lua",
        "etc/prosody-v1/prosody.cfg.lua",
        "etc/systemd/system/prosody-v@.service",
        "etc/jitsi/jicofo/jicofo.conf",
        f"etc/nginx/sites-available/{domain}.conf",
        "usr/local/sbin/jitsi-xxl-bootstrap",
    ):
        assert (rootfs / rel).is_file(), rel
    doc = json.loads((out / "plan.json").read_text())
    for node in doc["visitors"]["nodes"]:
        assert (rootfs / "etc" / f"prosody-{node['name']}" / "prosody.cfg.lua").is_file()
    assert (out / "outputs" / "s2s.cfg.lua").is_file()
    assert KNOWN.visitor_focus_password in (out / "outputs" / "jicofo-visitors.conf").read_text()
    text = (out / "signaling" / "cloud-init.yaml").read_text()
    if doc["cloud"] == "aws":
        sent = (out / "signaling" / "cloud-init.yaml.gz").read_bytes()
        assert gzip.decompress(sent).decode() == text
        assert len(sent) == doc["user_data"]["sent_bytes"] <= 16000
    # secrets stay out of what a person or a log sees, and out of AWS user data entirely
    if doc["cloud"] == "aws":
        files = unpack(text)
        assert "/etc/jitsi/xxl/secrets.env" not in files
        unpacked = "".join(files.values())
        for value in KNOWN.values():
            assert value not in text + unpacked
    for value in KNOWN.values():
        assert value not in stdout + stderr
        assert value not in (out / "plan.json").read_text()
        assert value not in (out / "outputs" / "s2s.cfg.lua").read_text()


def test_rendering_twice_is_identical_but_for_nothing(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert cli.main(["render", "--stack", str(STACKS[0]), "--out", str(out)]) == 0
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


@pytest.mark.parametrize("path", STACKS, ids=stack_ids())
def test_plan_formats(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plan", "--stack", str(path), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["capacity"]["fits_audience"] is True
    assert cli.main(["plan", "--stack", str(path)]) == 0
    text = capsys.readouterr().out
    assert f"stack {doc['stack']}" in text
    assert f"{doc['capacity']['viewers']:,} viewers" in text


def test_plan_json_lists_the_pool_resources(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parent.parent / "stacks"
    assert cli.main(["plan", "--stack", str(root / "Pulumi.aws-10k.yaml"), "--format", "json"]) == 0
    types = {r["type"] for r in json.loads(capsys.readouterr().out)["resources"]}
    assert {
        "aws:autoscaling/group:Group",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:autoscaling/lifecycleHook:LifecycleHook",
    } <= types
    assert (
        cli.main(["plan", "--stack", str(root / "Pulumi.hetzner-10k.yaml"), "--format", "json"])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    counts = doc["resource_counts"]
    # the signaling and scaler VMs; the bridges and their placement groups are the
    # autoscaler's, and the sweep's to remove
    assert counts["hcloud:index/server:Server"] == 2
    assert "hcloud:index/placementGroup:PlacementGroup" not in counts
    assert counts["pulumi-python:dynamic:Resource"] == 1
    assert doc["outputs"]["jicofo_visitors_config"] == "[secret]"


def with_window(tmp_path: Path, example: str) -> Path:
    """The example stack `example` with an event window, as a stack file of its own."""
    root = Path(__file__).resolve().parent.parent / "stacks"
    doc = yaml.safe_load((root / f"Pulumi.{example}.yaml").read_text())
    doc["config"]["jitsi-xxl:event"] = {"start": "2026-12-03T14:00:00Z",
                                        "end": "2026-12-03T18:00:00Z"}  # fmt: skip
    stack = tmp_path / "Pulumi.summit.yaml"
    stack.write_text(yaml.safe_dump(doc))
    return stack


def test_plan_says_how_the_pool_follows_the_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = with_window(tmp_path, "aws-10k")
    assert cli.main(["plan", "--stack", str(stack), "--format", "json"]) == 0
    plan_doc = json.loads(capsys.readouterr().out)
    assert [(a["action"], a["at"], a["desired"]) for a in plan_doc["bridges"]["schedule"]] == [
        ("grow", "2026-12-03T13:30:00Z", plan_doc["bridges"]["desired"]),
        ("shrink", "2026-12-03T18:15:00Z", 0),
    ]
    assert cli.main(["plan", "--stack", str(stack)]) == 0
    assert "pool schedule  grow at 2026-12-03T13:30:00Z" in capsys.readouterr().out


def test_plan_describes_the_hetzner_autoscaler(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hetzner: the policy the scaler VM follows, its window, and the scaler VM's user data;
    AWS has none of it (its pool is the Auto Scaling group's)."""
    stack = with_window(tmp_path, "hetzner-10k")
    root = Path(__file__).resolve().parent.parent / "stacks"
    assert cli.main(["plan", "--stack", str(stack), "--format", "json"]) == 0
    plan_doc = json.loads(capsys.readouterr().out)
    policy = plan_doc["bridges"]["autoscaler"]
    assert (policy["min"], policy["max"]) == (
        plan_doc["bridges"]["min"],
        plan_doc["bridges"]["max"],
    )
    assert (policy["scale_up_above"], policy["scale_down_below"]) == (0.3, 0.1)
    assert policy["serving"] == {"from": "2026-12-03T13:30:00+00:00",
                                 "until": "2026-12-03T18:15:00+00:00"}  # fmt: skip
    assert plan_doc["scaler_user_data"]["sent_bytes"] < plan_doc["scaler_user_data"]["cap_bytes"]
    assert cli.main(["plan", "--stack", str(stack)]) == 0
    text = capsys.readouterr().out
    assert "pool policy    jitsi-xxl-autoscaler.service on the scaler VM: 51..77 bridges" in text
    assert "serving 2026-12-03T13:30:00+00:00 to 2026-12-03T18:15:00+00:00, empty outside" in text
    assert cli.main(["plan", "--stack", str(root / "Pulumi.aws-10k.yaml"), "--format", "json"]) == 0
    aws = json.loads(capsys.readouterr().out)
    assert "autoscaler" not in aws["bridges"]
    assert "scaler_user_data" not in aws


def test_plan_markdown_has_a_diagram(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parent.parent / "stacks"
    assert (
        cli.main(["plan", "--stack", str(root / "Pulumi.trial.yaml"), "--format", "markdown"]) == 0
    )
    text = capsys.readouterr().out
    assert "```mermaid\nflowchart LR" in text
    assert "| `jicofo_visitors_config` | [secret] |" in text
