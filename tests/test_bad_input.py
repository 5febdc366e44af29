"""Bad input of every kind: exit status 2, the key or argument named with what is allowed,
no traceback, nothing written; and one settings source per command."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from components.cloud import stack_config
from components.model.settings import (
    ConfigError,
    Settings,
    VisitorSettings,
    load_stack_file,
    parse_settings,
)
from components.offline import cli, events
from tests.conftest import ROOT

BASE: dict[str, Any] = {
    "cloud": "hetzner",
    "domain": "meet.example.org",
    "audience": 1000,
    "tls": {"mode": "self-signed"},
}
NOW = datetime(2026, 11, 1, tzinfo=UTC)
# 64 visitor nodes of at most 10,000 viewers each
MAX_AUDIENCE = 64 * 10_000


def write_stack(folder: Path, project: dict[str, Any], name: str = "case") -> Path:
    path = folder / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": {f"jitsi-xxl:{k}": v for k, v in project.items()}}))
    return path


def refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run `xxl args`; it must exit 2 without a traceback. Returns stderr."""
    code = cli.main(args)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in err
    return err


def render_refused(stack: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    out_dir = tmp_path / "out"
    err = refused(["render", "--stack", str(stack), "--out", str(out_dir)], capsys)
    assert not out_dir.exists(), "nothing may be written for bad input"
    return err


# --- 1. one settings source per command ------------------------------------------------------


def test_plan_of_a_stack_file_anywhere_reads_that_file_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`xxl plan --stack other/Pulumi.trial.yaml` plans that file, whatever a file of the same
    name in the stacks folder says."""
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    # a stacks/ file of the same name that disagrees (and is not even valid)
    write_stack(stacks, {**BASE, "audience": "lots"}, name="trial")
    monkeypatch.setattr(stack_config, "STACKS_DIR", stacks)
    other = tmp_path / "other"
    other.mkdir()
    trial = yaml.safe_load((ROOT / "stacks" / "Pulumi.trial.yaml").read_text())
    trial["config"]["jitsi-xxl:audience"] = 250
    path = other / "Pulumi.trial.yaml"
    path.write_text(yaml.safe_dump(trial))
    assert cli.main(["plan", "--stack", str(path), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["stack"] == "trial"
    assert doc["audience"] == 250
    # the topology and what the program registered come from the same settings
    assert doc["outputs"]["capacity"]["audience"] == 250
    assert doc["outputs"]["bridge_pool"]["desired"] == doc["bridges"]["desired"]
    assert stacks == stack_config.STACKS_DIR


# --- 2. input that used to crash ----------------------------------------------------------------


def test_binary_stack_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "Pulumi.case.yaml"
    path.write_bytes(b"config:\n  jitsi-xxl:cloud: \xff\xfe\x00aws\n")
    err = render_refused(path, tmp_path, capsys)
    assert str(path) in err
    assert "UTF-8" in err


def test_out_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stack = write_stack(tmp_path, BASE)
    target = tmp_path / "out"
    target.write_text("mine\n")
    err = refused(["render", "--stack", str(stack), "--out", str(target)], capsys)
    assert "--out" in err
    assert "not a folder" in err
    assert target.read_text() == "mine\n"
    below = target / "deeper"
    err = refused(["render", "--stack", str(stack), "--out", str(below)], capsys)
    assert "--out" in err
    assert target.read_text() == "mine\n"


@pytest.fixture
def unwritable(tmp_path: Path) -> Path:
    """A folder nobody here may write to: a read-only folder, or for root a kernel one."""
    if os.geteuid() == 0:
        return Path("/proc/xxl-render")
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    return folder / "out"


def test_out_in_an_unwritable_folder(
    tmp_path: Path, unwritable: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = write_stack(tmp_path, BASE)
    err = refused(["render", "--stack", str(stack), "--out", str(unwritable)], capsys)
    assert "--out" in err
    assert "cannot write" in err
    assert not unwritable.exists()


def test_domain_longer_than_a_certificate_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    domain = "a" * 53 + ".example.org"  # 65 characters, every label at most 63
    assert len(domain) == 65
    err = render_refused(write_stack(tmp_path, {**BASE, "domain": domain}), tmp_path, capsys)
    assert "jitsi-xxl:domain" in err
    assert "64" in err
    with pytest.raises(ConfigError, match="jitsi-xxl:domain"):
        parse_settings({**BASE, "domain": "a" * 64 + ".org"})
    assert parse_settings({**BASE, "domain": "a" * 60 + ".org"}).domain.endswith(".org")


def test_unquoted_yaml_timestamps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "Pulumi.case.yaml"
    path.write_text(
        "config:\n  jitsi-xxl:cloud: aws\n  jitsi-xxl:domain: meet.example.org\n"
        "  jitsi-xxl:tls: {mode: self-signed}\n"
        "  jitsi-xxl:event:\n    start: 2026-12-03T14:00:00Z\n    end: 2026-12-03T18:00:00Z\n"
    )
    err = render_refused(path, tmp_path, capsys)
    assert "jitsi-xxl:event.start" in err
    assert "jitsi-xxl:event.end" in err
    assert "quote" in err
    err = refused(["plan", "--stack", str(path)], capsys)
    assert "jitsi-xxl:event.start" in err


def test_hetzner_dns_zone_must_hold_the_domain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {**BASE, "dns": {"zone": "example.com"}}
    err = render_refused(write_stack(tmp_path, bad), tmp_path, capsys)
    assert "jitsi-xxl:dns.zone" in err
    assert "meet.example.org" in err
    for zone in ("example.org", "meet.example.org", "Example.Org."):
        assert parse_settings({**BASE, "dns": {"zone": zone}}).dns is not None
    with pytest.raises(ConfigError, match=r"dns\.zone"):
        parse_settings({**BASE, "dns": {"zone": "ample.org"}})


@pytest.fixture
def event_stacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`xxl event` writing into a scratch stacks folder, with no Pulumi CLI on PATH."""
    folder = tmp_path / "stacks"
    folder.mkdir()
    monkeypatch.setattr(events, "STACKS_DIR", folder)
    monkeypatch.setenv("PATH", "")
    return folder


CREATE = ["event", "create", "demo", "--cloud", "hetzner", "--domain", "demo.example.org"]


def test_audience_in_non_ascii_digits(
    event_stacks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused([*CREATE, "--audience", "\u0663\u0660\u0660"], capsys)  # Arabic-Indic 300
    assert "--audience" in err
    assert "whole number" in err
    assert list(event_stacks.iterdir()) == []
    with pytest.raises(ConfigError, match="jitsi-xxl:audience"):
        parse_settings({**BASE, "audience": "\u0663\u0660\u0660"})


def test_binary_event_stack_file(event_stacks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = event_stacks / "Pulumi.event-broken.yaml"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert cli.main([*CREATE, "--audience", "300"]) == 0
    capsys.readouterr()
    code = cli.main(["event", "list"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "demo" in out
    assert bad.name in err
    assert "UTF-8" in err
    assert "Traceback" not in err


def test_yaml_aliases_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Billion laughs: a few lines that expand to millions of values."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 7)]
    path = tmp_path / "Pulumi.case.yaml"
    path.write_text(
        "\n".join(lines) + "\nconfig:\n  jitsi-xxl:cloud: hetzner\n  jitsi-xxl:audience: *l6\n"
    )
    err = render_refused(path, tmp_path, capsys)
    assert "alias" in err
    assert len(err) < 2000


def test_duplicate_keys_are_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "Pulumi.case.yaml"
    path.write_text(
        "config:\n  jitsi-xxl:cloud: hetzner\n  jitsi-xxl:domain: meet.example.org\n"
        "  jitsi-xxl:tls: {mode: self-signed}\n  jitsi-xxl:audience: 100\n"
        "  jitsi-xxl:visitors:\n    nodes: 2\n    nodes: 3\n  jitsi-xxl:audience: 200\n"
    )
    err = render_refused(path, tmp_path, capsys)
    assert "duplicate key jitsi-xxl:audience" in err
    assert "duplicate key jitsi-xxl:visitors.nodes" in err


# --- 3. input that used to be accepted ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("release", "jicofo"), "1.0-1189-1\n"),
        (("release", "jitsi_meet"), "1.0.9365-1\n"),
        (("release", "prosody"), "13.0.6*\n"),
        (("tls", "email"), "ops@example.org\n"),
    ],
)
def test_trailing_newline_is_refused(path: tuple[str, str], value: str) -> None:
    raw = {**BASE, path[0]: {path[1]: value}}
    if path[0] == "tls":
        raw["tls"] = {"mode": "letsencrypt", "email": value}
    with pytest.raises(ConfigError, match=f"jitsi-xxl:{path[0]}.{path[1]}"):
        parse_settings(raw)


def test_event_name_with_a_newline(event_stacks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(
        ["event", "create", "demo\n", "--cloud", "hetzner", "--audience", "300",
         "--domain", "demo.example.org"],
        capsys,
    )  # fmt: skip
    assert "event name" in err
    assert list(event_stacks.iterdir()) == []


def test_create_leaves_no_file_behind_on_any_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(path: Path) -> None:
        raise ConfigError([f"{path}: cannot read (disk trouble)"])

    monkeypatch.setattr(events, "load_stack_file", broken)
    config = events.event_config(cloud="hetzner", audience=300, domain="demo.example.org")
    with pytest.raises(ConfigError, match="disk trouble"):
        events.create("demo", config, stacks=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "cidrs",
    [
        ["0.0.0.0/1", "128.0.0.0/1"],
        ["128.0.0.0/1", "0.0.0.0/2", "64.0.0.0/2"],
        ["203.0.113.0/24", "::/1", "8000::/1"],
    ],
)
def test_admin_cidrs_that_together_are_everywhere(cidrs: list[str]) -> None:
    with pytest.raises(ConfigError, match=r"jitsi-xxl:admin_cidrs.*SSH from anywhere"):
        parse_settings({**BASE, "admin_cidrs": cidrs})


def test_admin_cidrs_that_leave_a_gap_but_span_most_of_the_internet() -> None:
    cidrs = ["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "2001:db8::/32"]
    with pytest.raises(ConfigError, match=r"jitsi-xxl:admin_cidrs.*no wider than /8 \(IPv4\)"):
        parse_settings({**BASE, "admin_cidrs": cidrs})


def test_admin_networks_of_ordinary_size_are_fine() -> None:
    cidrs = ["10.0.0.0/8", "11.0.0.0/9", "203.0.113.0/24", "2001:db8::/32"]
    assert parse_settings({**BASE, "admin_cidrs": cidrs}).admin_cidrs == cidrs


def test_event_that_is_over_already(event_stacks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    window = ["--start", "2020-01-01T10:00:00Z", "--end", "2020-01-01T12:00:00Z"]
    err = refused([*CREATE, "--audience", "300", *window], capsys)
    assert "jitsi-xxl:event.end" in err
    assert "over" in err
    assert list(event_stacks.iterdir()) == []
    later = events.event_config(
        cloud="hetzner", audience=300, domain="demo.example.org",
        start="2026-12-03T14:00:00Z", end="2026-12-03T18:00:00Z",
    )  # fmt: skip
    with pytest.raises(ConfigError, match="over"):
        events.create("demo", later, stacks=event_stacks, now=datetime(2027, 1, 1, tzinfo=UTC))
    assert events.create("demo", later, stacks=event_stacks, now=NOW).settings.event is not None


@pytest.mark.parametrize(("given", "missing"), [("--start", "--end"), ("--end", "--start")])
def test_start_and_end_go_together(
    event_stacks: Path, capsys: pytest.CaptureFixture[str], given: str, missing: str
) -> None:
    err = refused([*CREATE, "--audience", "300", given, "2030-12-03T14:00:00Z"], capsys)
    assert missing in err
    assert list(event_stacks.iterdir()) == []


# --- 4. --out never removes what xxl did not make ----------------------------------------------


def test_render_refuses_a_folder_it_did_not_make(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = write_stack(tmp_path, BASE)
    out = tmp_path / "templates"
    (out / "signaling").mkdir(parents=True)
    tracked = out / "signaling" / "nginx.conf.j2"
    tracked.write_text("tracked\n")
    err = refused(["render", "--stack", str(stack), "--out", str(out)], capsys)
    assert "--out" in err
    assert "not empty" in err
    assert tracked.read_text() == "tracked\n"
    assert sorted(p.name for p in out.rglob("*")) == ["nginx.conf.j2", "signaling"]


def test_render_marks_its_folder_and_renders_into_it_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = write_stack(tmp_path, BASE)
    out = tmp_path / "out"
    out.mkdir()  # an empty folder is fine
    assert cli.main(["render", "--stack", str(stack), "--out", str(out)]) == 0
    assert (out / cli.RENDER_MARKER).is_file()
    assert cli.main(["render", "--stack", str(stack), "--out", str(out)]) == 0
    assert (out / cli.RENDER_MARKER).is_file()
    capsys.readouterr()


# --- 5. the audience ceiling and the hints agree with the model --------------------------------


def test_audience_ceiling_is_what_the_visitor_nodes_hold() -> None:
    most = VisitorSettings.model_fields["max_per_node"].metadata
    per_node = next(m.le for m in most if hasattr(m, "le"))
    nodes = next(m.le for m in VisitorSettings.model_fields["nodes"].metadata if hasattr(m, "le"))
    assert nodes * per_node == MAX_AUDIENCE
    audience = Settings.model_fields["audience"].metadata
    assert next(m.le for m in audience if hasattr(m, "le")) == MAX_AUDIENCE
    with pytest.raises(ConfigError, match="jitsi-xxl:audience"):
        parse_settings({**BASE, "audience": 1_000_000})
    top = parse_settings(
        {
            **BASE,
            "audience": MAX_AUDIENCE,
            "visitors": {"max_per_node": 10000},
            "bridges": {"participants_per_bridge": 1000},
        }
    )
    assert top.audience == MAX_AUDIENCE


def _problems(raw: dict[str, Any], key: str) -> list[str]:
    """The problems of `raw` about keys under `key`."""
    try:
        parse_settings(raw)
    except ConfigError as exc:
        return [p for p in exc.problems if p.startswith(f"jitsi-xxl:{key}")]
    return []


@settings(max_examples=300, deadline=None)
@given(
    audience=st.integers(1, MAX_AUDIENCE),
    nodes=st.one_of(st.none(), st.integers(1, 64)),
    max_per_node=st.integers(50, 10_000),
    per_bridge=st.integers(10, 2000),
    bridges_max=st.one_of(st.none(), st.integers(1, 1000)),
)
def test_every_hint_names_a_value_the_model_accepts(
    audience: int, nodes: int | None, max_per_node: int, per_bridge: int, bridges_max: int | None
) -> None:
    """Following the hint of a plan that cannot hold the audience fixes that key."""
    visitors: dict[str, Any] = {"max_per_node": max_per_node}
    if nodes is not None:
        visitors["nodes"] = nodes
    bridges: dict[str, Any] = {"participants_per_bridge": per_bridge}
    if bridges_max is not None:
        bridges["max"] = bridges_max
    raw = {**BASE, "audience": audience, "visitors": visitors, "bridges": bridges}
    try:
        parse_settings(raw)
    except ConfigError as exc:
        problems = exc.problems
    else:
        return
    for line in problems:
        if m := re.search(r"allowed: at least (\d+) nodes", line):
            fixed = {**raw, "visitors": {**visitors, "nodes": int(m[1])}}
            assert _problems(fixed, "visitors.") == [], line
        if m := re.search(r"visitors\.max_per_node of at least (\d+)", line):
            fixed = {**raw, "visitors": {**visitors, "nodes": 64, "max_per_node": int(m[1])}}
            assert _problems(fixed, "visitors.") == [], line
        if m := re.search(r"bridges\.max: .*allowed: at least (\d+) ", line):
            fixed = {**raw, "bridges": {**bridges, "max": int(m[1])}}
            assert _problems(fixed, "bridges.") == [], line
        if m := re.search(r"participants_per_bridge of at least (\d+)", line):
            fixed = {**raw, "bridges": {"participants_per_bridge": int(m[1])}}
            assert _problems(fixed, "bridges.") == [], line


def test_load_stack_file_keeps_the_document_it_read(tmp_path: Path) -> None:
    path = write_stack(tmp_path, BASE)
    stack = load_stack_file(path)
    assert stack.document == yaml.safe_load(path.read_text())
