"""The policy pack: every rule passes one resource and fails another, and fails each way of
slipping through that an earlier version of it let pass; the example stacks comply; the pack
hands every rule to CrossGuard."""

from __future__ import annotations

import base64
import gzip
import runpy
from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import Any

import pulumi_policy
import pytest

from components.model.planner import MAX_NODES
from components.model.ports import (
    HTTP_PORT,
    HTTPS_PORT,
    JICOFO_REST_PORT,
    JVB_MEDIA_PORT,
    JVB_PRIVATE_PORT,
    JVB_WEBSOCKET_PORT,
    MAIN_C2S_PORT,
    MAIN_HTTP_PORT,
    MAIN_S2S_PORT,
    TURN_PORT,
    TURNS_PORT,
    node_ports,
)
from components.offline.mocks import Registered, run_program
from components.rendering.engine import RenderedFile
from components.rendering.userdata import (
    BOOTSTRAP,
    ROOTFS_ARCHIVE,
    aws_user_data_base64,
    cloud_config,
    tar_xz,
)
from policy.rules import (
    FIREWALL,
    GROUP,
    INGRESS,
    INSTANCE,
    RULES,
    SECURITY_GROUP,
    SECURITY_GROUP_RULE,
    SERVER,
    STACK_RULES,
    TEMPLATE,
    StackResource,
    user_data_files,
)
from tests.conftest import ROOT
from tests.test_program import STACK_NAMES, config_of

# Not a key: PEM armour around filler, which is all the rule looks for.
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nTk9UIEEgS0VZ\n-----END PRIVATE KEY-----\n"
SECRETS_ENV = "/etc/jitsi/xxl/secrets.env"
TLS_KEY = "/etc/jitsi/xxl/tls/meet.example.org.key"

# Files as the program renders them under the placeholder contract, with the settings and
# code that merely look like credentials: none of this may be flagged.
CLEAN_FILES: dict[str, str] = {
    "/etc/jitsi/jicofo/jicofo.conf": (
        'jicofo {\n  xmpp {\n    client {\n      password = "@@XXL_SECRET_JICOFO_PASSWORD@@"\n'
        "    }\n  }\n}\n"
    ),
    "/etc/jitsi/videobridge/jvb.conf": 'apis { xmpp-client { password = "${?JVB_PASS}" } }\n',
    "/etc/prosody/conf.avail/meet.example.org.cfg.lua": (
        'external_service_secret = "@@XXL_SECRET_TURN_SECRET@@"\n'
        'app_secret = "@@XXL_SECRET_JWT_APP_SECRET@@"\n'
        'external_services = {\n    { type = "turn", secret = true, ttl = 86400 };\n}\n'
        'muc_password_whitelist = { "focus@auth.meet.example.org" }\n'
        'ssl = { key = "/etc/prosody/certs/jitsi-xxl.key" }\n'
    ),
    "/etc/turnserver.conf": (
        "use-auth-secret\nstatic-auth-secret=@@XXL_SECRET_TURN_SECRET@@\n"
        "pkey=/etc/jitsi/xxl/tls/meet.example.org.key\n"
    ),
    "/etc/nginx/sites-available/meet.conf": (
        "ssl_certificate_key /etc/jitsi/xxl/tls/meet.example.org.key;\nserver_tokens off;\n"
    ),
    BOOTSTRAP: (
        "#!/bin/bash\nreadonly SECRETS_FILE=/etc/jitsi/xxl/secrets.env\n"
        "readonly TLS_KEY=/etc/jitsi/xxl/tls/meet.example.org.key\n"
        'JICOFO_PASSWORD="$(fetch JICOFO_PASSWORD)"\nexport TURN_SECRET=${TURN_SECRET}\n'
        'prosodyctl register focus auth.meet.example.org "${JICOFO_PASSWORD}"\n'
        "sed -i 's|@@XXL_SECRET_JVB_PASSWORD@@|x|' /etc/jitsi/videobridge/jvb.conf\n"
    ),
    "/usr/local/lib/jitsi-xxl/bridge_agent.py": (
        "token = _http(url, method='PUT')\nheaders = {'X-aws-ec2-metadata-token': token}\n"
        "request(token=token)\nself._token = (token, 1.0)\n"
    ),
}


