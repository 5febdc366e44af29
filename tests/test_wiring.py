"""The program's wiring, followed through ids and dependencies rather than names.

The mocks give every resource an id of its own and record its URN, parent and dependencies,
so an id found in an input names exactly one resource. The checks below are plain
functions of the recorded resources that return the problems they find; each is also fed a
mis-wired program or a mutated recording, to show that it notices.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, Final

import pulumi
import pulumi_aws
import pulumi_hcloud
import pytest

from components.cloud.aws import stack as stack_aws
from components.cloud.firewall import ANYWHERE, Peer, Rule, bridge_rules, signaling_rules
from components.model.settings import load_stack_file
from components.offline.mocks import OfflineRun, Registered, Wiring, run_program
from tests.conftest import ROOT
from tests.test_program import STACK_NAMES, config_of, run

Problems = list[str]
Check = Callable[[list[Registered]], Problems]

INSTANCE: Final = "aws:ec2/instance:Instance"
TEMPLATE: Final = "aws:ec2/launchTemplate:LaunchTemplate"
GROUP: Final = "aws:ec2/securityGroup:SecurityGroup"
INGRESS: Final = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS: Final = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
SUBNET: Final = "aws:ec2/subnet:Subnet"
ASG: Final = "aws:autoscaling/group:Group"
PROFILE: Final = "aws:iam/instanceProfile:InstanceProfile"
ROLE: Final = "aws:iam/role:Role"
ROUTE53: Final = "aws:route53/record:Record"
EIP: Final = "aws:ec2/eip:Eip"
SERVER: Final = "hcloud:index/server:Server"
FIREWALL: Final = "hcloud:index/firewall:Firewall"
NETWORK: Final = "hcloud:index/network:Network"
HC_SUBNET: Final = "hcloud:index/networkSubnet:NetworkSubnet"
PRIMARY_IP: Final = "hcloud:index/primaryIp:PrimaryIp"
SWEEP: Final = "pulumi-python:dynamic:Resource"
ZONE_RRSET: Final = "hcloud:index/zoneRrset:ZoneRrset"
DNS_RECORDS: Final = (ROUTE53, ZONE_RRSET)
STACK: Final = "pulumi:pulumi:Stack"

# Which component owns each resource type. Types used by more than one component (roles,
# instance profiles, servers, the DNS record) are decided by what uses them: see
# `expected_owner`.
OWNER: Final = {
    **dict.fromkeys(
        (
            "aws:ec2/vpc:Vpc",
            "aws:ec2/internetGateway:InternetGateway",
            "aws:ec2/routeTable:RouteTable",
            "aws:ec2/routeTableAssociation:RouteTableAssociation",
            SUBNET,
            GROUP,
            INGRESS,
            EGRESS,
        ),
        "jitsi-xxl:network:AwsNetwork",
    ),
    **dict.fromkeys(
        (EIP, "aws:ec2/eipAssociation:EipAssociation", INSTANCE),
        "jitsi-xxl:signaling:AwsSignaling",
    ),
    **dict.fromkeys(
        (
            TEMPLATE,
            ASG,
            "aws:autoscaling/lifecycleHook:LifecycleHook",
            "aws:autoscaling/policy:Policy",
            "aws:autoscaling/schedule:Schedule",
        ),
        "jitsi-xxl:bridges:AwsBridgePool",
    ),
    **dict.fromkeys((NETWORK, HC_SUBNET, FIREWALL), "jitsi-xxl:network:HetznerNetwork"),
    PRIMARY_IP: "jitsi-xxl:signaling:HetznerSignaling",
    SWEEP: "jitsi-xxl:bridges:HetznerBridgePool",
    ROUTE53: "jitsi-xxl:dns:DnsRecord",
    ZONE_RRSET: "jitsi-xxl:dns:DnsRecord",
    "random:index/randomPassword:RandomPassword": "jitsi-xxl:secrets:StackSecrets",
    **dict.fromkeys(
        ("hcloud:index/sshKey:SshKey", "tls:index/privateKey:PrivateKey"),
        "jitsi-xxl:access:RootKeys",
    ),
    **dict.fromkeys(
        (
            "jitsi-xxl:network:AwsNetwork",
            "jitsi-xxl:signaling:AwsSignaling",
            "jitsi-xxl:bridges:AwsBridgePool",
            "jitsi-xxl:network:HetznerNetwork",
            "jitsi-xxl:signaling:HetznerSignaling",
            "jitsi-xxl:bridges:HetznerBridgePool",
            "jitsi-xxl:scaler:HetznerScaler",
            "jitsi-xxl:secrets:StackSecrets",
            "jitsi-xxl:access:RootKeys",
        ),
        STACK,
    ),
}


def urn_type(urn: str) -> str:
    """The type a URN names (`...::parent$child-type::name` -> `child-type`)."""
    return urn.split("::")[2].rsplit("$", maxsplit=1)[-1] if urn.count("::") >= 3 else ""


def _of(resources: Sequence[Registered], typ: str) -> list[Registered]:
    return [r for r in resources if r.type == typ]


def _label(r: Registered | None) -> str:
    return "nothing" if r is None else f"{r.type} {r.name}"


def _single(w: Wiring, r: Registered, key: str, typ: str, problems: Problems) -> Registered | None:
    """The one resource of `typ` whose id is in input `key` of `r`, or a problem."""
    found = w.references(r, key)
    if [x.type for x in found] != [typ]:
        problems.append(f"{_label(r)}: {key} should be the id of one {typ}, is {_names(found)}")
        return None
    return found[0]


def _names(rs: Sequence[Registered]) -> list[str]:
    return [_label(r) for r in rs]


def _by_dependency(w: Wiring, r: Registered, key: str, typ: str) -> list[Registered]:
    """The resources of `typ` whose outputs feed input `key` of `r`."""
    return [x for x in w.dependencies(r, key) if x.type == typ]


# --- AWS ---------------------------------------------------------------------------------

ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
PARAMETER = "aws:ssm/parameter:Parameter"


def aws_groups(w: Wiring, problems: Problems) -> dict[Peer, Registered]:
    """The signaling VM's and the bridges' security groups, as the VM and the launch
    template use them (by id)."""
    groups: dict[Peer, Registered] = {}
    for peer, typ in ((Peer.signaling, INSTANCE), (Peer.bridges, TEMPLATE)):
        users = _of(w.resources, typ)
        if len(users) != 1:
            problems.append(f"expected one {typ}, found {len(users)}")
            continue
        if group := _single(w, users[0], "vpcSecurityGroupIds", GROUP, problems):
            groups[peer] = group
    if len(groups) == len(Peer) and groups[Peer.signaling] is groups[Peer.bridges]:
        problems.append("the signaling VM and the bridges share one security group")
    return groups


def security_group_problems(
    resources: list[Registered], expected: dict[Peer, Sequence[Rule]]
) -> Problems:
    """Every ingress rule sits on the group its table names, and a rule whose source is a
    peer references that peer's group by id (the c2s rule: the bridges' group)."""
    w = Wiring(resources)
    problems: Problems = []
    groups = aws_groups(w, problems)
    if problems:
        return problems
    role_of = {g.id: peer for peer, g in groups.items()}
    found: dict[Peer, set[tuple[str, int, str]]] = {peer: set() for peer in groups}
    for rule in _of(resources, INGRESS) + _of(resources, EGRESS):
        owner = w.resolve(rule.inputs.get("securityGroupId"))
        if owner is None or owner.id not in role_of:
            problems.append(f"{_label(rule)}: securityGroupId is {_label(owner)}")
            continue
        if rule.type == EGRESS:
            continue
        i = rule.inputs
        source = i.get("cidrIpv4") or i.get("cidrIpv6")
        if ref := i.get("referencedSecurityGroupId"):
            peer_group = w.resolve(ref)
            if peer_group is None or peer_group.id not in role_of:
                problems.append(f"{_label(rule)}: references {_label(peer_group)}")
                continue
            source = f"group:{role_of[peer_group.id]}"
            if peer_group.urn not in rule.property_dependencies.get(
                "referencedSecurityGroupId", ()
            ):
                problems.append(f"{_label(rule)}: does not depend on {_label(peer_group)}")
        found[role_of[owner.id]].add((i["ipProtocol"], int(i["fromPort"]), str(source)))
    for peer, rules in expected.items():
        want = {
            (rule.protocol, rule.port, src)
            for rule in rules
            for src in (rule.sources or (f"group:{rule.peer}",))
        }
        if found[peer] != want:
            problems.append(
                f"{peer} group: missing {sorted(want - found[peer])}, "
                f"unexpected {sorted(found[peer] - want)}"
            )
    return problems


def aws_network_problems(resources: list[Registered]) -> Problems:
    """The VPC's parts point at the VPC, the routes at the gateway, every subnet has the
    route table, the VM sits in one subnet and the bridges' group spans them all."""
    w = Wiring(resources)
    problems: Problems = []
    vpcs = _of(resources, "aws:ec2/vpc:Vpc")
    subnets = _of(resources, SUBNET)
    if vpcs:
        (vpc,) = vpcs
        for r in [
            *_of(resources, GROUP),
            *subnets,
            *_of(resources, "aws:ec2/internetGateway:InternetGateway"),
        ]:
            if w.resolve(r.inputs.get("vpcId")) is not vpc:
                problems.append(f"{_label(r)}: vpcId is not {_label(vpc)}")
        (routes,) = _of(resources, "aws:ec2/routeTable:RouteTable")
        gateways = w.references(routes, "routes")
        if [g.type for g in gateways] != ["aws:ec2/internetGateway:InternetGateway"]:
            problems.append(f"{_label(routes)}: default route via {_names(gateways)}")
        associated = []
        for a in _of(resources, "aws:ec2/routeTableAssociation:RouteTableAssociation"):
            if w.resolve(a.inputs.get("routeTableId")) is not routes:
                problems.append(f"{_label(a)}: routeTableId is not {_label(routes)}")
            associated.append(w.resolve(a.inputs.get("subnetId")))
        if sorted(_names([s for s in associated if s])) != sorted(_names(subnets)):
            problems.append(f"route table associations cover {_names([*filter(None, associated)])}")
        for instance in _of(resources, INSTANCE):
            _single(w, instance, "subnetId", SUBNET, problems)
        for asg in _of(resources, ASG):
            zones = w.references(asg, "vpcZoneIdentifiers")
            if sorted(_names(zones)) != sorted(_names(subnets)):
                problems.append(f"{_label(asg)}: spans {_names(zones)}")
    return problems


