"""How secrets reach the VMs: never in AWS user data, each role reading only its own
parameters, fetched by the bootstrap's own code, never on a command line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from components.cloud.aws.iam import own_secrets_policy, session_manager_policy
from components.model.credentials import BRIDGE_SECRETS, SIGNALING_SECRETS, env_name
from components.model.settings import load_stack_file
from components.rendering.userdata import BOOTSTRAP
from tests.conftest import ROOT, render_stack, require_tool
from tests.test_program import run

AWS = load_stack_file(ROOT / "stacks" / "Pulumi.aws-10k.yaml").settings
PARAMETER = "aws:ssm/parameter:Parameter"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


def _bootstrap() -> str:
    _, bundle = render_stack(AWS)
    return next(f.content for f in bundle.files if f.path == BOOTSTRAP)


def _fetcher() -> str:
    """The Python the AWS bootstrap runs to fetch its secrets, as shipped."""
    m = re.search(r"<<'PY'\n(.*?)\nPY\n", _bootstrap(), re.S)
    assert m, "the bootstrap has no SSM fetcher"
    return m[1]


def _fetch(tmp_path: Path, pages: list[dict[str, object]], names: list[str]) -> tuple[int, str]:
    """Runs the shipped fetcher against a boto3 stand-in that answers `pages` in turn."""
    fake = tmp_path / "fake"
    fake.mkdir(exist_ok=True)
    (fake / "boto3.py").write_text(
        "import json, os\n"
        "PAGES = json.loads(os.environ['FAKE_PAGES'])\n"
        "class _Ssm:\n"
        "    def get_parameters_by_path(self, **kw):\n"
        "        assert kw['WithDecryption'] is True\n"
        "        assert kw['Path'] == '/jitsi-xxl/s/signaling/'\n"
        "        return PAGES[int(kw.get('NextToken', '0'))]\n"
        "def client(name):\n"
        "    assert name == 'ssm'\n"
        "    return _Ssm()\n"
    )
    out = tmp_path / "secrets.env"
    proc = subprocess.run(
        [sys.executable, "-", "/jitsi-xxl/s/signaling/", str(out), *names],
        input=_fetcher(),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(fake), "FAKE_PAGES": json.dumps(pages)},
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def _param(name: str, value: str) -> dict[str, str]:
    return {"Name": f"/jitsi-xxl/s/signaling/{name}", "Value": value}


def test_the_fetcher_writes_the_wanted_secrets_from_every_page_0600(tmp_path: Path) -> None:
    good = "a" * 24
    pages: list[dict[str, object]] = [
        {"Parameters": [_param("JVB_PASSWORD", good)], "NextToken": "1"},
        {"Parameters": [_param("TURN_SECRET", "b" * 24), _param("UNWANTED", "c" * 24)]},
    ]
    code, said = _fetch(tmp_path, pages, ["JVB_PASSWORD", "TURN_SECRET"])
    assert code == 0, said
    out = tmp_path / "secrets.env"
    assert out.read_text() == f"JVB_PASSWORD={good}\nTURN_SECRET={'b' * 24}\n"
    assert out.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "pages",
    [
        [{"Parameters": []}],  # missing
        [{"Parameters": [_param("JVB_PASSWORD", "short")]}],  # not a generated value
        [{"Parameters": [_param("JVB_PASSWORD", "x" * 20 + "$(reboot)")]}],  # would run
    ],
)
def test_the_fetcher_refuses_missing_or_unusable_values(
    tmp_path: Path, pages: list[dict[str, object]]
) -> None:
    code, said = _fetch(tmp_path, pages, ["JVB_PASSWORD"])
    assert code != 0
    assert "JVB_PASSWORD" in said
    assert "reboot" not in said
    assert not (tmp_path / "secrets.env").exists()


def _policies(kind: str) -> dict[str, dict[str, object]]:
    return {
        r.name: json.loads(r.inputs["policy"])
        for r in run("aws-10k").resources
        if r.type == ROLE_POLICY and r.name.endswith(kind)
    }


def test_each_role_reads_only_its_own_parameters() -> None:
    parameters = [r for r in run("aws-10k").resources if r.type == PARAMETER]
    names = {str(r.inputs["name"]) for r in parameters}
    stack = "/jitsi-xxl/aws-10k"
    assert names == {f"{stack}/signaling/{env_name(f)}" for f in SIGNALING_SECRETS} | {
        f"{stack}/jvb/{env_name(f)}" for f in BRIDGE_SECRETS
    }
    assert all(r.inputs["type"] == "SecureString" for r in parameters)
    assert all("value" in r.secret_inputs for r in parameters)
    policies = _policies("-secrets")
    assert len(policies) == 2
    for name, doc in policies.items():
        role = "jvb" if "-jvb-" in name else "signaling"
        text = json.dumps(doc)
        granted = set(re.findall(r"parameter(/jitsi-xxl/[^\"*]+)", text))
        own = {n for n in names if n.startswith(f"{stack}/{role}/")}
        assert granted == own | {f"{stack}/{role}"}, (name, granted)
        assert "*" not in json.dumps([s["Resource"] for s in doc["Statement"][:2]])  # type: ignore[index]


def test_session_manager_replaces_the_managed_core_policy() -> None:
    attached = [r for r in run("aws-10k").resources if r.type.endswith("rolePolicyAttachment")]
    assert not attached
    assert len(_policies("-session-manager")) == 2
    actions = json.loads(session_manager_policy())["Statement"][0]["Action"]
    assert not any(a.startswith(("ssm:GetParameter", "ec2messages:")) for a in actions)


def test_one_role_one_folder() -> None:
    with pytest.raises(ValueError, match="one folder"):
        own_secrets_policy(
            [
                "arn:aws:ssm:eu-central-1:1:parameter/jitsi-xxl/s/signaling/A",
                "arn:aws:ssm:eu-central-1:1:parameter/jitsi-xxl/s/jvb/B",
            ]
        )


def test_no_secret_is_ever_a_command_argument() -> None:
    """A secret variable appears only where no process receives it as an argument: the
    printf builtin, our own shell function `account`, and debconf's stdin heredoc."""
    secret_vars = [env_name(f) for f in SIGNALING_SECRETS]
    allowed = re.compile(r"^\s*(printf |account |\S+ \S+/\S+ password \$\{)")
    for line in _bootstrap().splitlines():
        for var in secret_vars:
            if f"${{{var}}}" in line:
                assert allowed.match(line), f"{var} on a command line: {line.strip()}"


def test_hetzner_carries_a_metadata_guard_that_nft_accepts(tmp_path: Path) -> None:
    hetzner = load_stack_file(ROOT / "stacks" / "Pulumi.hetzner-10k.yaml").settings
    _, bundle = render_stack(hetzner)
    guard = bundle.vm.file("/etc/jitsi/xxl/metadata-guard.nft").content
    assert "ip daddr 169.254.169.254 meta skuid != 0 counter reject" in guard
    nft = require_tool("nft")
    rules = tmp_path / "guard.nft"
    rules.write_text(guard)
    proc = subprocess.run(
        [nft, "-c", "-f", str(rules)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    _, aws = render_stack(AWS)
    assert not any("metadata-guard" in f.path for f in aws.vm.files)