def cloud_config_of(files: Mapping[str, str]) -> str:
    """The program's own cloud-config around `files` (path -> text): one tar.xz archive."""
    rendered = [RenderedFile(path, text, 0o600) for path, text in files.items()]
    if BOOTSTRAP not in files:
        rendered.append(RenderedFile(BOOTSTRAP, "#!/bin/bash\ntrue\n", 0o755))
    return cloud_config(ROOTFS_ARCHIVE, tuple(rendered), BOOTSTRAP)


def aws_instance(files: Mapping[str, str]) -> dict[str, Any]:
    return {**GOOD_INSTANCE, "userDataBase64": aws_user_data_base64(cloud_config_of(files))}


def aws_template(files: Mapping[str, str]) -> dict[str, Any]:
    return {"userData": aws_user_data_base64(cloud_config_of(files))}


def hetzner_server(files: Mapping[str, str]) -> dict[str, Any]:
    return {"serverType": "ccx33", "userData": cloud_config_of(files)}


GOOD_INSTANCE: dict[str, Any] = {
    "instanceType": "c6i.4xlarge",
    "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
    "rootBlockDevice": {"encrypted": True},
    "ebsBlockDevices": [{"deviceName": "/dev/sdf", "encrypted": True}],
    "userDataBase64": aws_user_data_base64(cloud_config_of(CLEAN_FILES)),
}

# rule name -> (type, passing props, failing props, ignore_changes of the pass, of the fail)
CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any], list[str], list[str]]] = {
    "imdsv2-required": (
        TEMPLATE,
        {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1}},
        {"metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 1}},
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
        hetzner_server({**CLEAN_FILES, SECRETS_ENV: "JICOFO_PASSWORD=Zm9vYmFyYmF6cXV4cXV1eA\n"}),
        {"userData": "#cloud-config\nruncmd:\n  - echo password=hunter2\n"},
        [], [],
    ),
    "bridge-desired-capacity-ignored": (GROUP, {}, {}, ["desiredCapacity"], []),
    "documented-instance-sizes": (SERVER, {"serverType": "ccx33"}, {"serverType": "cx22"}, [], []),
    "hetzner-servers-have-ssh-keys": (SERVER, {"sshKeys": ["4711"]}, {"sshKeys": []}, [], []),
}  # fmt: skip


def test_every_rule_has_a_case() -> None:
    assert set(CASES) == set(RULES)


@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_passes_and_fails(name: str) -> None:
    rule = RULES[name]
    typ, good, bad, good_ignore, bad_ignore = CASES[name]
    assert rule(typ, good, good_ignore) == []
    assert rule(typ, bad, bad_ignore), f"{name} let a violating {typ} through"


def test_the_scalers_small_type_is_for_the_scaler_vm_only() -> None:
    """Shared vCPUs are the scaler VM's alone: a bridge or the signaling VM on them would
    have their stress inflated by steal."""
    rule = RULES["documented-instance-sizes"]
    scaler = {"serverType": "cx23", "labels": {"jitsi-xxl/role": "scaler"}}
    assert rule(SERVER, scaler, []) == []
    for role in ("jvb", "signaling"):
        assert rule(SERVER, {**scaler, "labels": {"jitsi-xxl/role": role}}, [])
    assert rule(SERVER, {**scaler, "serverType": "cx33"}, [])


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


def _inline(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"ingress": list(rules)}


def _tcp(port: int, *cidrs: str) -> dict[str, Any]:
    return {"protocol": "tcp", "fromPort": port, "toPort": port, "cidrBlocks": list(cidrs)}