def aws_machine_problems(resources: list[Registered]) -> Problems:
    """The VM and the bridges each get their own instance profile and role; the address
    goes to the VM; the group launches the template; the hook, policy and schedules act on
    the group; the agent's policy is on the bridges' role."""
    w = Wiring(resources)
    problems: Problems = []
    roles: dict[str, Registered] = {}
    for user in _of(resources, INSTANCE) + _of(resources, TEMPLATE):
        profiles = _by_dependency(w, user, "iamInstanceProfile", PROFILE)
        if len(profiles) != 1:
            problems.append(f"{_label(user)}: instance profile {_names(profiles)}")
            continue
        role = _by_dependency(w, profiles[0], "role", ROLE)
        if len(role) != 1:
            problems.append(f"{_label(profiles[0])}: role {_names(role)}")
            continue
        roles[user.type] = role[0]
    if len(roles) == 2 and roles[INSTANCE] is roles[TEMPLATE]:
        problems.append("the signaling VM and the bridges share one role")
    for assoc in _of(resources, "aws:ec2/eipAssociation:EipAssociation"):
        _single(w, assoc, "instanceId", INSTANCE, problems)
        if len(_by_dependency(w, assoc, "allocationId", EIP)) != 1:
            problems.append(f"{_label(assoc)}: allocationId is not the Elastic IP's")
    for asg in _of(resources, ASG):
        _single(w, asg, "launchTemplate", TEMPLATE, problems)
    groups = _of(resources, ASG)
    for typ in (
        "aws:autoscaling/lifecycleHook:LifecycleHook",
        "aws:autoscaling/policy:Policy",
        "aws:autoscaling/schedule:Schedule",
    ):
        for r in _of(resources, typ):
            if _by_dependency(w, r, "autoscalingGroupName", ASG) != groups:
                problems.append(f"{_label(r)}: autoscalingGroupName is not the group's")
    return problems + iam_problems(w, roles)


