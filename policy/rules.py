"""The rules of the jitsi-xxl policy pack, as plain functions.

A resource rule takes a resource's type, its input properties (as CrossGuard hands them
over, Pulumi's wire names) and its ignore_changes option, and returns the violations it finds
(empty when the resource complies). A stack rule takes every resource of the stack, for what
only shows across resources. `__main__.py` wraps both for CrossGuard; the tests call them
directly.

No rule catches an exception it does not raise itself: a value CrossGuard does not know yet
(during a preview) raises out of the property access, and CrossGuard reports the rule as not
run for that resource instead of passing it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import gzip
import io
import ipaddress
import lzma
import re
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import yaml

from components.model.credentials import PLACEHOLDER as SECRET_PLACEHOLDER
from components.model.naming import LABEL_ROLE, ROLE_SCALER
from components.model.planner import MAX_NODES
from components.model.ports import (
    HTTP_PORT,
    HTTPS_PORT,
    JVB_MEDIA_PORT,
    STANDARD_PORTS,
    TURN_PORT,
    TURNS_PORT,
    node_ports,
)
from components.model.pricing import AWS_TYPES, HETZNER_SCALER_TYPE, HETZNER_TYPES
from components.model.settings import WIDEST_SOURCE_PREFIX
from components.rendering.secrets_delivery import SECRETS_FILE

Rule = Callable[[str, Mapping[str, Any], Sequence[str]], list[str]]

INSTANCE: Final = "aws:ec2/instance:Instance"
TEMPLATE: Final = "aws:ec2/launchTemplate:LaunchTemplate"
GROUP: Final = "aws:autoscaling/group:Group"
INGRESS: Final = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SECURITY_GROUP: Final = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE: Final = "aws:ec2/securityGroupRule:SecurityGroupRule"
VOLUME: Final = "aws:ebs/volume:Volume"
SERVER: Final = "hcloud:index/server:Server"
FIREWALL: Final = "hcloud:index/firewall:Firewall"

SSH_PORT: Final = 22
# What the world is meant to reach: the web app, TURN and the bridges' media. The policy
# states it itself rather than reading the firewall table, which it is there to check.
CLIENT_PORTS: Final = frozenset({HTTP_PORT, HTTPS_PORT, TURN_PORT, TURNS_PORT, JVB_MEDIA_PORT})
# Every other port the deployment knows of (prosody's, the visitor nodes' up to the largest
# plan, the REST APIs, the colibri WebSockets behind nginx) serves the VMs themselves. A port
# added to the table is private until someone decides otherwise here; SSH has its own rule.
PRIVATE_PORTS: Final = frozenset(
    (STANDARD_PORTS - CLIENT_PORTS - {SSH_PORT})
    | {port for index in range(1, MAX_NODES + 1) for port in node_ports(index)}
)

# The widest source a rule may name, by IP version: the same bound as `admin_cidrs`.
WIDEST_PREFIX: Final = WIDEST_SOURCE_PREFIX

_ALL_PROTOCOLS: Final = frozenset({"-1", "all"})
_PORT_PROTOCOLS: Final = frozenset({"tcp", "udp", "sctp", "6", "17", "132"})
_ANY_PORT: Final = (0, 65535)


@dataclass(frozen=True)
class StackResource:
    """One resource of the stack, as a stack rule sees it."""

    type: str
    name: str
    props: Mapping[str, Any]


StackRule = Callable[[Sequence[StackResource]], list[str]]


# -- addresses and ports


@dataclass(frozen=True)
class Opening:
    """One inbound permission: ports `low`..`high` open to `sources` (address ranges as
    written). `where` names it in messages: a property path or a resource."""

    where: str
    low: int
    high: int
    sources: tuple[str, ...]


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_N = TypeVar("_N", ipaddress.IPv4Network, ipaddress.IPv6Network)
# Past this many, a message counts the ranges that add up to a public one instead of listing them.
_LISTED_PARTS: Final = 4


def _network(source: str) -> Network | None:
    try:
        return ipaddress.ip_network(source.strip(), strict=False)
    except ValueError:
        return None


def _wide(family: Sequence[_N]) -> list[tuple[tuple[_N, ...], str]]:
    """The merged networks of one IP version wider than allowed: the sources that make up each
    (those inside another source add nothing), and a description."""
    found = []
    for net in ipaddress.collapse_addresses(family):
        if net.prefixlen >= WIDEST_PREFIX[net.version]:
            continue
        inside = {n for n in family if n.subnet_of(net)}
        parts = sorted(n for n in inside if not any(n != m and n.subnet_of(m) for m in inside))
        what = (
            f"every IPv{net.version} address"
            if net.prefixlen == 0
            else f"wider than a /{WIDEST_PREFIX[net.version]}"
        )
        if len(parts) > _LISTED_PARTS:
            what += f" = {len(parts)} ranges together"
        elif parts != [net]:
            what += " = " + " + ".join(map(str, parts))
        found.append((tuple(parts), f"{net} ({what})"))
    return found


@dataclass(frozen=True)
class _Public:
    """The public part of some sources: described, and the sources that make it up."""

    text: str
    parts: frozenset[Network | str]

    def names(self, source: str) -> bool:
        """Whether `source` is one of them."""
        network = _network(source)
        return (source if network is None else network) in self.parts


# every guarded port of a rule asks about the same sources
@functools.lru_cache(maxsize=1024)
def _public(sources: tuple[str, ...]) -> _Public | None:
    """The public part of `sources`, or None when there is none.

    Sources are merged first: 0.0.0.0/1 and 128.0.0.0/1 are 0.0.0.0/0, two adjacent /8s a /7.
    A source that is no address range at all cannot be shown to be private."""
    unreadable = sorted({s for s in sources if _network(s) is None})
    networks = [n for s in sources if (n := _network(s)) is not None]
    wide: list[tuple[tuple[Network, ...], str]] = [
        *_wide([n for n in networks if isinstance(n, ipaddress.IPv4Network)]),
        *_wide([n for n in networks if isinstance(n, ipaddress.IPv6Network)]),
    ]
    texts = [f"{s!r} (not an address range)" for s in unreadable] + [t for _, t in wide]
    if not texts:
        return None
    parts: set[Network | str] = {n for ns, _ in wide for n in ns}
    return _Public(", ".join(texts), frozenset(parts | set(unreadable)))


def _number(value: Any, default: int) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def _aws_ports(protocol: Any, low: Any, high: Any) -> tuple[int, int] | None:
    """The ports an AWS rule opens; None for protocols without ports (ICMP and the like)."""
    name = str(protocol).lower()
    if name in _ALL_PROTOCOLS:
        # AWS ignores the ports of an all-protocols rule (0/0 or -1/-1): it opens all of them
        return _ANY_PORT
    if name not in _PORT_PROTOCOLS:
        return None
    return _number(low, _ANY_PORT[0]), _number(high, _ANY_PORT[1])


def _hetzner_ports(protocol: Any, port: Any) -> tuple[int, int] | None:
    """Hetzner ports are text: "22", "1000-2000" or "any"; ICMP, ESP and GRE have none."""
    if str(protocol or "tcp").lower() not in _PORT_PROTOCOLS:
        return None
    text = str(port or "any").strip()
    if text == "any":
        return _ANY_PORT
    low, _, high = text.partition("-")
    first = _number(low, _ANY_PORT[0])
    return first, (_number(high, _ANY_PORT[1]) if high else first)


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    return tuple(str(v) for v in value or () if v)


def _aws_opening(where: str, rule: Mapping[str, Any], protocol_key: str) -> Opening | None:
    """The opening of one AWS rule; `where` names it, or else the properties with its sources."""
    ports = _aws_ports(rule.get(protocol_key), rule.get("fromPort"), rule.get("toPort"))
    keys = [k for k in ("cidrIpv4", "cidrIpv6", "cidrBlocks", "ipv6CidrBlocks") if rule.get(k)]
    sources = tuple(s for key in keys for s in _strings(rule.get(key)))
    if not ports or not sources:
        return None
    return Opening(where or " and ".join(keys), *ports, sources)


def openings(resource_type: str, props: Mapping[str, Any]) -> list[Opening]:
    """Every inbound permission of a security group, one of its rules, or a firewall that
    names address ranges (rules naming another group or a prefix list open to those only)."""
    found: list[Opening | None] = []
    if resource_type == INGRESS:
        found.append(_aws_opening("", props, "ipProtocol"))
    elif resource_type == SECURITY_GROUP_RULE and props.get("type") == "ingress":
        found.append(_aws_opening("", props, "protocol"))
    elif resource_type == SECURITY_GROUP:
        for i, rule in enumerate(props.get("ingress") or []):
            found.append(_aws_opening(f"ingress[{i}]", rule, "protocol"))
    elif resource_type == FIREWALL:
        for i, rule in enumerate(props.get("rules") or []):
            ports = _hetzner_ports(rule.get("protocol"), rule.get("port"))
            sources = _strings(rule.get("sourceIps"))
            if rule.get("direction", "in") == "in" and ports and sources:
                found.append(Opening(f"rules[{i}]", *ports, sources))
    return [o for o in found if o is not None]


def _ranges(ports: Iterable[int]) -> str:
    """52221, 52222, 52223 -> "52221-52223"."""
    spans: list[list[int]] = []
    for port in sorted(ports):
        if spans and port == spans[-1][1] + 1:
            spans[-1][1] = port
        else:
            spans.append([port, port])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _exposed(
    found: Sequence[Opening], guarded: Iterable[int]
) -> list[tuple[tuple[str, ...], str, str]]:
    """(openings, ports, public sources) for the `guarded` ports that `found` open to the
    public, alone or together: one entry per distinct cause."""
    causes: dict[tuple[tuple[str, ...], str], list[int]] = {}
    for port in sorted(guarded):
        hits = [o for o in found if o.low <= port <= o.high]
        public = _public(tuple(s for o in hits for s in o.sources))
        if public is not None:
            where = tuple(o.where for o in hits if any(public.names(s) for s in o.sources))
            causes.setdefault((where, public.text), []).append(port)
    return [(where, _ranges(ports), text) for (where, text), ports in causes.items()]


def _open(where: tuple[str, ...], ports: str) -> str:
    verb = f"{where[0]} opens" if len(where) == 1 else f"{' + '.join(where)} together open"
    return f"{verb} port {ports}" if ports.isdigit() else f"{verb} ports {ports}"


_SOURCES_ALLOWED: Final = (
    f"allowed: sources no wider than /{WIDEST_PREFIX[4]} (IPv4) or /{WIDEST_PREFIX[6]} (IPv6), "
    "alone or together"
)


def _ssh_messages(found: Sequence[Opening]) -> list[str]:
    return [
        f"{_open(where, ports)} (SSH) to {public}; SSH is for admin networks only, "
        + _SOURCES_ALLOWED
        for where, ports, public in _exposed(found, [SSH_PORT])
    ]


def _private_messages(found: Sequence[Opening]) -> list[str]:
    return [
        f"{_open(where, ports)} (prosody, the visitor nodes, REST APIs and the VMs' other own "
        f"services) to {public}; only {_ranges(CLIENT_PORTS)} are public, for "
        "the others " + _SOURCES_ALLOWED
        for where, ports, public in _exposed(found, PRIVATE_PORTS)
    ]


def no_ssh_from_anywhere(
    resource_type: str, props: Mapping[str, Any], _: Sequence[str]
) -> list[str]:
    """SSH (22/tcp) is never open to the internet, however the ranges are split."""
    return _ssh_messages(openings(resource_type, props))


def no_public_prosody_ports(
    resource_type: str, props: Mapping[str, Any], _: Sequence[str]
) -> list[str]:
    """Prosody's, the visitor nodes' and the REST ports, and every other port but the clients',
    stay private."""
    return _private_messages(openings(resource_type, props))


def _by_group(resources: Sequence[StackResource]) -> dict[str, list[Opening]]:
    """The openings of separate rule resources, by the security group they belong to. A group's
    own inline rules join them when its properties carry its id."""
    groups: dict[str, list[Opening]] = {}
    for r in resources:
        if r.type in (INGRESS, SECURITY_GROUP_RULE):
            group = str(r.props.get("securityGroupId") or "")
        elif r.type == SECURITY_GROUP:
            group = str(r.props.get("id") or "")
        else:
            continue
        if group:
            groups.setdefault(group, []).extend(
                Opening(f"{r.name} {o.where}", o.low, o.high, o.sources)
                for o in openings(r.type, r.props)
            )
    return groups


def _only_together(found: Sequence[Opening], ports: Iterable[int]) -> list[Opening]:
    """The openings that are not public on their own for `ports`: the resource rules report
    those already, and once is enough."""
    return [o for o in found if not _exposed([o], ports)]


def ssh_across_rules(resources: Sequence[StackResource]) -> list[str]:
    """SSH is not open to the internet through several rules of one security group together."""
    return [
        message
        for found in _by_group(resources).values()
        for message in _ssh_messages(_only_together(found, [SSH_PORT]))
    ]


def private_ports_across_rules(resources: Sequence[StackResource]) -> list[str]:
    """The private ports are not open to the internet through several rules of one security
    group together."""
    return [
        message
        for found in _by_group(resources).values()
        for message in _private_messages(_only_together(found, PRIVATE_PORTS))
    ]


# -- machines and disks


def imdsv2_required(resource_type: str, props: Mapping[str, Any], _: Sequence[str]) -> list[str]:
    """Instances and launch templates require IMDSv2 tokens with a response hop limit of 1.

    A hop limit above 1 lets the token response reach a container behind the VM's bridge
    network, and with it the instance role's credentials."""
    if resource_type not in (INSTANCE, TEMPLATE):
        return []
    options = props.get("metadataOptions") or {}
    if options.get("httpEndpoint") == "disabled":
        return []
    found = []
    tokens = options.get("httpTokens")
    if tokens != "required":
        now = "not set" if tokens is None else f"{tokens!r}"
        found.append(f"metadataOptions.httpTokens is {now}; allowed: 'required' (IMDSv2)")
    hops = options.get("httpPutResponseHopLimit")
    if hops is None:
        found.append(
            "metadataOptions.httpPutResponseHopLimit is not set, which leaves it to the AMI "
            "(2 on some); allowed: 1"
        )
    elif _number(hops, 0) != 1:
        found.append(f"metadataOptions.httpPutResponseHopLimit is {hops!r}; allowed: 1")
    return found


