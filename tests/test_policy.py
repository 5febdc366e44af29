"""The policy pack: every rule passes one resource and fails another; the example stacks
comply; the pack hands every rule to CrossGuard."""

from __future__ import annotations

import base64
import gzip
import runpy
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pulumi_policy
import pytest

from components.offline.mocks import run_program
from policy.rules import (
    FIREWALL,
    GROUP,
    INGRESS,
    INSTANCE,
    RULES,
    SERVER,
    TEMPLATE,
)
from tests.conftest import ROOT
from tests.test_program import STACK_NAMES, config_of

GOOD_INSTANCE: dict[str, Any] = {
    "instanceType": "c6i.4xlarge",
    "metadataOptions": {"httpTokens": "required"},
    "rootBlockDevice": {"encrypted": True},
    "userDataBase64": base64.b64encode(
        gzip.compress(b"#cloud-config\nruncmd: [[true]]\n")
    ).decode(),
}

# rule name -> (type, passing props, failing props, ignore_changes of the pass, of the fail)
CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any], list[str], list[str]]] = {
    "imdsv2-required": (
        TEMPLATE,
        {"metadataOptions": {"httpTokens": "required"}},
        {"metadataOptions": {"httpTokens": "optional"}},
        [], [],
    ),
    "no-ssh-from-anywhere": (
        INGRESS,
        {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "198.51.100.0/24"},
        {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "0.0.0.0/0"},
        [], [],
    ),
    "no-public-prosody-ports": (
        FIREWALL,
        {"rules": [{"direction": "in", "port": "443", "sourceIps": ["0.0.0.0/0"]}]},
        {"rules": [{"direction": "in", "port": "52800-52810", "sourceIps": ["::/0"]}]},
        [], [],
    ),
    "encrypted-volumes": (
        INSTANCE,
        GOOD_INSTANCE,
        {**GOOD_INSTANCE, "rootBlockDevice": {"encrypted": False}},
        [], [],
    ),
    "no-credentials-in-clear-user-data": (
        SERVER,
        {"userData": "#cloud-config\nwrite_files: []\n"},
        {"userData": "#cloud-config\nruncmd:\n  - echo password=hunter2\n"},
        [], [],
    ),
    "bridge-desired-capacity-ignored": (GROUP, {}, {}, ["desiredCapacity"], []),
    "documented-instance-sizes": (SERVER, {"serverType": "ccx33"}, {"serverType": "cx22"}, [], []),
}  # fmt: skip


def test_every_rule_has_a_case() -> None:
    assert set(CASES) == set(RULES)


@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_passes_and_fails(name: str) -> None:
    rule = RULES[name]
    typ, good, bad, good_ignore, bad_ignore = CASES[name]
    assert rule(typ, good, good_ignore) == []
    assert rule(typ, bad, bad_ignore), f"{name} let a violating {typ} through"


def test_ssh_rule_sees_port_ranges_and_all_traffic() -> None:
    rule = RULES["no-ssh-from-anywhere"]
    assert rule(INGRESS, {"ipProtocol": "-1", "cidrIpv6": "::/0"}, [])
    assert rule(
        FIREWALL, {"rules": [{"direction": "in", "port": "20-30", "sourceIps": ["0.0.0.0/0"]}]}, []
    )
    assert not rule(
        FIREWALL,
        {"rules": [{"direction": "out", "port": "22", "destinationIps": ["0.0.0.0/0"]}]},
        [],
    )


@pytest.mark.parametrize("name", STACK_NAMES)
def test_example_stacks_comply(name: str) -> None:
    config = config_of(name)
    config["jitsi-xxl:admin_cidrs"] = '["198.51.100.0/24"]'
    for resource in run_program(config, name).resources:
        for rule_name, rule in RULES.items():
            violations = rule(resource.type, resource.inputs, resource.ignore_changes)
            assert violations == [], f"{rule_name}: {resource.type} {resource.name}: {violations}"


def test_the_pack_hands_every_rule_to_crossguard(monkeypatch: pytest.MonkeyPatch) -> None:
    packs: list[dict[str, Any]] = []
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: packs.append(kwargs))
    runpy.run_path(str(ROOT / "policy" / "__main__.py"))
    (pack,) = packs
    assert pack["enforcement_level"] == pulumi_policy.EnforcementLevel.MANDATORY
    policies = {p.name: p for p in pack["policies"]}
    assert set(policies) == set(RULES)
    reported: list[str] = []

    class Opts:
        ignore_changes: tuple[str, ...] = ()

    class Args:
        resource_type = SERVER
        props: Mapping[str, str] = MappingProxyType({"serverType": "cx22"})
        opts = Opts()

    policies["documented-instance-sizes"].validate(
        Args(), lambda message, urn: reported.append(message)
    )
    assert reported == ["'cx22' is not one of ccx33, ccx43"]