def iam_problems(w: Wiring, roles: dict[str, Registered]) -> Problems:
    """The agent's policy is on the bridges' role; each role has one Session Manager policy and
    one policy reading its own parameters (of its folder), and its VMs boot after those."""
    resources = w.resources
    problems: Problems = []
    folders = {INSTANCE: "/signaling/", TEMPLATE: "/jvb/"}
    for policy in _of(resources, ROLE_POLICY):
        role = w.resolve(policy.inputs.get("role"))
        text = str(policy.inputs.get("policy", ""))
        if "CompleteLifecycleAction" in text and role is not roles.get(TEMPLATE):
            problems.append(f"{_label(policy)}: the agent's policy is not on the bridges' role")
        parameters = _by_dependency(w, policy, "policy", PARAMETER)
        if "ssm:GetParameter" in text:
            user = next((u for u, r in roles.items() if r is role), None)
            wrong = [x for x in parameters if folders.get(user or "", "?") not in x.inputs["name"]]
            if not parameters or wrong:
                problems.append(f"{_label(policy)}: reads {_names(wrong or parameters)}")
    for user, role in roles.items():
        policies = [x for x in _of(resources, ROLE_POLICY) if w.resolve(x.inputs["role"]) is role]
        for need in ("ssmmessages:OpenDataChannel", "ssm:GetParameter"):
            if sum(need in str(x.inputs["policy"]) for x in policies) != 1:
                problems.append(f"{_label(role)} ({user}): {need} granted by {len(policies)}")
    for vm in _of(resources, INSTANCE) + _of(resources, ASG):
        own = folders[INSTANCE if vm.type == INSTANCE else TEMPLATE]
        params = [x for x in _of(resources, PARAMETER) if own in x.inputs["name"]]
        missing = [x for x in params if x not in w.dependencies(vm)]
        if not params or missing:
            problems.append(f"{_label(vm)}: boots before its secrets {_names(missing)}")
    return problems