def _true(value: Any) -> bool:
    """Launch templates carry `encrypted` as text, instances and volumes as a boolean."""
    return value is True or str(value).lower() == "true"


def encrypted_volumes(resource_type: str, props: Mapping[str, Any], _: Sequence[str]) -> list[str]:
    """Every disk is encrypted."""
    found = []
    if resource_type == INSTANCE:
        if not _true((props.get("rootBlockDevice") or {}).get("encrypted")):
            found.append("rootBlockDevice.encrypted is not true; allowed: true")
        for i, disk in enumerate(props.get("ebsBlockDevices") or []):
            if not _true(disk.get("encrypted")):
                found.append(
                    f"ebsBlockDevices[{i}] ({disk.get('deviceName')}).encrypted is not true; "
                    "allowed: true"
                )
    elif resource_type == TEMPLATE:
        mappings = list(enumerate(props.get("blockDeviceMappings") or []))
        # instance store (virtualName) and suppressed devices (noDevice) are no EBS volumes
        ebs = [(i, m) for i, m in mappings if not m.get("virtualName") and not m.get("noDevice")]
        if not ebs:
            found.append(
                "blockDeviceMappings names no EBS volume, which leaves the root volume's "
                "encryption to the AMI; allowed: a mapping with ebs.encrypted true"
            )
        for i, m in ebs:
            if not _true((m.get("ebs") or {}).get("encrypted")):
                found.append(
                    f"blockDeviceMappings[{i}] ({m.get('deviceName')}).ebs.encrypted is not "
                    "true; allowed: true"
                )
    elif resource_type == VOLUME and not _true(props.get("encrypted")):
        found.append("encrypted is not true; allowed: true")
    return found


