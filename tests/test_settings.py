"""Settings: valid stacks load; every bad key gives exit 2 naming it, with nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from components.model.settings import ConfigError, Settings, load_stack_file, parse_settings
from components.offline import cli
from tests.conftest import ROOT, STACKS

BASE: dict[str, Any] = {
    "cloud": "hetzner",
    "domain": "meet.example.org",
    "audience": 1000,
    "tls": {"mode": "self-signed"},
}


def write_stack(
    tmp_path: Path, project: dict[str, Any], extra: dict[str, Any] | None = None
) -> Path:
    config = {f"jitsi-xxl:{k}": v for k, v in project.items()} | (extra or {})
    path = tmp_path / "Pulumi.case.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    return path


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_example_stacks_are_valid() -> None:
    assert len(STACKS) >= 3
    for path in STACKS:
        stack = load_stack_file(path)
        assert isinstance(stack.settings, Settings)


def test_ten_thousand_viewer_stacks_plan_eight_nodes() -> None:
    for name in ("aws-10k", "hetzner-10k"):
        s = load_stack_file(ROOT / "stacks" / f"Pulumi.{name}.yaml").settings
        assert s.audience == 10000
        assert s.visitors.nodes == 8


def test_settings_are_frozen() -> None:
    s = parse_settings(BASE)
    with pytest.raises(Exception, match="frozen"):
        s.audience = 5  # type: ignore[misc]


# (key path, bad value, text the error must contain besides the key)
BAD_VALUES: list[tuple[tuple[str, ...], Any, str]] = [
    (("cloud",), "gcp", "one of aws, hetzner"),
    (("cloud",), 3, "one of aws, hetzner"),
    (("domain",), "not a domain", "DNS name"),
    (("domain",), "v1.meet.jitsi", "meet.jitsi"),
    (("domain",), ["x"], "DNS name"),
    (("audience",), "lots", "whole number from 1 to 640000"),
    (("audience",), 0, "whole number from 1 to 640000"),
    (("audience",), 2.5, "whole number"),
    (("audience",), True, "whole number"),
    (("visitors", "nodes"), 0, "from 1 to 64"),
    (("visitors", "nodes"), 65, "from 1 to 64"),
    (("visitors", "nodes"), "eight", "from 1 to 64"),
    (("visitors", "max_per_node"), 10, "from 50 to 10000"),
    (("visitors", "max_per_node"), "x", "from 50 to 10000"),
    (("visitors", "main_participants"), 0, "from 1 to 500"),
    (("visitors", "main_participants"), "x", "from 1 to 500"),
    (("visitors", "promotion"), "sometimes", "one of auto, moderated, off"),
    (("bridges", "participants_per_bridge"), 5, "from 10 to 2000"),
    (("bridges", "participants_per_bridge"), "x", "from 10 to 2000"),
    (("bridges", "min"), -1, "from 0 to 1000"),
    (("bridges", "max"), 0, "from 1 to 1000"),
    (("bridges", "max"), "x", "from 1 to 1000"),
    (("tls", "mode"), "acme", "one of letsencrypt, provided, self-signed"),
    (("tls", "email"), "nope", "e-mail"),
    (("network", "cidr"), "10.0.0.0/8", "/16 and /22"),
    (("network", "cidr"), "8.8.0.0/16", "private"),
    (("network", "cidr"), "ten", "IPv4 network"),
    (("release", "prosody"), "13.0", "13.0.*, 13.0.6* or 13.0.6-1"),
    (("release", "prosody"), "0.12.4", "13.0 or later"),
    (("release", "jicofo"), "latest!", "Debian package version"),
    (("visitors",), "eight", "object with keys"),
    (("admin_cidrs",), ["0.0.0.0/0"], "SSH from anywhere is not allowed"),
    (("admin_cidrs",), ["10.0.0.300/32"], "not a CIDR"),
    (("event", "start"), "2026-12-03T14:00:00", "time zone"),
    (("dns", "ttl"), 5, "from 30 to 86400"),
    (("bridges", "scale_on"), "memory", "one of stress, cpu"),
    (("bridges", "websockets"), "yes", "true or false"),
    (("bridges", "refresh_on_change"), "sometimes", "true or false"),
    (("hetzner", "ssh_keys"), ["ssh-ed25519 not-base64!"], "neither an OpenSSH public key"),
    # a blob of another key type than its line says
    (("hetzner", "ssh_keys"), ["ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQAB"], "entry 1 is neither"),
    (("hetzner", "ssh_keys"), ["ops", "-bad name"], "entry 2 is neither"),
    (("hetzner", "ssh_keys"), ["ops", "ops"], "lists a key twice"),
    (("hetzner", "ssh_keys"), [f"k{i}" for i in range(21)], "at most 20"),
]

CROSS_RULES: list[tuple[dict[str, Any], str]] = [
    ({"signaling": {"instance_type": "c6i.2xlarge"}}, "signaling.instance_type 'c6i.2xlarge'"),
    ({"bridges": {"instance_type": "t3.micro"}}, "allowed: c6i.2xlarge"),
    ({"cloud": "hetzner", "bridges": {"instance_type": "cx22"}}, "allowed: ccx33"),
    ({"aws": {"vpc_id": "vpc-1"}}, "aws.vpc_id and aws.subnet_ids go together"),
    ({"aws": {"vpc_id": "vpc-1", "subnet_ids": ["s-1"]}}, "two or more subnets"),
    (
        {"event": {"start": "2026-12-03T16:00:00Z", "end": "2026-12-03T14:00:00Z"}},
        "event.end must be after event.start",
    ),
]


@pytest.mark.parametrize(("extra", "message"), CROSS_RULES)
def test_cross_key_rules(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_settings({**BASE, "cloud": "aws", **extra})
    assert any(message in line for line in exc.value.problems), exc.value.problems


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    raw = json.loads(json.dumps(BASE))
    node = raw
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    result: dict[str, Any] = raw
    return result


@pytest.mark.parametrize(
    ("path", "value", "hint"), BAD_VALUES, ids=[f"{'.'.join(p)}={v!r}" for p, v, _ in BAD_VALUES]
)
def test_bad_value_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path: tuple[str, ...], value: Any, hint: str
) -> None:
    stack = write_stack(tmp_path, _with(path, value))
    out_dir = tmp_path / "out"
    code, out, err = run_cli(["render", "--stack", str(stack), "--out", str(out_dir)], capsys)
    assert code == 2
    assert f"jitsi-xxl:{'.'.join(path)}" in err
    assert hint in err
    assert "Traceback" not in err
    assert out == ""
    assert not out_dir.exists(), "nothing may be written for a bad config"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({**BASE, "audiance": 5}, "jitsi-xxl:audiance: unknown key"),
        ({**BASE, "visitors": {"nodez": 4}}, "jitsi-xxl:visitors.nodez: unknown key"),
        ({**BASE, "tls": {"mode": "self-signed", "emial": "a@b.c"}}, "jitsi-xxl:tls.emial"),
    ],
)
def test_unknown_keys_are_errors(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_settings(raw)
    assert any(key in line for line in exc.value.problems)
    assert any("allowed keys here" in line for line in exc.value.problems)


def test_every_problem_is_reported_at_once() -> None:
    raw = {**BASE, "audience": "x", "visitors": {"nodes": 0, "promotion": "maybe"}, "typo": 1}
    with pytest.raises(ConfigError) as exc:
        parse_settings(raw)
    text = "\n".join(exc.value.problems)
    for key in ("audience", "visitors.nodes", "visitors.promotion", "typo"):
        assert f"jitsi-xxl:{key}" in text
    assert len(exc.value.problems) == 4


def test_required_keys_and_cross_field_rules() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_settings({"cloud": "aws"})
    text = "\n".join(exc.value.problems)
    assert "jitsi-xxl:domain: required" in text
    assert "jitsi-xxl:tls: required" in text
    with pytest.raises(ConfigError, match=r"tls\.email is required"):
        parse_settings({**BASE, "tls": {"mode": "letsencrypt"}})
    with pytest.raises(ConfigError, match=r"visitors.nodes: 2 nodes x max_per_node 2000"):
        parse_settings({**BASE, "audience": 5000, "visitors": {"nodes": 2}})
    with pytest.raises(ConfigError, match=r"bridges.max: 3 bridges"):
        parse_settings({**BASE, "bridges": {"max": 3}})
    with pytest.raises(ConfigError, match=r"bridges.min: 9 is above bridges.max 8"):
        parse_settings({**BASE, "bridges": {"min": 9, "max": 8}})


def test_stack_file_namespaces_and_secrets(tmp_path: Path) -> None:
    bad = write_stack(tmp_path, BASE, {"gcp:project": "x", "nonamespace": 1})
    with pytest.raises(ConfigError) as exc:
        load_stack_file(bad)
    text = "\n".join(exc.value.problems)
    assert "unknown namespace 'gcp'" in text
    assert "nonamespace: config keys must be namespaced" in text
    plain_secret = write_stack(tmp_path, {**BASE, "tls_private_key": "-----BEGIN"})
    with pytest.raises(ConfigError, match="must be stored encrypted"):
        load_stack_file(plain_secret)
    ok = write_stack(
        tmp_path, {**BASE, "tls_private_key": {"secure": "v1:abc"}}, {"aws:region": "x"}
    )
    loaded = load_stack_file(ok)
    assert loaded.secrets == {"tls_private_key"}
    assert loaded.providers == {"aws:region": "x"}


def test_digit_strings_from_pulumi_config_are_numbers() -> None:
    s = parse_settings({**BASE, "audience": "1200", "visitors": {"nodes": "3"}})
    assert s.audience == 1200
    assert s.visitors.nodes == 3


@pytest.mark.parametrize(
    ("project", "key"),
    [
        ({**BASE, "audiance": 5}, "jitsi-xxl:audiance"),
        ({**BASE, "visitors": {"nodes": 0}}, "jitsi-xxl:visitors.nodes"),
        ({**BASE, "visitors": {"nodes": 65}}, "jitsi-xxl:visitors.nodes"),
        ({**BASE, "audience": "ten thousand"}, "jitsi-xxl:audience"),
    ],
)
def test_installed_command_exits_2(tmp_path: Path, project: dict[str, Any], key: str) -> None:
    """The `xxl` entry point itself, in a separate process: exit status and stderr."""
    stack = write_stack(tmp_path, project)
    xxl = Path(sys.executable).parent / "xxl"
    proc = subprocess.run(
        [str(xxl), "render", "--stack", str(stack), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert key in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def _leaf_keys() -> list[tuple[str, ...]]:
    keys: list[tuple[str, ...]] = []
    for name, field in Settings.model_fields.items():
        members = getattr(field.annotation, "__args__", (field.annotation,))
        model = next((a for a in members if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is not None:
            keys += [(name, sub) for sub in model.model_fields]
        else:
            keys.append((name,))
    return keys


@pytest.mark.parametrize("path", _leaf_keys(), ids=".".join)
def test_every_key_rejects_a_wrong_type(tmp_path: Path, path: tuple[str, ...]) -> None:
    """A value of the wrong type (a list for scalars, text for lists): exit 2, the key named,
    nothing written."""
    lists = {("admin_cidrs",), ("aws", "subnet_ids"), ("hetzner", "ssh_keys")}
    wrong: Any = "x" if path in lists else [1, 2]
    raw = _with(path, wrong)
    if path == ("tls", "mode"):
        raw["tls"].pop("email", None)
    stack = write_stack(tmp_path, raw)
    out_dir = tmp_path / "out"
    proc_code = cli.main(["render", "--stack", str(stack), "--out", str(out_dir)])
    assert proc_code == 2
    with pytest.raises(ConfigError) as exc:
        parse_settings(raw)
    key = f"jitsi-xxl:{'.'.join(path)}: {json.dumps(wrong)} is not allowed"
    assert any(line.startswith(key) for line in exc.value.problems), exc.value.problems
    assert not out_dir.exists()