# --- Hetzner -----------------------------------------------------------------------------


def signaling_server(w: Wiring, problems: Problems) -> Registered | None:
    """The server that carries the primary IP (by id)."""
    holders = [
        s
        for s in _of(w.resources, SERVER)
        if any(x.type == PRIMARY_IP for x in w.references(s, "publicNets"))
    ]
    if len(holders) != 1:
        problems.append(f"the primary IP should be on one server, is on {_names(holders)}")
        return None
    return holders[0]


def _selects(selector: str, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, _, v in (t.partition("=") for t in selector.split(",")))


def _sweeps(w: Wiring, selector: str, subnet: Registered, problems: Problems) -> list[Registered]:
    """The sweep of the bridges' label, once, ordered after the subnet."""
    sweeps = _of(w.resources, SWEEP)
    if [x.inputs.get("selector") for x in sweeps] != [selector]:
        problems.append(f"the sweeps {_names(sweeps)} do not sweep {selector} once")
    for sweep in sweeps:
        if subnet not in w.dependencies(sweep):
            problems.append(f"{_label(sweep)}: does not wait for {_label(subnet)}")
    return sweeps


def hetzner_problems(resources: list[Registered]) -> Problems:
    """Two servers: the signaling VM (the primary IP) and the scaler VM. Each has its own
    firewall (by id) and neither is selected by the bridges' firewall, which applies by the
    label of the bridges the autoscaler makes; both are on the network (by id) and wait for
    its subnet. The sweep of the bridges' label waits for the subnet (so it runs before the
    network goes) and the scaler VM waits for the sweep (so a destroy stops it first)."""
    w = Wiring(resources)
    problems: Problems = []
    vm = signaling_server(w, problems)
    (network,) = _of(resources, NETWORK)
    (subnet,) = _of(resources, HC_SUBNET)
    if w.resolve(subnet.inputs.get("networkId")) is not network:
        problems.append(f"{_label(subnet)}: networkId is not {_label(network)}")
    by_selector = [f for f in _of(resources, FIREWALL) if f.inputs.get("applyTos")]
    if len(by_selector) != 1:
        return [*problems, f"expected one firewall applied by label, found {len(by_selector)}"]
    bridges_fw = by_selector[0]
    selector = bridges_fw.inputs["applyTos"][0]["labelSelector"]
    sweeps = _sweeps(w, selector, subnet, problems)
    firewalls: list[Registered] = []
    for server in _of(resources, SERVER):
        nets = w.references(server, "networks")
        if nets != [network]:
            problems.append(f"{_label(server)}: networks {_names(nets)}")
        if subnet not in w.dependencies(server):
            problems.append(f"{_label(server)}: does not wait for {_label(subnet)}")
        firewall = _single(w, server, "firewallIds", FIREWALL, problems)
        if firewall is bridges_fw:
            problems.append(f"{_label(server)}: has the bridges' firewall")
        if firewall is not None:
            if firewall in firewalls:
                problems.append(f"{_label(server)}: shares {_label(firewall)}")
            firewalls.append(firewall)
        if _selects(selector, server.inputs.get("labels", {})):
            problems.append(f"{_label(server)}: selected by the bridges' firewall")
        if server is not vm and not any(x in w.dependencies(server) for x in sweeps):
            problems.append(f"{_label(server)}: the scaler VM does not wait for the sweep")
    return problems