# -- user data

# AWS: config files hold placeholders, filled at boot from SSM Parameter Store; the user data
# holds no secret at all. Hetzner Cloud has no secret store: there the values travel in one
# file, secrets.env, readable through the Hetzner API by the project's members and, on the VM,
# from the metadata address. The rule accepts that file and the operator's TLS key where the
# bootstrap takes it from, and holds every other file to the AWS contract: a value anywhere
# else (a config file, a script, the cloud-config) is one copy more than the design needs, and
# a private key anywhere else is no key the program ever sends.
# the program's own placeholder and secrets file (one definition, in the program)
PLACEHOLDER: Final = SECRET_PLACEHOLDER
SECRETS_ENV: Final = SECRETS_FILE
# where the bootstrap takes an operator's certificate and key from (tls.mode provided)
TLS_DIR: Final = "/etc/jitsi/xxl/tls/"

_PEM_PRIVATE_KEY: Final = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
# A setting whose name ends in one of these holds a credential; `pkey`, `ssl_certificate_key`
# and `TLS_KEY` name files, `muc_password_whitelist` a list of users.
_NAME: Final = (
    r"(?<![\w.-])(?P<name>[\w.-]*?(?:password|passwd|passphrase|secret|token|"
    r"private[_-]?key|api[_-]?key|access[_-]?key|secret[_-]?key))"
)
# HOCON, Lua, JSON, YAML, Python, shell: `name = "v"`, `"name": "v"`, `NAME='v'`.
_QUOTED: Final = re.compile(
    _NAME + r"""["']?\s*[=:]\s*(?P<quote>["'])(?P<value>(?:(?!(?P=quote)).)*)(?P=quote)""",
    re.IGNORECASE | re.MULTILINE,
)
# shell, env files, coturn, ini: `NAME=v`, no blank around "=".
_BARE: Final = re.compile(_NAME + r"=(?P<value>[^\s\"';#]*)", re.IGNORECASE | re.MULTILINE)
# HOCON and ini without quotes: `password = v` alone on its line. (`name: v` is YAML or code
# more often than a setting; the cloud-config's own YAML is read as a document instead.)
_SPACED: Final = re.compile(
    _NAME + r"[ \t]*=[ \t]*(?P<value>[\w+/@%!~^-]+)[ \t]*(?:[#;].*)?$",
    re.IGNORECASE | re.MULTILINE,
)
_PATH: Final = re.compile(r"(?:/[\w.@-]+){2,}")
_NOT_VALUES: Final = frozenset({"true", "false", "yes", "no", "on", "off", "nil", "null", "none"})
_XZ: Final = b"\xfd7zXZ\x00"
_GZIP: Final = b"\x1f\x8b"
# Far more than any user data a cloud accepts unpacks to; a bomb stops here.
_MAX_BYTES: Final = 64 << 20
_MAX_DEPTH: Final = 4


