"""Per-event stacks: files written from the model, round-tripped, listed with their window."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from components.model.settings import ConfigError, load_stack_file
from components.offline import events

WINDOW = {"start": "2026-12-03T14:00:00Z", "end": "2026-12-03T18:00:00Z"}


@pytest.mark.parametrize("cloud", ["aws", "hetzner"])
def test_create_writes_a_valid_stack_that_round_trips(tmp_path: Path, cloud: str) -> None:
    config = events.event_config(
        cloud=cloud, audience=3000, domain="demo.example.org", email="ops@example.org", **WINDOW
    )
    stack = events.create("demo", config, stacks=tmp_path)
    path = tmp_path / "Pulumi.event-demo.yaml"
    assert stack.name == "event-demo"
    assert yaml.safe_load(path.read_text())["config"] == config
    again = load_stack_file(path)
    assert again == stack
    assert stack.settings.event is not None
    assert stack.settings.event.start == datetime(2026, 12, 3, 14, tzinfo=UTC)
    assert stack.settings.tls.mode.value == "letsencrypt"
    assert ("aws:region" in stack.providers) == (cloud == "aws")


def test_create_refuses_bad_input_and_writes_nothing(tmp_path: Path) -> None:
    bad = events.event_config(cloud="hetzner", audience=0, domain="demo.example.org")
    with pytest.raises(ConfigError, match="jitsi-xxl:audience"):
        events.create("demo", bad, stacks=tmp_path)
    with pytest.raises(ConfigError, match="event name"):
        events.create(
            "Bad_Name",
            events.event_config(cloud="aws", audience=5, domain="a.example.org"),
            stacks=tmp_path,
        )
    assert list(tmp_path.iterdir()) == []
    good = events.event_config(cloud="hetzner", audience=10, domain="demo.example.org")
    events.create("demo", good, stacks=tmp_path)
    with pytest.raises(ConfigError, match="exists already"):
        events.create("demo", good, stacks=tmp_path)


@pytest.mark.parametrize(
    ("now", "phase"),
    [
        (datetime(2026, 12, 3, 13, 59, tzinfo=UTC), events.Phase.not_started),
        (datetime(2026, 12, 3, 14, 0, tzinfo=UTC), events.Phase.running),
        (datetime(2026, 12, 3, 18, 0, tzinfo=UTC), events.Phase.running),
        (datetime(2026, 12, 3, 18, 1, tzinfo=UTC), events.Phase.past_end),
    ],
)
def test_window_logic_with_fixed_clocks(tmp_path: Path, now: datetime, phase: events.Phase) -> None:
    events.create(
        "live",
        events.event_config(cloud="aws", audience=500, domain="a.example.org", **WINDOW),
        stacks=tmp_path,
    )
    events.create(
        "open",
        events.event_config(cloud="hetzner", audience=500, domain="b.example.org"),
        stacks=tmp_path,
    )
    found, problems = events.list_events(now=now, stacks=tmp_path)
    assert problems == []
    by_name = {e.name: e for e in found}
    assert by_name["live"].phase is phase
    assert by_name["open"].phase is events.Phase.no_window


def test_commands_that_need_the_cli_say_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(events.PulumiMissingError, match=r"get\.pulumi\.com"):
        events.pulumi_cli(which=lambda _: None)
    assert events.pulumi_cli(which=lambda name: f"/opt/bin/{name}") == "/opt/bin/pulumi"
    monkeypatch.setenv("PATH", "")
    with pytest.raises(events.PulumiMissingError, match="not installed"):
        events.up("demo", on_output=print)


def test_cli_create_and_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The done-when of the workflow issue, through the installed command."""
    monkeypatch.setattr(events, "STACKS_DIR", tmp_path)
    xxl = Path(sys.executable).parent / "xxl"
    env = {"PATH": str(Path(sys.executable).parent)}  # no Pulumi CLI on it
    script = (
        "import sys; from components.offline import events, cli; from pathlib import Path; "
        f"events.STACKS_DIR = Path({str(tmp_path)!r}); sys.exit(cli.main(sys.argv[1:]))"
    )
    create = subprocess.run(
        [sys.executable, "-c", script, "event", "create", "demo", "--cloud", "hetzner",
         "--audience", "3000", "--domain", "demo.example.org"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert create.returncode == 0, create.stderr
    assert (tmp_path / "Pulumi.event-demo.yaml").is_file()
    listed = subprocess.run(
        [sys.executable, "-c", script, "event", "list"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert "demo" in listed.stdout
    assert "no window" in listed.stdout
    up = subprocess.run(
        [sys.executable, "-c", script, "event", "up", "demo"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert up.returncode == 1
    assert "Pulumi CLI is not installed" in up.stderr
    assert xxl.exists()