# --- both clouds -------------------------------------------------------------------------


def boot_order_problems(resources: list[Registered]) -> Problems:
    """The DNS record points at the VM's public address and is a dependency of the VM, so
    the name resolves before the VM asks Let's Encrypt for a certificate."""
    w = Wiring(resources)
    problems: Problems = []
    records = [r for r in resources if r.type in DNS_RECORDS]
    if not records:
        return problems
    if _of(resources, INSTANCE):
        vms, address_type = _of(resources, INSTANCE), EIP
    else:
        vm = signaling_server(w, problems)
        vms, address_type = ([vm] if vm else []), PRIMARY_IP
    for record in records:
        addresses = _by_dependency(w, record, "records", address_type)
        if len(addresses) != 1:
            problems.append(f"{_label(record)}: records come from {_names(addresses)}")
        for vm in vms:
            if record not in w.dependencies(vm):
                problems.append(f"{_label(vm)}: does not depend on {_label(record)}")
    return problems


def expected_owner(w: Wiring, r: Registered) -> str | None:
    """The component type that should own `r`: from `OWNER`, or for a shared type from the
    resource that uses it."""
    if r.type in OWNER:
        return OWNER[r.type]
    if r.type == "jitsi-xxl:dns:DnsRecord":  # the record of the VM's address
        aws = bool(_of(w.resources, INSTANCE))
        return OWNER[EIP] if aws else OWNER[PRIMARY_IP]
    if r.type == SERVER:
        vm = signaling_server(w, [])
        return OWNER[PRIMARY_IP] if r is vm else "jitsi-xxl:scaler:HetznerScaler"
    users: list[Registered] = []
    if r.type == PROFILE:
        users = [
            x for x in w.resources if r.urn in x.property_dependencies.get("iamInstanceProfile", ())
        ]
    elif r.type == ROLE:
        users = [
            x
            for x in w.resources
            if x.type == PROFILE and r.urn in x.property_dependencies.get("role", ())
        ]
    elif r.type == ROLE_POLICY:
        users = _by_dependency(w, r, "role", ROLE)
    elif r.type == PARAMETER:
        users = [x for x in w.resources if r.urn in x.property_dependencies.get("policy", ())]
    owners = {expected_owner(w, u) for u in users}
    return owners.pop() if len(owners) == 1 else None