class UnreadableUserDataError(ValueError):
    """User data the rule cannot take apart, so cannot vouch for."""


@dataclass(frozen=True)
class UserDataFile:
    """One file that user data delivers (or a piece of the cloud-config itself), as text.

    `path` is where it lands on the VM; `carrier` what brings it (an archive, the user data)."""

    path: str
    carrier: str
    text: str


def _is_value(value: str) -> bool:
    """Whether a setting's value is a credential itself, rather than a stand-in for one: a
    placeholder, a variable or substitution (`$X`, `${?X}`, `$(cmd)`), a boolean, nothing, or
    the path of the file that holds it."""
    value = value.strip()
    return not (
        not value
        or PLACEHOLDER.fullmatch(value)
        or value.startswith("$")
        or _PATH.fullmatch(value)
        or value.lower() in _NOT_VALUES
    )


def _is_python(f: UserDataFile) -> bool:
    return f.path.endswith(".py") or bool(re.match(r"#!.*python", f.text))


def _assignments(f: UserDataFile) -> Iterator[tuple[int, str]]:
    """(line, setting name) of every credential set to a value in `f`."""
    # Python passes values by keyword (`token=token`) and from expressions: only its quoted
    # literals are values.
    patterns = (_QUOTED,) if _is_python(f) else (_QUOTED, _BARE, _SPACED)
    seen = set()
    for pattern in patterns:
        for m in pattern.finditer(f.text):
            line = f.text.count("\n", 0, m.start()) + 1
            if _is_value(m.group("value")) and (line, m.group("name")) not in seen:
                seen.add((line, m.group("name")))
                yield line, m.group("name")


