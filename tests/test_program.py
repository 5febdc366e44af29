"""The Pulumi program itself, under the SDK's mocks (no CLI, no cloud, no credentials).

One mocks class, `components.offline.mocks.OfflineMocks`, shared with `xxl plan`: it stands in for
the providers, fills their computed outputs with documentation addresses, and refuses any
invoke it does not know.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections import Counter
from dataclasses import fields
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pulumi
import pytest
import yaml

from components.cloud import deployment
from components.cloud.firewall import ANYWHERE
from components.cloud.outputs import ALL_OUTPUTS, SECRET_OUTPUTS
from components.cloud.stack_config import STAND_IN_API_TOKEN
from components.model import naming
from components.model.credentials import Credentials
from components.model.planner import plan
from components.model.settings import load_stack_file
from components.offline.mocks import (
    OfflineMocks,
    OfflineRun,
    Registered,
    Wiring,
    run_program,
    stack_config,
)
from components.rendering.bridge_files import bridge_bundle
from components.rendering.scaler_files import scaler_bundle
from components.rendering.signaling_files import signaling_bundle
from tests.conftest import ROOT
from tests.test_userdata import unpack

STACK_NAMES = ["aws-10k", "hetzner-10k", "trial"]


def config_of(name: str) -> dict[str, str]:
    doc = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{name}.yaml").read_text())
    return stack_config(doc, {})


@cache
def run(name: str) -> OfflineRun:
    return run_program(config_of(name), name)


def of_type(r: OfflineRun, typ: str) -> list[Registered]:
    return [x for x in r.resources if x.type == typ]


EXPECTED_COUNTS: dict[str, dict[str, int]] = {
    "aws-10k": {
        "aws:autoscaling/group:Group": 1,
        "aws:autoscaling/lifecycleHook:LifecycleHook": 1,
        "aws:autoscaling/policy:Policy": 1,
        "aws:ec2/eip:Eip": 1,
        "aws:ec2/eipAssociation:EipAssociation": 1,
        "aws:ec2/instance:Instance": 1,
        "aws:ec2/internetGateway:InternetGateway": 1,
        "aws:ec2/launchTemplate:LaunchTemplate": 1,
        "aws:ec2/routeTable:RouteTable": 1,
        "aws:ec2/routeTableAssociation:RouteTableAssociation": 2,
        "aws:ec2/securityGroup:SecurityGroup": 2,
        "aws:ec2/subnet:Subnet": 2,
        "aws:ec2/vpc:Vpc": 1,
        "aws:iam/instanceProfile:InstanceProfile": 2,
        "aws:iam/role:Role": 2,
        # Session Manager and own secrets for each role, the bridges' agent
        "aws:iam/rolePolicy:RolePolicy": 5,
        "aws:ssm/parameter:Parameter": 6,  # five for the signaling VM, the bridges' login
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": 4,
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": 9,
        "jitsi-xxl:bridges:AwsBridgePool": 1,
        "jitsi-xxl:network:AwsNetwork": 1,
        "jitsi-xxl:secrets:StackSecrets": 1,
        "jitsi-xxl:signaling:AwsSignaling": 1,
        "random:index/randomPassword:RandomPassword": 5,
    },
    "hetzner-10k": {
        "hcloud:index/firewall:Firewall": 3,  # signaling, bridges (by label), scaler
        "hcloud:index/network:Network": 1,
        "hcloud:index/networkSubnet:NetworkSubnet": 1,
        "hcloud:index/primaryIp:PrimaryIp": 1,
        # the signaling and scaler VMs: the bridges are the autoscaler's
        "hcloud:index/server:Server": 2,
        "jitsi-xxl:scaler:HetznerScaler": 1,
        "pulumi-python:dynamic:Resource": 1,  # the pool's sweep
        "hcloud:index/sshKey:SshKey": 1,  # generated: the stacks name no key
        "jitsi-xxl:access:RootKeys": 1,
        "jitsi-xxl:bridges:HetznerBridgePool": 1,
        "jitsi-xxl:network:HetznerNetwork": 1,
        "jitsi-xxl:secrets:StackSecrets": 1,
        "jitsi-xxl:signaling:HetznerSignaling": 1,
        "random:index/randomPassword:RandomPassword": 5,
        "tls:index/privateKey:PrivateKey": 1,
    },
    "trial": {
        "hcloud:index/firewall:Firewall": 3,
        "hcloud:index/network:Network": 1,
        "hcloud:index/networkSubnet:NetworkSubnet": 1,
        "hcloud:index/primaryIp:PrimaryIp": 1,
        "hcloud:index/server:Server": 2,
        "jitsi-xxl:scaler:HetznerScaler": 1,
        "pulumi-python:dynamic:Resource": 1,
        "hcloud:index/sshKey:SshKey": 1,  # generated: the stacks name no key
        "jitsi-xxl:access:RootKeys": 1,
        "jitsi-xxl:bridges:HetznerBridgePool": 1,
        "jitsi-xxl:network:HetznerNetwork": 1,
        "jitsi-xxl:secrets:StackSecrets": 1,
        "jitsi-xxl:signaling:HetznerSignaling": 1,
        "random:index/randomPassword:RandomPassword": 5,
        "tls:index/privateKey:PrivateKey": 1,
    },
}


@pytest.mark.parametrize("name", STACK_NAMES)
def test_resource_counts(name: str) -> None:
    r = run(name)
    assert dict(Counter(x.type for x in r.resources)) == EXPECTED_COUNTS[name]
    names = [(x.type, x.name) for x in r.resources]
    assert len(names) == len(set(names)), "the mock monitor does not catch duplicate URNs"


@pytest.mark.parametrize("name", STACK_NAMES)
def test_every_child_is_parented(name: str) -> None:
    for x in run(name).resources:
        if not x.type.startswith("jitsi-xxl:"):
            assert "jitsi-xxl:" in x.parent, f"{x.type} {x.name} has no component parent"


def _aws_rules(r: OfflineRun, role: str) -> set[tuple[Any, ...]]:
    """The ingress rules of the signaling VM's or the bridges' security group. The groups
    are the ones the instance and the launch template use, and a rule's group and source
    are found by id, never from a name."""
    w = Wiring(r.resources)
    (instance,) = of_type(r, "aws:ec2/instance:Instance")
    (template,) = of_type(r, "aws:ec2/launchTemplate:LaunchTemplate")
    (signaling,) = w.references(instance, "vpcSecurityGroupIds")
    (bridges,) = w.references(template, "vpcSecurityGroupIds")
    groups = {"signaling": signaling, "bridges": bridges}
    assert {g.type for g in groups.values()} == {"aws:ec2/securityGroup:SecurityGroup"}
    assert signaling is not bridges
    role_of = {g.id: name for name, g in groups.items()}
    out = set()
    for rule in of_type(r, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
        if w.resolve(rule.inputs["securityGroupId"]) is not groups[role]:
            continue
        i = rule.inputs
        source = i.get("cidrIpv4") or i.get("cidrIpv6")
        if ref := i.get("referencedSecurityGroupId"):
            peer = w.resolve(ref)
            assert peer is not None, f"{rule.name}: {ref} is no resource's id"
            source = "group:" + role_of[peer.id]
        out.add((i["ipProtocol"], int(i["fromPort"]), int(i["toPort"]), source))
    return out


def test_aws_ingress_rules_exactly() -> None:
    r = run("aws-10k")
    anywhere = {
        (p, port, port, src)
        # TURN over TLS comes in on 443 (nginx hands it to coturn): coturn's 5349 stays shut
        for p, port in (("tcp", 80), ("tcp", 443), ("udp", 3478))
        for src in ANYWHERE
    }
    assert _aws_rules(r, "signaling") == anywhere | {("tcp", 5222, 5222, "group:bridges")}
    assert _aws_rules(r, "bridges") == {("udp", 10000, 10000, src) for src in ANYWHERE}
    refs = [
        x
        for x in of_type(r, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if x.inputs.get("referencedSecurityGroupId")
    ]
    assert len(refs) == 1  # c2s 5222 from the bridges' group, and nothing else by reference


@pytest.mark.parametrize("name", ["hetzner-10k", "trial"])
def test_hetzner_firewall_rules_exactly(name: str) -> None:
    firewalls = {
        f.name.rsplit("-", 1)[-1]: f for f in of_type(run(name), "hcloud:index/firewall:Firewall")
    }

    def rules(role: str) -> set[tuple[str, str, str, tuple[str, ...]]]:
        return {
            (x["direction"], x["protocol"], x["port"], tuple(x["sourceIps"]))
            for x in firewalls[role].inputs["rules"]
        }

    web = {
        ("in", p, port, ANYWHERE) for p, port in (("tcp", "80"), ("tcp", "443"), ("udp", "3478"))
    }
    assert rules("signaling") == web
    assert rules("bridges") == {("in", "udp", "10000", ANYWHERE)}
    assert firewalls["bridges"].inputs["applyTos"] == [
        {"labelSelector": f"jitsi-xxl/role=jvb,jitsi-xxl/stack={name}"}
    ]
    for server in of_type(run(name), "hcloud:index/server:Server"):
        if server.name.endswith("-vm"):
            continue
        assert server.inputs["labels"] == {"jitsi-xxl/role": "jvb", "jitsi-xxl/stack": name}


def test_ssh_only_from_admin_networks() -> None:
    config = config_of("aws-10k")
    r = run_program(config, "aws-10k")
    assert not any(x.inputs.get("fromPort") == 22 for x in r.resources)
    config["jitsi-xxl:admin_cidrs"] = '["198.51.100.0/24"]'
    ssh = [x for x in run_program(config, "aws-10k").resources if x.inputs.get("fromPort") == 22]
    assert {x.inputs["cidrIpv4"] for x in ssh} == {"198.51.100.0/24"}
    assert len(ssh) == 2  # the signaling VM and the bridges


def test_imdsv2_and_encryption_everywhere() -> None:
    r = run("aws-10k")
    (instance,) = of_type(r, "aws:ec2/instance:Instance")
    assert instance.inputs["metadataOptions"]["httpTokens"] == "required"
    assert instance.inputs["rootBlockDevice"]["encrypted"] is True
    (template,) = of_type(r, "aws:ec2/launchTemplate:LaunchTemplate")
    assert template.inputs["metadataOptions"]["httpTokens"] == "required"
    assert template.inputs["metadataOptions"]["instanceMetadataTags"] == "enabled"
    for mapping in template.inputs["blockDeviceMappings"]:
        assert mapping["ebs"]["encrypted"] == "true"


def _mock_credentials(r: OfflineRun) -> Credentials:
    """The credentials the mocks' RandomPasswords produced, by the resource names."""
    results = {
        x.name: f"offline-{x.name}"
        for x in of_type(r, "random:index/randomPassword:RandomPassword")
    }
    return Credentials(
        **{
            f.name: next(v for k, v in results.items() if k.endswith(f.name.replace("_", "-")))
            for f in fields(Credentials)
        }
    )