def parent_problems(resources: list[Registered]) -> Problems:
    """Each resource's parent is the component that should own it."""
    w = Wiring(resources)
    problems: Problems = []
    for r in resources:
        want = expected_owner(w, r)
        got = urn_type(r.parent)
        if want is None:
            problems.append(f"{_label(r)}: no known owner (parent {got or 'none'})")
        elif got != want:
            problems.append(f"{_label(r)}: parent is {got or 'none'}, should be {want}")
    return problems


def expected_rules(name: str) -> dict[Peer, Sequence[Rule]]:
    settings = load_stack_file(ROOT / "stacks" / f"Pulumi.{name}.yaml").settings
    return {Peer.signaling: signaling_rules(settings), Peer.bridges: bridge_rules(settings)}


@cache
def run_with_dns(name: str) -> OfflineRun:
    config = config_of(name)
    zone = "Z0123456789" if name.startswith("aws") else "example.org"
    config["jitsi-xxl:dns"] = f'{{"zone": "{zone}"}}'
    return run_program(config, name)


AWS_CHECKS: Final[tuple[Check, ...]] = (
    aws_network_problems,
    aws_machine_problems,
    boot_order_problems,
    parent_problems,
)
HETZNER_CHECKS: Final[tuple[Check, ...]] = (hetzner_problems, boot_order_problems, parent_problems)


def all_problems(name: str, r: OfflineRun) -> Problems:
    if name.startswith("aws"):
        problems = security_group_problems(r.resources, expected_rules(name))
        return problems + [p for check in AWS_CHECKS for p in check(r.resources)]
    return [p for check in HETZNER_CHECKS for p in check(r.resources)]


# --- the program as it is ----------------------------------------------------------------


@pytest.mark.parametrize("name", STACK_NAMES)
def test_ids_name_one_resource_each(name: str) -> None:
    resources = run(name).resources
    ids = [r.id for r in resources]
    assert all(ids)
    assert len(set(ids)) == len(ids)
    assert all(r.urn for r in resources)
    assert len({r.urn for r in resources}) == len(resources)


@pytest.mark.parametrize("name", STACK_NAMES)
@pytest.mark.parametrize("dns", [False, True], ids=["no-dns", "dns"])
def test_the_program_is_wired(name: str, *, dns: bool) -> None:
    r = run_with_dns(name) if dns else run(name)
    assert any(x.type in DNS_RECORDS for x in r.resources) == dns
    assert all_problems(name, r) == []


def test_c2s_comes_from_the_bridges_group_by_id() -> None:
    w = Wiring(run("aws-10k").resources)
    problems: Problems = []
    groups = aws_groups(w, problems)
    assert not problems
    c2s = [
        x
        for x in _of(w.resources, INGRESS)
        if w.resolve(x.inputs["securityGroupId"]) is groups[Peer.signaling]
        and x.inputs.get("referencedSecurityGroupId")
    ]
    assert [x.inputs["fromPort"] for x in c2s] == [5222]
    assert w.resolve(c2s[0].inputs["referencedSecurityGroupId"]) is groups[Peer.bridges]