def _unpack(data: bytes, magic: bytes) -> bytes:
    try:
        if magic == _GZIP:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
                out = stream.read(_MAX_BYTES + 1)
        else:
            xz = lzma.LZMADecompressor()
            out = xz.decompress(data, max_length=_MAX_BYTES + 1)
            if not xz.eof and len(out) <= _MAX_BYTES:
                raise UnreadableUserDataError("an xz stream ends early")
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:
        kind = "gzip" if magic == _GZIP else "xz"
        raise UnreadableUserDataError(f"a {kind} stream is damaged ({e})") from e
    if len(out) > _MAX_BYTES:
        raise UnreadableUserDataError(f"something unpacks to more than {_MAX_BYTES >> 20} MiB")
    return out


def _expand(path: str, carrier: str, data: bytes, depth: int = 0) -> Iterator[UserDataFile]:
    """The file `data`, or, when it is a (compressed) tar archive, every file in it."""
    if depth > _MAX_DEPTH:
        raise UnreadableUserDataError(f"{path}: archives nested deeper than {_MAX_DEPTH}")
    for magic in (_GZIP, _XZ):
        if data.startswith(magic):
            data = _unpack(data, magic)
            break
    if data[257:262] != b"ustar":
        # binary files are searched as far as they are text: keys and settings are
        yield UserDataFile(path, carrier, data.decode(errors="replace"))
        return
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                stream = tar.extractfile(member) if member.isfile() else None
                if stream is not None:
                    inner = "/" + member.name.removeprefix("./").lstrip("/")
                    yield from _expand(inner, path, stream.read(), depth + 1)
    except tarfile.TarError as e:
        raise UnreadableUserDataError(f"{path}: a damaged tar archive ({e})") from e