@pytest.mark.parametrize("name", STACK_NAMES)
def test_user_data_is_the_render_and_secret(name: str) -> None:
    r = run(name)
    settings = load_stack_file(ROOT / "stacks" / f"Pulumi.{name}.yaml").settings
    the_plan = plan(settings)
    creds = _mock_credentials(r)
    signaling = signaling_bundle(settings, the_plan, creds, stack=name).user_data
    bridge = bridge_bundle(settings, the_plan, creds, stack=name).user_data
    if settings.cloud.value == "aws":
        (instance,) = of_type(r, "aws:ec2/instance:Instance")
        (template,) = of_type(r, "aws:ec2/launchTemplate:LaunchTemplate")
        assert (
            gzip.decompress(base64.b64decode(instance.inputs["userDataBase64"])).decode()
            == signaling
        )
        assert gzip.decompress(base64.b64decode(template.inputs["userData"])).decode() == bridge
        assert "userDataBase64" in instance.secret_inputs
        assert "userData" in template.secret_inputs
    else:
        servers = of_type(r, "hcloud:index/server:Server")
        vm = next(s for s in servers if s.name.endswith("-signaling-vm"))
        assert vm.inputs["userData"] == signaling
        assert "userData" in vm.secret_inputs
        # the bridges are the autoscaler's: their user data is in the scaler VM's template
        (scaler,) = [s for s in servers if s is not vm]
        want = scaler_bundle(
            settings, the_plan, creds, stack=name, api_token=STAND_IN_API_TOKEN
        ).user_data
        assert scaler.inputs["userData"] == want
        assert "userData" in scaler.secret_inputs
        assert bridge  # rendered all the same: `xxl render` and the goldens hold it