@pytest.mark.parametrize("name", ["aws-10k", "hetzner-10k"])
def test_the_dns_record_is_a_dependency_of_the_vm(name: str) -> None:
    resources = run_with_dns(name).resources
    w = Wiring(resources)
    problems: Problems = []
    (record,) = (x for x in resources if x.type in DNS_RECORDS)
    vm = _of(resources, INSTANCE)[0] if name.startswith("aws") else signaling_server(w, problems)
    assert vm is not None
    assert not problems
    assert record in w.dependencies(vm)
    # through `depends_on`, not through an input: no input of the VM comes from the record
    assert not any(record.urn in deps for deps in vm.property_dependencies.values())


# --- the checks notice a wrong wiring: a mis-wired program ---------------------------------


def _c2s_from_the_signaling_group(settings: Any) -> tuple[Rule, ...]:
    return tuple(
        dataclasses.replace(rule, peer=Peer.signaling) if rule.peer is Peer.bridges else rule
        for rule in signaling_rules(settings)
    )


def test_c2s_rule_on_the_wrong_group_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # the network wires the c2s rule to the signaling VM's own group; the rule tables the
    # check compares with are the real ones
    monkeypatch.setattr(stack_aws, "signaling_rules", _c2s_from_the_signaling_group)
    r = run_program(config_of("aws-10k"), "aws-10k")
    problems = security_group_problems(r.resources, expected_rules("aws-10k"))
    assert problems == [
        "signaling group: missing [('tcp', 5222, 'group:bridges')], "
        "unexpected [('tcp', 5222, 'group:signaling')]"
    ]


def _without_depends_on(real: Any) -> Any:
    def make(name: str, args: Any, opts: pulumi.ResourceOptions | None = None) -> Any:
        if opts is not None and opts.depends_on:
            opts = copy.copy(opts)
            opts.depends_on = None
        return real(name, args, opts=opts)

    return make


@pytest.mark.parametrize(
    ("name", "module", "cls"),
    [("aws-10k", pulumi_aws.ec2, "Instance"), ("hetzner-10k", pulumi_hcloud, "Server")],
)
def test_vm_without_its_dns_dependency_is_caught(
    monkeypatch: pytest.MonkeyPatch, name: str, module: Any, cls: str
) -> None:
    monkeypatch.setattr(module, cls, _without_depends_on(getattr(module, cls)))
    config = config_of(name)
    config["jitsi-xxl:dns"] = '{"zone": "example.org"}'
    problems = boot_order_problems(run_program(config, name).resources)
    assert len(problems) == 1
    assert "does not depend on" in problems[0]
    assert "signaling-dns-a" in problems[0]


# --- the checks notice a wrong wiring: a mutated recording ---------------------------------


def _mutated(resources: list[Registered], edit: Callable[[Wiring], None]) -> list[Registered]:
    copied = copy.deepcopy(resources)
    edit(Wiring(copied))
    return copied


def _c2s_rule(w: Wiring) -> Registered:
    (rule,) = (x for x in _of(w.resources, INGRESS) if x.inputs.get("referencedSecurityGroupId"))
    return rule


def _point_c2s_at_signaling(w: Wiring) -> None:
    rule = _c2s_rule(w)
    rule.inputs["referencedSecurityGroupId"] = rule.inputs["securityGroupId"]


def _point_c2s_at_a_subnet(w: Wiring) -> None:
    _c2s_rule(w).inputs["referencedSecurityGroupId"] = _of(w.resources, SUBNET)[0].id


def _drop_dns_dependency(w: Wiring) -> None:
    (record,) = (x for x in w.resources if x.type in DNS_RECORDS)
    for vm in _of(w.resources, INSTANCE) + _of(w.resources, SERVER):
        vm.dependencies = vm.dependencies - {record.urn}


def _boot_bridges_before_their_secrets(w: Wiring) -> None:
    params = {x.urn for x in _of(w.resources, PARAMETER) if "/jvb/" in x.inputs["name"]}
    for asg in _of(w.resources, ASG):
        asg.dependencies = asg.dependencies - params