# (rule, resource type, props, a word every violation list must contain): each one went
# through an earlier version of the rules without a violation.
ESCAPES: dict[str, tuple[str, str, dict[str, Any], str]] = {
    # -- user data: the credential sits inside the compressed archive
    "hocon-password-in-archive": (
        "no-credentials-in-clear-user-data", INSTANCE,
        aws_instance({**CLEAN_FILES, "/etc/jitsi/jicofo/jicofo.conf": 'password = "Zm9vYmFy"\n'}),
        "password",
    ),
    "lua-turn-secret-in-archive": (
        "no-credentials-in-clear-user-data", TEMPLATE,
        aws_template({"/etc/prosody/prosody.cfg.lua": 'external_service_secret = "abc123"\n'}),
        "external_service_secret",
    ),
    "lua-app-secret-in-archive": (
        "no-credentials-in-clear-user-data", INSTANCE,
        aws_instance({"/etc/prosody/conf.d/jwt.cfg.lua": "app_secret = 'c2VjcmV0'\n"}),
        "app_secret",
    ),
    "coturn-secret-in-archive": (
        "no-credentials-in-clear-user-data", INSTANCE,
        aws_instance({"/etc/turnserver.conf": "use-auth-secret\nstatic-auth-secret=abc123\n"}),
        "static-auth-secret",
    ),
    "shell-password-in-bootstrap": (
        "no-credentials-in-clear-user-data", TEMPLATE,
        aws_template({BOOTSTRAP: "#!/bin/bash\nexport JVB_PASSWORD=Zm9vYmFy\n"}),
        "JVB_PASSWORD",
    ),
    "json-token-in-archive": (
        "no-credentials-in-clear-user-data", TEMPLATE,
        aws_template({"/etc/jitsi/xxl/agent.json": '{"api_token": "Zm9vYmFy"}'}),
        "api_token",
    ),
    "secrets-env-on-aws": (
        "no-credentials-in-clear-user-data", TEMPLATE,
        aws_template({**CLEAN_FILES, SECRETS_ENV: "JVB_PASSWORD=@@XXL_SECRET_JVB_PASSWORD@@\n"}),
        "secrets.env",
    ),
    "tls-key-on-aws": (
        "no-credentials-in-clear-user-data", INSTANCE,
        aws_instance({**CLEAN_FILES, TLS_KEY: PEM_KEY}),
        "private key",
    ),
    "ssh-key-on-hetzner": (
        "no-credentials-in-clear-user-data", SERVER,
        hetzner_server({**CLEAN_FILES, "/etc/ssh/ssh_host_ed25519_key": PEM_KEY}),
        "private key",
    ),
    "password-outside-secrets-env-on-hetzner": (
        "no-credentials-in-clear-user-data", SERVER,
        hetzner_server({"/etc/jitsi/videobridge/jvb.conf": 'password = "Zm9vYmFy"\n'}),
        "password",
    ),
    "key-in-a-gzip-write-file": (
        "no-credentials-in-clear-user-data", SERVER,
        {"userData": "#cloud-config\nwrite_files:\n  - path: /srv/key.pem\n"
         "    encoding: gz+b64\n    content: "
         + base64.b64encode(gzip.compress(PEM_KEY.encode())).decode() + "\n"},
        "private key",
    ),
    "not-base64": (
        "no-credentials-in-clear-user-data", INSTANCE,
        {**GOOD_INSTANCE, "userDataBase64": "not base64 at all!"}, "could not be inspected",
    ),
    "broken-gzip": (
        "no-credentials-in-clear-user-data", TEMPLATE,
        {"userData": base64.b64encode(gzip.compress(b"#cloud-config\n")[:12]).decode()},
        "could not be inspected",
    ),
    "broken-archive": (
        "no-credentials-in-clear-user-data", SERVER,
        {"userData": "#cloud-config\nwrite_files:\n  - path: /var/lib/rootfs.tar.xz\n"
         "    encoding: b64\n    content: "
         + base64.b64encode(tar_xz([RenderedFile("/etc/x", PEM_KEY)])[:60]).decode() + "\n"},
        "could not be inspected",
    ),
    "not-yaml": (
        "no-credentials-in-clear-user-data", SERVER,
        {"userData": "#cloud-config\nwrite_files: [\n"}, "could not be inspected",
    ),
    "neither-cloud-config-nor-script": (
        "no-credentials-in-clear-user-data", SERVER,
        {"userData": "Content-Type: multipart/mixed\n\npassword=x\n"}, "could not be inspected",
    ),
    # -- addresses: ranges that are the internet without being spelled 0.0.0.0/0 or ::/0
    "ssh-ipv4-halves-in-one-rule": (
        "no-ssh-from-anywhere", SECURITY_GROUP, _inline(_tcp(22, "0.0.0.0/1", "128.0.0.0/1")),
        "0.0.0.0/0",
    ),
    "ssh-ipv4-halves-in-two-rules": (
        "no-ssh-from-anywhere", SECURITY_GROUP,
        _inline(_tcp(22, "10.0.0.0/8"), _tcp(22, "11.0.0.0/8")), "10.0.0.0/7",
    ),
    "ssh-ipv6-halves": (
        "no-ssh-from-anywhere", FIREWALL,
        {"rules": [{"direction": "in", "protocol": "tcp", "port": "22",
                    "sourceIps": ["::/1", "8000::/1"]}]},
        "::/0",
    ),
    "ssh-ipv6-spelled-otherwise": (
        "no-ssh-from-anywhere", FIREWALL,
        {"rules": [{"direction": "in", "protocol": "tcp", "port": "22", "sourceIps": ["::0/0"]}]},
        "::/0",
    ),
    "ssh-half-the-internet": (
        "no-ssh-from-anywhere", INGRESS,
        {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "0.0.0.0/1"},
        "0.0.0.0/1",
    ),
    "ssh-not-an-address-range": (
        "no-ssh-from-anywhere", INGRESS,
        {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "0.0.0.00/0"},
        "not an address range",
    ),
    "ssh-in-an-all-protocols-inline-rule": (
        "no-ssh-from-anywhere", SECURITY_GROUP,
        _inline({"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}),
        "port 22",
    ),
    "ssh-in-a-security-group-rule": (
        "no-ssh-from-anywhere", SECURITY_GROUP_RULE,
        {"type": "ingress", "protocol": "tcp", "fromPort": 22, "toPort": 22,
         "cidrBlocks": ["0.0.0.0/0"]},
        "port 22",
    ),
    "prosody-in-an-all-protocols-inline-rule": (
        "no-public-prosody-ports", SECURITY_GROUP,
        _inline({"protocol": "-1", "fromPort": 0, "toPort": 0, "ipv6CidrBlocks": ["::/0"]}),
        "5222",
    ),
    "prosody-in-a-security-group-rule": (
        "no-public-prosody-ports", SECURITY_GROUP_RULE,
        {"type": "ingress", "protocol": "tcp", "fromPort": 5222, "toPort": 5222,
         "cidrBlocks": ["0.0.0.0/0"]},
        "5222",
    ),
    "prosody-half-the-internet": (
        "no-public-prosody-ports", INGRESS,
        {"ipProtocol": "tcp", "fromPort": 8080, "toPort": 8080, "cidrIpv4": "128.0.0.0/1"},
        "8080",
    ),
    "visitor-node-to-ipv6-halves": (
        "no-public-prosody-ports", FIREWALL,
        {"rules": [{"direction": "in", "protocol": "tcp", "port": "any",
                    "sourceIps": ["::/1", "8000::/1"]}]},
        "52864",
    ),
    # -- disks and metadata
    "unencrypted-extra-instance-volume": (
        "encrypted-volumes", INSTANCE,
        {**GOOD_INSTANCE, "ebsBlockDevices": [{"deviceName": "/dev/sdf", "encrypted": False}]},
        "ebsBlockDevices[0]",
    ),
    "template-without-volumes": (
        "encrypted-volumes", TEMPLATE, {"blockDeviceMappings": []}, "blockDeviceMappings",
    ),
    "hop-limit-for-containers": (
        "imdsv2-required", TEMPLATE,
        {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2}},
        "httpPutResponseHopLimit",
    ),
    "hop-limit-left-to-the-ami": (
        "imdsv2-required", INSTANCE, {"metadataOptions": {"httpTokens": "required"}},
        "httpPutResponseHopLimit",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_rule_catches(case: str) -> None:
    name, typ, props, word = ESCAPES[case]
    violations = RULES[name](typ, props, [])
    assert any(word in v for v in violations), f"{name} on {case}: {violations}"


# Resources that comply, with what merely looks like a violation; an earlier version flagged
# the plain write_files, the switched-off metadata service and the instance store.
COMPLIANT: dict[str, tuple[str, str, dict[str, Any]]] = {
    "aws-instance-with-placeholders": (
        "no-credentials-in-clear-user-data", INSTANCE, GOOD_INSTANCE,
    ),
    "aws-template-with-placeholders": (
        "no-credentials-in-clear-user-data", TEMPLATE, aws_template(CLEAN_FILES),
    ),
    "placeholders-in-plain-write-files": (
        "no-credentials-in-clear-user-data", INSTANCE,
        {**GOOD_INSTANCE, "userDataBase64": base64.b64encode(gzip.compress(
            b"#cloud-config\nwrite_files:\n  - path: /etc/jitsi/videobridge/jvb.conf\n"
            b"    content: |\n      password = \"@@XXL_SECRET_JVB_PASSWORD@@\"\n"
            b"      secret = true\n")).decode()},
    ),
    "hetzner-secrets-env-and-tls-key": (
        "no-credentials-in-clear-user-data", SERVER,
        hetzner_server({**CLEAN_FILES, SECRETS_ENV: "TURN_SECRET=Zm9vYmFyYmF6cXV4\n",
                        TLS_KEY: PEM_KEY}),
    ),
    "ssh-from-a-range-with-a-gap": (
        "no-ssh-from-anywhere", SECURITY_GROUP,
        _inline(_tcp(22, "198.51.100.0/24", "2001:db8::/32"), _tcp(443, "0.0.0.0/0")),
    ),
    "icmp-from-anywhere": (
        "no-ssh-from-anywhere", SECURITY_GROUP_RULE,
        {"type": "ingress", "protocol": "icmp", "fromPort": 0, "toPort": 255,
         "cidrBlocks": ["0.0.0.0/0"]},
    ),
    "egress-everywhere": (
        "no-public-prosody-ports", SECURITY_GROUP_RULE,
        {"type": "egress", "protocol": "-1", "fromPort": 0, "toPort": 0,
         "cidrBlocks": ["0.0.0.0/0"]},
    ),
    "imds-switched-off": (
        "imdsv2-required", INSTANCE, {"metadataOptions": {"httpEndpoint": "disabled"}},
    ),
    "instance-store-beside-an-encrypted-root": (
        "encrypted-volumes", TEMPLATE,
        {"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true"}},
                                 {"deviceName": "/dev/sdb", "virtualName": "ephemeral0"}]},
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(COMPLIANT))
def test_rule_lets_through(case: str) -> None:
    name, typ, props = COMPLIANT[case]
    assert RULES[name](typ, props, []) == []


@pytest.mark.parametrize(
    ("cloud_config", "word"),
    [
        ("chpasswd:\n  users:\n    - {name: debian, password: Zm9vYmFy, type: text}\n", "password"),
        ("bootcmd:\n  - [sh, -c, 'echo TURN_SECRET=Zm9vYmFy > /etc/x']\n", "TURN_SECRET"),
        ("ssh_keys:\n  ed25519_private: |\n    " + PEM_KEY.replace("\n", "\n    "), "private key"),
    ],
)
def test_the_cloud_config_itself_is_read(cloud_config: str, word: str) -> None:
    for typ, props in (
        (SERVER, {"userData": "#cloud-config\n" + cloud_config}),
        (INSTANCE, {"userData": "#cloud-config\n" + cloud_config}),
    ):
        violations = RULES["no-credentials-in-clear-user-data"](typ, props, [])
        assert any(word in v for v in violations), (typ, violations)


def test_an_alias_is_read_once() -> None:
    """So that an alias bomb costs no more than its text."""
    lines = ["#cloud-config", "a0: &a0 [password=Zm9vYmFy]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 5)]
    props = {"userData": "\n".join(lines) + "\n"}
    (violation,) = RULES["no-credentials-in-clear-user-data"](SERVER, props, [])
    assert "a0[0]" in violation


def test_violations_never_repeat_a_secret() -> None:
    props = aws_instance({"/etc/jitsi/jicofo/jicofo.conf": 'password = "hunter2-hunter2"\n'})
    violations = RULES["no-credentials-in-clear-user-data"](INSTANCE, props, [])
    assert violations
    assert not any("hunter2" in v for v in violations)


# Every port of components/model/ports.py that serves the VMs themselves, and those clients use.
PRIVATE = sorted(
    {MAIN_C2S_PORT, MAIN_S2S_PORT, MAIN_HTTP_PORT, JICOFO_REST_PORT, JVB_PRIVATE_PORT,
     JVB_WEBSOCKET_PORT, *node_ports(1), *node_ports(MAX_NODES)}
)  # fmt: skip
PUBLIC = [HTTP_PORT, HTTPS_PORT, TURN_PORT, TURNS_PORT, JVB_MEDIA_PORT]


@pytest.mark.parametrize("port", PRIVATE + PUBLIC)
def test_private_ports_come_from_the_port_table(port: int) -> None:
    rule = RULES["no-public-prosody-ports"]
    props = {"ipProtocol": "tcp", "fromPort": port, "toPort": port, "cidrIpv6": "::/0"}
    assert bool(rule(INGRESS, props, [])) is (port in PRIVATE)


def test_messages_name_the_rules_that_open() -> None:
    rule = RULES["no-ssh-from-anywhere"]
    group = _inline(_tcp(22, "198.51.100.0/24"), _tcp(22, "0.0.0.0/1"), _tcp(22, "128.0.0.0/1"))
    (violation,) = rule(SECURITY_GROUP, group, [])
    assert violation.startswith(
        "ingress[1] + ingress[2] together open port 22 (SSH) to 0.0.0.0/0 (every IPv4 address"
    )


def _rule_resource(name: str, group: str, port: int, cidr: str) -> StackResource:
    return StackResource(
        INGRESS,
        name,
        {"securityGroupId": group, "ipProtocol": "tcp", "fromPort": port, "toPort": port,
         "cidrIpv4": cidr},
    )  # fmt: skip


def test_rules_of_one_group_add_up() -> None:
    """Each rule alone is narrow enough; two of one group together are a /7, the 256 /8s of
    the address space are the internet, and rules of different groups never add up."""
    ssh = STACK_RULES["no-ssh-from-anywhere-across-rules"]
    prosody = STACK_RULES["no-public-prosody-ports-across-rules"]
    pair = [
        _rule_resource("rule-a", "sg-1", 22, "10.0.0.0/8"),
        _rule_resource("rule-b", "sg-1", 22, "11.0.0.0/8"),
    ]
    assert all(RULES["no-ssh-from-anywhere"](r.type, r.props, []) == [] for r in pair)
    (violation,) = ssh(pair)
    assert "10.0.0.0/7" in violation
    assert "rule-a" in violation
    assert "rule-b" in violation
    apart = [pair[0], _rule_resource("rule-b", "sg-2", 22, "11.0.0.0/8")]
    assert ssh(apart) == []
    everything = [_rule_resource(f"r{i}", "sg-1", 5222, f"{i}.0.0.0/8") for i in range(256)]
    assert any("0.0.0.0/0" in v for v in prosody(everything))
    assert ssh(everything) == []
    # a rule that is public on its own is its resource rule's to report, once
    assert ssh([*pair, _rule_resource("rule-c", "sg-1", 22, "0.0.0.0/0")]) == [violation]
    inline = StackResource(
        SECURITY_GROUP, "group", {"id": "sg-1", "ingress": [_tcp(22, "10.0.0.0/8")]}
    )
    assert "10.0.0.0/7" in " ".join(ssh([inline, pair[1]]))


# -- the program's own stacks


@cache
def stack_resources(name: str) -> tuple[Registered, ...]:
    config = config_of(name)
    config["jitsi-xxl:admin_cidrs"] = '["198.51.100.0/24"]'
    return tuple(run_program(config, name).resources)


@pytest.mark.parametrize("rule_name", sorted(RULES))
@pytest.mark.parametrize("stack", STACK_NAMES)
def test_example_stack_complies(stack: str, rule_name: str) -> None:
    rule = RULES[rule_name]
    found = {
        f"{r.type} {r.name}": violations
        for r in stack_resources(stack)
        if (violations := rule(r.type, r.inputs, r.ignore_changes))
    }
    assert found == {}


@pytest.mark.parametrize("stack", STACK_NAMES)
def test_example_stack_complies_across_resources(stack: str) -> None:
    resources = [StackResource(r.type, r.name, r.inputs) for r in stack_resources(stack)]
    assert {name: rule(resources) for name, rule in STACK_RULES.items()} == {
        name: [] for name in STACK_RULES
    }


@pytest.mark.parametrize("stack", STACK_NAMES)
def test_the_credential_rule_reads_the_example_stacks_archives(stack: str) -> None:
    """The example stacks comply because the rule read every file, not because it saw none."""
    machines = [r for r in stack_resources(stack) if r.type in (INSTANCE, TEMPLATE, SERVER)]
    assert machines
    for machine in machines:
        files = user_data_files(machine.type, machine.inputs)
        unpacked = {f.path for f in files if f.carrier == ROOTFS_ARCHIVE}
        assert BOOTSTRAP in unpacked, machine.name
        assert len(unpacked) > 5, machine.name  # a bridge has the fewest


def test_hetzner_with_an_operators_certificate_complies() -> None:
    """The one private key Hetzner user data may hold is the operator's TLS key, where the
    program puts it (whether the rest complies is the example stacks' test)."""
    config = config_of("trial")
    config["jitsi-xxl:tls"] = '{"mode": "provided"}'
    config["jitsi-xxl:tls_certificate"] = (
        "-----BEGIN CERTIFICATE-----\nQ0VSVA\n-----END CERTIFICATE-----\n"
    )
    config["jitsi-xxl:tls_private_key"] = PEM_KEY
    rule = RULES["no-credentials-in-clear-user-data"]
    servers = [r for r in run_program(config, "trial").resources if r.type == SERVER]

    def holds_the_key(server: Registered) -> bool:
        return any(f.text == PEM_KEY for f in user_data_files(server.type, server.inputs))

    assert sum(map(holds_the_key, servers)) == 1
    keys = {s.name: [v for v in rule(s.type, s.inputs, []) if "private key" in v] for s in servers}
    assert keys == {s.name: [] for s in servers}


def test_the_pack_hands_every_rule_to_crossguard(monkeypatch: pytest.MonkeyPatch) -> None:
    packs: list[dict[str, Any]] = []
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: packs.append(kwargs))
    runpy.run_path(str(ROOT / "policy" / "__main__.py"))
    (pack,) = packs
    assert pack["enforcement_level"] == pulumi_policy.EnforcementLevel.MANDATORY
    policies = {p.name: p for p in pack["policies"]}
    assert set(policies) == set(RULES) | set(STACK_RULES)
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

    class Resource:
        def __init__(self, r: StackResource) -> None:
            self.resource_type, self.name, self.props = r.type, r.name, r.props

    class StackArgs:
        resources = (
            Resource(_rule_resource("rule-a", "sg-1", 22, "10.0.0.0/8")),
            Resource(_rule_resource("rule-b", "sg-1", 22, "11.0.0.0/8")),
        )

    reported.clear()
    policies["no-ssh-from-anywhere-across-rules"].validate(
        StackArgs(), lambda message, urn: reported.append(message)
    )
    assert len(reported) == 1
    assert "10.0.0.0/7" in reported[0]