def _leaves(node: Any, where: str, seen: set[int]) -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) of every scalar of a YAML document, the key empty in lists; an alias
    is followed once, so that an alias bomb costs no more than its text."""
    if id(node) in seen:
        return
    seen.add(id(node))
    items = node.items() if isinstance(node, Mapping) else enumerate(node)
    for key, value in items:
        path = f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}".lstrip(".")
        if isinstance(value, Mapping | list):
            yield from _leaves(value, path, seen)
        else:
            yield path, "" if isinstance(key, int) else str(key), value


def _write_file(i: int, entry: Any) -> Iterator[UserDataFile]:
    if not isinstance(entry, Mapping):
        raise UnreadableUserDataError(f"write_files[{i}] is not a mapping")
    path = str(entry.get("path") or f"write_files[{i}]")
    content = entry.get("content") or ""
    data = content if isinstance(content, bytes) else str(content).encode()
    if any(e in str(entry.get("encoding") or "").lower() for e in ("b64", "base64")):
        try:
            data = base64.b64decode(b"".join(data.split()), validate=True)
        except binascii.Error as e:
            raise UnreadableUserDataError(f"write_files[{i}] is not base64 ({e})") from e
    yield from _expand(path, "user data", data)


def _cloud_config(text: str) -> Iterator[UserDataFile]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "a syntax error"
        raise UnreadableUserDataError(f"the cloud-config is no YAML: {problem}{at}") from e
    if doc is None:
        return
    if not isinstance(doc, Mapping):
        raise UnreadableUserDataError("the cloud-config is not a mapping")
    for i, entry in enumerate(doc.get("write_files") or []):
        yield from _write_file(i, entry)
    rest = {k: v for k, v in doc.items() if k != "write_files"}
    for path, key, value in _leaves(rest, "", set()):
        where = f"cloud-config {path}"
        if isinstance(value, str):
            # a command or a script (`runcmd`, `bootcmd`) may set or hold one itself
            yield UserDataFile(where, "user data", value)
        if key and isinstance(value, str):
            # a setting of its own (`password: x`), as one line the patterns read; quotes and
            # line breaks go, since they only frame the value
            text = re.sub(r"[\"'\n]", " ", value)
            yield UserDataFile(where, "user data", f'{key}: "{text}"')


def _user_data(resource_type: str, props: Mapping[str, Any]) -> bytes | None:
    """The bytes the VM receives as user data, or None when it receives none."""
    if resource_type == TEMPLATE:
        plain, encoded = None, props.get("userData")
    elif resource_type == INSTANCE:
        plain, encoded = props.get("userData"), props.get("userDataBase64")
    else:
        plain, encoded = props.get("userData"), None
    if plain:
        return str(plain).encode()
    if not encoded:
        return None
    try:
        return base64.b64decode("".join(str(encoded).split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise UnreadableUserDataError(f"it is not base64 ({e})") from e


def user_data_files(resource_type: str, props: Mapping[str, Any]) -> tuple[UserDataFile, ...]:
    """Every file the user data of an instance, a launch template or a server delivers, and
    the cloud-config's own settings; raises UnreadableUserDataError for what it cannot read."""
    raw = _user_data(resource_type, props)
    if raw is None:
        return ()
    if raw.startswith(_GZIP):
        raw = _unpack(raw, _GZIP)
    try:
        text = raw.decode()
    except UnicodeDecodeError as e:
        raise UnreadableUserDataError("it is no UTF-8 text") from e
    if text.startswith("#cloud-config"):
        return tuple(_cloud_config(text))
    if text.startswith("#!"):
        return (UserDataFile("user data script", "user data", text),)
    raise UnreadableUserDataError("it is neither a #cloud-config document nor a script")