def _signaling_secrets_readable_by_bridges(w: Wiring) -> None:
    """The signaling role's secrets policy feeds from the bridges' parameters instead."""
    ours = next(x for x in _of(w.resources, ROLE_POLICY) if x.name.endswith("signaling-secrets"))
    theirs = {x.urn for x in _of(w.resources, PARAMETER) if "/jvb/" in x.inputs["name"]}
    ours.property_dependencies = {**ours.property_dependencies, "policy": frozenset(theirs)}


def _reparent_vm_to_network(w: Wiring) -> None:
    (network,) = (x for x in w.resources if x.type.startswith("jitsi-xxl:network:"))
    vm = next(iter(_of(w.resources, INSTANCE)), None) or signaling_server(w, [])
    assert vm is not None
    vm.parent = network.urn


def _swap_signaling_firewall(w: Wiring) -> None:
    vm = signaling_server(w, [])
    (bridges_fw,) = (f for f in _of(w.resources, FIREWALL) if f.inputs.get("applyTos"))
    assert vm is not None
    vm.inputs["firewallIds"] = [float(bridges_fw.id)]


def _scaler_off_the_network(w: Wiring) -> None:
    vm = signaling_server(w, [])
    scaler = next(s for s in _of(w.resources, SERVER) if s is not vm)
    scaler.inputs["networks"] = [{"networkId": float(_of(w.resources, FIREWALL)[0].id)}]


def _scaler_before_the_sweep(w: Wiring) -> None:
    vm = signaling_server(w, [])
    scaler = next(s for s in _of(w.resources, SERVER) if s is not vm)
    (sweep,) = _of(w.resources, SWEEP)
    scaler.dependencies = scaler.dependencies - {sweep.urn}


MUTATIONS: Final = [
    (
        "aws-10k",
        _point_c2s_at_signaling,
        "signaling group: missing [('tcp', 5222, 'group:bridges')]",
    ),
    ("aws-10k", _point_c2s_at_a_subnet, "references aws:ec2/subnet:Subnet"),
    ("aws-10k", _drop_dns_dependency, "signaling-vm: does not depend on"),
    ("hetzner-10k", _drop_dns_dependency, "signaling-vm: does not depend on"),
    ("aws-10k", _reparent_vm_to_network, "parent is jitsi-xxl:network:AwsNetwork"),
    ("aws-10k", _boot_bridges_before_their_secrets, "jvb-asg: boots before its secrets"),
    ("aws-10k", _signaling_secrets_readable_by_bridges, "signaling-secrets: reads"),
    ("hetzner-10k", _reparent_vm_to_network, "parent is jitsi-xxl:network:HetznerNetwork"),
    ("hetzner-10k", _swap_signaling_firewall, "has the bridges' firewall"),
    ("trial", _scaler_off_the_network, "networks ['hcloud:index/firewall:Firewall"),
    ("hetzner-10k", _scaler_before_the_sweep, "the scaler VM does not wait for the sweep"),
]


@pytest.mark.parametrize(
    ("name", "edit", "expected"), MUTATIONS, ids=[f"{n}-{e.__name__}" for n, e, _ in MUTATIONS]
)
def test_a_mutated_recording_is_reported(
    name: str, edit: Callable[[Wiring], None], expected: str
) -> None:
    original = run_with_dns(name)
    assert all_problems(name, original) == []
    mutated = OfflineRun(_mutated(original.resources, edit), original.outputs)
    problems = all_problems(name, mutated)
    assert any(expected in p for p in problems), problems


def test_references_resolve_numbers_and_text() -> None:
    resources = run("trial").resources
    w = Wiring(resources)
    network = _of(resources, NETWORK)[0]
    assert w.resolve(float(network.id)) is network
    assert w.resolve(int(network.id)) is network
    assert w.resolve(network.id) is network
    assert w.resolve(5222) is None
    assert w.resolve(True) is None
    assert all(w.resolve(src) is None for src in ANYWHERE)
