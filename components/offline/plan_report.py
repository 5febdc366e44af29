"""What `xxl plan` prints: the topology, the resources the program registers, the outputs
(secrets masked), capacity and cost, as text, markdown (a pull-request comment) or JSON."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Final

from components.cloud.outputs import ALL_OUTPUTS
from components.offline.mocks import OfflineRun, Registered
from components.rendering.scaler_files import describe
from components.rendering.userdata import user_data_from_aws_base64

MASK: Final = "[secret]"

# Inputs worth a column in the resource table, by resource type (the rest is in JSON).
KEY_PROPERTIES: Final = {
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("cidrBlock", "availabilityZone"),
    "aws:ec2/instance:Instance": ("instanceType", "privateIp", "ami"),
    "aws:ec2/launchTemplate:LaunchTemplate": ("instanceType", "imageId"),
    "aws:autoscaling/group:Group": ("minSize", "desiredCapacity", "maxSize"),
    "aws:autoscaling/lifecycleHook:LifecycleHook": ("lifecycleTransition", "heartbeatTimeout"),
    "aws:autoscaling/policy:Policy": ("policyType",),
    "aws:autoscaling/schedule:Schedule": ("startTime", "minSize", "desiredCapacity"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": (
        "ipProtocol", "fromPort", "cidrIpv4", "cidrIpv6", "referencedSecurityGroupId",
    ),
    "aws:route53/record:Record": ("name", "type"),
    "hcloud:index/server:Server": ("serverType", "location"),
    "hcloud:index/network:Network": ("ipRange",),
    "hcloud:index/networkSubnet:NetworkSubnet": ("ipRange", "networkZone"),
    "hcloud:index/placementGroup:PlacementGroup": ("type",),
    "hcloud:index/primaryIp:PrimaryIp": ("type", "autoDelete"),
    "hcloud:index/zoneRrset:ZoneRrset": ("name", "type"),
    "random:index/randomPassword:RandomPassword": ("length",),
}  # fmt: skip


def _plain(value: Any) -> Any:
    # the mocks hand numbers back as floats
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _properties(r: Registered) -> dict[str, Any]:
    keys = KEY_PROPERTIES.get(r.type, ())
    return {
        k: MASK if k in r.secret_inputs else _plain(r.inputs[k])
        for k in keys
        if r.inputs.get(k) is not None
    }


def user_data(run: OfflineRun) -> dict[str, str]:
    """The cloud-config text the program passed each VM: `signaling`, and `bridge` (AWS's
    launch template) or `scaler` (Hetzner's scaler VM, which makes the bridges' own)."""
    by_type = {r.type: r for r in run.resources}
    if "aws:ec2/instance:Instance" in by_type:
        # AWS gets the text gzip-compressed and base64-encoded
        instance = by_type["aws:ec2/instance:Instance"].inputs["userDataBase64"]
        template = by_type["aws:ec2/launchTemplate:LaunchTemplate"].inputs["userData"]
        return {
            "signaling": user_data_from_aws_base64(instance),
            "bridge": user_data_from_aws_base64(template),
        }
    servers = [r for r in run.resources if r.type == "hcloud:index/server:Server"]
    signaling = next(r for r in servers if r.name.endswith("-signaling-vm"))
    scaler = next(r for r in servers if r.name.endswith("-scaler-vm"))
    return {"signaling": signaling.inputs["userData"], "scaler": scaler.inputs["userData"]}


def outputs(run: OfflineRun) -> dict[str, Any]:
    """Stack outputs in their declared order, secret ones masked."""
    return {
        key: MASK if run.outputs[key].secret else run.outputs[key].value
        for key in ALL_OUTPUTS
        if key in run.outputs
    }


def document(topology: dict[str, Any], run: OfflineRun) -> dict[str, Any]:
    """The whole plan as plain data (`--format json`); no secret values."""
    return {
        **topology,
        # registration order depends on timing: list by name, which follows the components
        "resources": [
            {"type": r.type, "name": r.name, "properties": _properties(r)}
            for r in sorted(run.resources, key=lambda r: (r.name, r.type))
        ],
        "resource_counts": dict(sorted(Counter(r.type for r in run.resources).items())),
        "outputs": outputs(run),
    }


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def resources_text(doc: dict[str, Any]) -> str:
    lines = ["resources (the program under Pulumi's mocks):"]
    width = max(len(r["type"]) for r in doc["resources"])
    for r in doc["resources"]:
        props = " ".join(f"{k}={_value(v)}" for k, v in r["properties"].items())
        lines.append(f"  {r['type']:<{width}}  {r['name']}  {props}".rstrip())
    lines.append(f"  {len(doc['resources'])} resources")
    return "\n".join(lines) + "\n"


def outputs_text(doc: dict[str, Any]) -> str:
    lines = ["outputs:"]
    for key, value in doc["outputs"].items():
        text = _value(value)
        if "\n" in text:  # a config file: its size here, its text in `xxl render`'s outputs/
            text = f"({text.count(chr(10))} lines of configuration)"
        lines.append(f"  {key}: {text}")
    cost = doc["outputs"].get("estimated_cost_per_hour")
    if isinstance(cost, dict):
        lines.append(
            f"cost: about {cost['total']:,.2f} {cost['currency']}/h ({cost['compute']:,.2f} "
            f"compute + {cost['egress']:,.2f} egress; {cost['assumptions']}; prices of "
            f"{cost['prices_as_of']})"
        )
    return "\n".join(lines) + "\n"


def mermaid(doc: dict[str, Any]) -> str:
    """The topology as a mermaid flowchart."""
    nodes = doc["visitors"]["nodes"]
    b = doc["bridges"]
    shown = nodes if len(nodes) <= 4 else [nodes[0], nodes[1], nodes[-1]]  # noqa: PLR2004
    lines = [
        "flowchart LR",
        "  viewers((viewers)) -->|HTTPS 443| nginx",
        f'  subgraph signaling["signaling VM: {doc["signaling_instance_type"]}"]',
        "    nginx --> main[main prosody]",
        "    jicofo --> main",
    ]
    for n in shown:
        lines.append(
            f'    nginx -->|vnode={n["name"]}| {n["name"]}["{n["name"]} :{n["http_port"]}"]'
        )
        lines.append(f"    main <-.->|s2s :{n['s2s_port']}| {n['name']}")
    if len(shown) < len(nodes):
        lines.append(f'    more["... {len(nodes) - len(shown)} more visitor nodes"]')
    lines += [
        "  end",
        f'  subgraph pool["bridges: {b["min"]}..{b["max"]} x {doc["bridge_instance_type"]}"]',
        "    jvb[videobridge]",
        "  end",
        "  viewers -->|UDP 10000| jvb",
        "  jvb -->|c2s 5222, private network| main",
        *(
            ['  scaler["scaler VM: autoscaler"] -.->|stress, add, drain| pool']
            if "autoscaler" in b
            else []
        ),
    ]
    return "\n".join(lines) + "\n"


def markdown(doc: dict[str, Any]) -> str:
    """A pull-request comment: summary, diagram, resource counts, outputs."""
    c, b = doc["capacity"], doc["bridges"]
    out = [
        f"### jitsi-xxl plan: `{doc['stack']}` ({doc['cloud']}, {doc['domain']})",
        "",
        "| | |",
        "|---|---|",
        f"| audience | {doc['audience']:,} viewers, main room {doc['main_participants']} |",
        f"| visitor nodes | {len(doc['visitors']['nodes'])}, "
        f"{doc['visitors']['planned_per_node']:,} planned per node |",
        f"| bridges | {b['needed']} needed; min {b['min']} / desired {b['desired']} / "
        f"max {b['max']} |",
        f"| capacity | {c['viewers']:,} viewers ({c['binding']} bind first) |",
        *([f"| pool policy | {describe(b['autoscaler'])} |"] if "autoscaler" in b else []),
    ]
    cost = doc["outputs"].get("estimated_cost_per_hour")
    if isinstance(cost, dict):
        out.append(f"| cost | about {cost['total']:,.2f} {cost['currency']}/h |")
    out += ["", "```mermaid", mermaid(doc).rstrip("\n"), "```", "", "| resource type | count |"]
    out.append("|---|---|")
    out += [f"| `{t}` | {n} |" for t, n in doc["resource_counts"].items()]
    out += ["", "| output | value |", "|---|---|"]
    for key, value in doc["outputs"].items():
        text = _value(value).replace("\n", " ").replace("|", "\\|")
        out.append(f"| `{key}` | {text[:120] + '...' if len(text) > 120 else text} |")  # noqa: PLR2004
    out += ["", *[f"> warning: {w}" for w in doc["warnings"]]]
    return "\n".join(out).rstrip("\n") + "\n"