def no_credentials_in_clear_user_data(
    resource_type: str, props: Mapping[str, Any], _: Sequence[str]
) -> list[str]:
    """User data holds no credential: it is readable through the cloud's API and from the
    instance metadata. On AWS it holds none at all (SSM Parameter Store fills placeholders at
    boot); on Hetzner only secrets.env and the operator's TLS key.

    (Its secrecy in the Pulumi state is the program's job and is tested there: CrossGuard
    hands policies the values without their secret marks.)"""
    if resource_type not in (INSTANCE, TEMPLATE, SERVER):
        return []
    on_aws = resource_type != SERVER
    try:
        files = user_data_files(resource_type, props)
    except UnreadableUserDataError as e:
        return [
            f"user data could not be inspected: {e}; allowed: a #cloud-config document or a "
            "script (gzip and base64 on AWS), its write_files plain, base64, gzip or tar.xz"
        ]
    found = []
    for f in files:
        where = f"{f.path} (in {f.carrier})"
        if f.path == SECRETS_ENV and on_aws:
            found.append(
                f"user data carries {where}; on AWS secrets come from SSM Parameter Store at "
                "boot, never in user data"
            )
            continue
        tls_key = f.path.startswith(TLS_DIR) and f.path.endswith(".key") and not on_aws
        for m in _PEM_PRIVATE_KEY.finditer("" if tls_key else f.text):
            line = f.text.count("\n", 0, m.start()) + 1
            allowed = "none" if on_aws else f"the TLS key only, at {TLS_DIR}<domain>.key"
            found.append(f"{where} line {line} holds a PEM private key; allowed: {allowed}")
        if f.path == SECRETS_ENV:
            continue
        allowed = "a placeholder @@XXL_SECRET_<NAME>@@ filled at boot"
        if not on_aws:
            allowed += f", the value itself in {SECRETS_ENV} only"
        found.extend(
            f"{where} line {line} sets {name} to a value; allowed: {allowed}"
            for line, name in _assignments(f)
        )
    return found


# -- scaling and sizes


def desired_capacity_ignored(
    resource_type: str, props: Mapping[str, Any], ignore_changes: Sequence[str]
) -> list[str]:
    """The bridge group's size belongs to its scaling policy and schedules, not to `pulumi up`."""
    if resource_type != GROUP:
        return []
    ignored = {c.replace("_", "").lower() for c in ignore_changes}
    return [] if "desiredcapacity" in ignored else ["desiredCapacity is not in ignore_changes"]


def documented_instance_sizes(
    resource_type: str, props: Mapping[str, Any], _: Sequence[str]
) -> list[str]:
    """Machines come from the documented families and sizes (components/model/pricing.py)."""
    if resource_type in (INSTANCE, TEMPLATE):
        kind, table = props.get("instanceType"), AWS_TYPES
    elif resource_type == SERVER:
        kind, table = props.get("serverType"), HETZNER_TYPES
        role = (props.get("labels") or {}).get(LABEL_ROLE)
        if role == ROLE_SCALER and kind == HETZNER_SCALER_TYPE:
            return []  # the autoscaler's small VM (shared vCPUs: it only polls)
    else:
        return []
    if kind in table:
        return []
    return [f"{kind!r} is not one of {', '.join(table)}"]


def hetzner_servers_have_keys(
    resource_type: str, props: Mapping[str, Any], _: Sequence[str]
) -> list[str]:
    """A Hetzner server made without an SSH key gets a root password by e-mail."""
    if resource_type != SERVER or props.get("sshKeys"):
        return []
    return ["no sshKeys: Hetzner would mail a root password for this server"]


RULES: Final[dict[str, Rule]] = {
    "imdsv2-required": imdsv2_required,
    "no-ssh-from-anywhere": no_ssh_from_anywhere,
    "no-public-prosody-ports": no_public_prosody_ports,
    "encrypted-volumes": encrypted_volumes,
    "no-credentials-in-clear-user-data": no_credentials_in_clear_user_data,
    "bridge-desired-capacity-ignored": desired_capacity_ignored,
    "documented-instance-sizes": documented_instance_sizes,
    "hetzner-servers-have-ssh-keys": hetzner_servers_have_keys,
}

STACK_RULES: Final[dict[str, StackRule]] = {
    "no-ssh-from-anywhere-across-rules": ssh_across_rules,
    "no-public-prosody-ports-across-rules": private_ports_across_rules,
}