@pytest.mark.parametrize("name", STACK_NAMES)
def test_outputs_present_and_secret_ones_secret(name: str) -> None:
    outputs = run(name).outputs
    assert set(outputs) == set(ALL_OUTPUTS)
    for key, value in outputs.items():
        assert value.secret == (key in SECRET_OUTPUTS), key
    assert "s2sout_override" in outputs["s2s_config"].value
    cost = outputs["estimated_cost_per_hour"].value
    assert cost["total"] == pytest.approx(cost["compute"] + cost["egress"], abs=0.01)
    assert cost["egress"] > 0
    assert cost["prices_as_of"]


def test_asg_size_belongs_to_scaling_after_creation() -> None:
    r = run("aws-10k")
    (group,) = of_type(r, "aws:autoscaling/group:Group")
    assert "desiredCapacity" in group.ignore_changes
    assert (group.inputs["minSize"], group.inputs["desiredCapacity"], group.inputs["maxSize"]) == (
        51,
        51,
        77,
    )
    (hook,) = of_type(r, "aws:autoscaling/lifecycleHook:LifecycleHook")
    assert hook.inputs["lifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    assert hook.inputs["name"] == "jitsi-xxl-drain"
    (policy,) = of_type(r, "aws:autoscaling/policy:Policy")
    metric = policy.inputs["targetTrackingConfiguration"]["customizedMetricSpecification"]
    assert (metric["namespace"], metric["metricName"]) == ("JitsiXXL", "StressLevel")
    (instance,) = of_type(r, "aws:ec2/instance:Instance")
    assert "ami" in instance.ignore_changes  # unpinned image: found once, then kept


def test_event_window_schedules_and_cpu_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    # days before the window (the moment decides which actions are still to come)
    monkeypatch.setattr(deployment, "utc_now", lambda: datetime(2026, 12, 1, tzinfo=UTC))
    config = config_of("aws-10k")
    config["jitsi-xxl:event"] = '{"start": "2026-12-03T14:00:00Z", "end": "2026-12-03T18:00:00Z"}'
    config["jitsi-xxl:bridges"] = '{"scale_on": "cpu"}'
    r = run_program(config, "aws-10k")
    schedules = {
        s.name.rsplit("-", 1)[-1]: s.inputs for s in of_type(r, "aws:autoscaling/schedule:Schedule")
    }
    assert schedules["grow"]["startTime"] == "2026-12-03T13:30:00Z"
    assert schedules["grow"]["desiredCapacity"] == 51
    assert schedules["shrink"]["startTime"] == "2026-12-03T18:15:00Z"
    assert schedules["shrink"]["desiredCapacity"] == 0
    (policy,) = of_type(r, "aws:autoscaling/policy:Policy")
    spec = policy.inputs["targetTrackingConfiguration"]["predefinedMetricSpecification"]
    assert spec["predefinedMetricType"] == "ASGAverageCPUUtilization"


@pytest.mark.parametrize("name", ["hetzner-10k", "trial"])
def test_hetzner_pool_is_the_autoscalers_and_swept_last(name: str) -> None:
    """Pulumi makes no bridge; the sweep is ordered after the subnet (so it runs before the
    network goes) and the scaler VM after the sweep (so a destroy stops the autoscaler first);
    the scaler VM lets in nothing but SSH from the admin networks."""
    r = run(name)
    servers = of_type(r, "hcloud:index/server:Server")
    assert sorted(s.name.rsplit("-", 2)[-2] for s in servers) == ["scaler", "signaling"]
    assert not of_type(r, "hcloud:index/placementGroup:PlacementGroup")
    (sweep,) = of_type(r, "pulumi-python:dynamic:Resource")
    (subnet,) = of_type(r, "hcloud:index/networkSubnet:NetworkSubnet")
    (scaler,) = [s for s in servers if s.name.endswith("-scaler-vm")]
    assert subnet.urn in sweep.dependencies
    assert sweep.urn in scaler.dependencies
    assert sweep.inputs["selector"] == naming.label_selector(name, "jvb")
    firewalls = {f.name: f for f in of_type(r, "hcloud:index/firewall:Firewall")}
    scaler_firewall = firewalls[f"{naming.resource_prefix(name)}-net-scaler"]
    assert scaler_firewall.inputs.get("rules", []) == []  # the stacks name no admin network
    assert scaler_firewall.urn in scaler.dependencies


def test_dns_before_the_vm_boots() -> None:
    """The record is a dependency of the VM (by URN), and carries the VM's address."""
    config = config_of("hetzner-10k")
    config["jitsi-xxl:dns"] = '{"zone": "example.org"}'
    r = run_program(config, "hetzner-10k")
    w = Wiring(r.resources)
    (record,) = of_type(r, "hcloud:index/zoneRrset:ZoneRrset")
    assert (record.inputs["zone"], record.inputs["name"], record.inputs["type"]) == (
        "example.org",
        "live",
        "A",
    )
    (address,) = of_type(r, "hcloud:index/primaryIp:PrimaryIp")
    (vm,) = (
        s
        for s in of_type(r, "hcloud:index/server:Server")
        if address in w.references(s, "publicNets")
    )
    assert record in w.dependencies(vm)
    assert w.dependencies(record, "records") == [address]
    config = config_of("aws-10k")
    config["jitsi-xxl:dns"] = '{"zone": "Z0123456789"}'
    r = run_program(config, "aws-10k")
    w = Wiring(r.resources)
    (record53,) = of_type(r, "aws:route53/record:Record")
    (instance,) = of_type(r, "aws:ec2/instance:Instance")
    (eip,) = of_type(r, "aws:ec2/eip:Eip")
    assert record53 in w.dependencies(instance)
    assert w.dependencies(record53, "records") == [eip]
    assert record53.inputs["records"][0].startswith("203.0.113.")


def test_an_invalid_config_registers_nothing() -> None:
    config = config_of("trial")
    config["jitsi-xxl:audience"] = "lots"
    mocks = OfflineMocks()
    with pytest.raises(pulumi.RunError, match="jitsi-xxl:audience"):
        run_program(config, "trial", mocks=mocks)
    assert mocks.resources == []
    # and the same mocks do record resources when the config is good
    run_program(config_of("trial"), "trial", mocks=mocks)
    assert mocks.resources


def test_unknown_invokes_fail_loudly() -> None:
    args = pulumi.runtime.MockCallArgs(token="aws:ec2/getVpc:getVpc", args={}, provider="")
    with pytest.raises(NotImplementedError, match="getVpc"):
        OfflineMocks().call(args)


ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKpYh2cB0sCgWcRvVSF6zbDQEX0kPcTmL2o4ZLpi9sGq ops"


@pytest.mark.parametrize("name", ["hetzner-10k", "trial"])
def test_no_hetzner_server_is_made_without_a_key(name: str) -> None:
    """Hetzner mails a root password for a server without one: every server gets the stack's
    generated key (by id), whose private half is a secret output."""
    r = run(name)
    w = Wiring(r.resources)
    (generated,) = of_type(r, "hcloud:index/sshKey:SshKey")
    (private,) = of_type(r, "tls:index/privateKey:PrivateKey")
    assert private.inputs["algorithm"] == "ED25519"
    assert private.urn in generated.property_dependencies["publicKey"]
    for server in of_type(r, "hcloud:index/server:Server"):
        assert w.references(server, "sshKeys") == [generated], server.name
    key = r.outputs["ssh_private_key"]
    assert key.secret
    assert key.value


def test_given_keys_are_used_and_none_is_generated() -> None:
    config = config_of("hetzner-10k")
    config["jitsi-xxl:hetzner"] = json.dumps({"ssh_keys": ["ops laptop", ED25519]})
    r = run_program(config, "hetzner-10k")
    assert not of_type(r, "tls:index/privateKey:PrivateKey")
    (registered,) = of_type(r, "hcloud:index/sshKey:SshKey")
    assert registered.inputs["publicKey"] == ED25519
    for server in of_type(r, "hcloud:index/server:Server"):
        assert server.inputs["sshKeys"] == ["ops laptop", registered.id]
    assert r.outputs["ssh_private_key"].value is None


def test_hetzner_needs_the_autoscalers_token_to_deploy() -> None:
    """`pulumi up` without it stops before registering anything, naming the key; a preview
    goes on with a stand-in and says so; a value that is no token is refused without being
    printed."""
    config = config_of("trial")
    del config["jitsi-xxl:hetzner_api_token"]
    mocks = OfflineMocks()
    with pytest.raises(pulumi.RunError, match=r"jitsi-xxl:hetzner_api_token: required on"):
        run_program(config, "trial", mocks=mocks)
    assert mocks.resources == []
    previewed = run_program(config, "trial", preview=True)
    (scaler,) = [s for s in of_type(previewed, "hcloud:index/server:Server")
                 if s.name.endswith("-scaler-vm")]  # fmt: skip
    assert (
        f"HETZNER_API_TOKEN={STAND_IN_API_TOKEN}"
        in unpack(scaler.inputs["userData"])["/etc/jitsi/xxl/secrets.env"]
    )
    wrong = "not-a-token-but-a-secret-all-the-same"
    with pytest.raises(Exception, match="not a Hetzner Cloud API token") as raised:
        run_program({**config, "jitsi-xxl:hetzner_api_token": wrong}, "trial")
    assert wrong not in str(raised.value)
