"""Stack settings: one frozen, typed model, parsed once at the edge.

The same model is built from a stack file (`stacks/Pulumi.<stack>.yaml`, for the offline
`xxl` command) and from `pulumi.Config` (for `pulumi up`). Every key is validated up front;
unknown keys are errors, because a typo in a 10,000-viewer event's config must not be
silently replaced by a default.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum, unique
from pathlib import Path
from typing import Annotated, Any, Final

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from components.model.admission import MAX_VIEWERS_PER_ADDRESS
from components.model.planner import check_plan
from components.model.pricing import (
    DEFAULT_BRIDGE,
    DEFAULT_SIGNALING,
    MIN_BRIDGE_VCPUS,
    MIN_SIGNALING_VCPUS,
    types_for,
)
from components.model.project import PROJECT, VISITOR_DOMAIN_SUFFIX, Cloud

# Config namespaces a stack file may carry besides the project's own: the providers'.
PROVIDER_NAMESPACES: Final = frozenset({"aws", "hcloud", "random", "pulumi"})

# Top-level keys of a Pulumi stack file other than `config`.
STACK_FILE_KEYS: Final = frozenset({"config", "encryptionsalt", "secretsprovider", "encryptedkey"})

# The domain is the certificate's common name, which OpenSSL and ACME limit to 64 characters
# (tighter than DNS's 253); each label is at most 63. Every pattern is used with fullmatch:
# `$` would also match before a trailing newline.
MIN_DOMAIN_LENGTH: Final = 4
MAX_DOMAIN_LENGTH: Final = 64
_DOMAIN_RE: Final = re.compile(
    r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?"
)
_EMAIL_RE: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DEBIAN_VERSION_RE: Final = re.compile(r"[0-9][A-Za-z0-9.+~:-]*")

# Visitor nodes and their hard cap; together they bound the audience one stack can hold.
MAX_VISITOR_NODES: Final = 64
MAX_PER_NODE: Final = 10_000
MAX_AUDIENCE: Final = MAX_VISITOR_NODES * MAX_PER_NODE
# Largest bridge pool (bridges.min and bridges.max).
MAX_BRIDGES: Final = 1000
# Key types Hetzner accepts for a server's root login.
SSH_KEY_TYPES: Final = (
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
)  # fmt: skip
MAX_SSH_KEYS: Final = 20
_SSH_KEY_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,63}")


def is_public_key(text: str) -> bool:
    """An OpenSSH public key line: a known type, its base64 blob (which names the same type),
    an optional comment."""
    parts = text.split(maxsplit=2)
    if len(parts) < 2 or parts[0] not in SSH_KEY_TYPES:  # noqa: PLR2004 - type and blob
        return False
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        return False
    size = int.from_bytes(blob[:4], "big")
    return blob[4 : 4 + size] == parts[0].encode()


# The widest network an address rule may name, by IP version (admin_cidrs here, every
# ingress source in the policy pack). No organisation holds an IPv4 block wider than a /8,
# and single networks' IPv6 allocations stay far narrower than a /16 (registries hold /12s):
# a wider source is a good part of the internet, as far as a listener cares.
WIDEST_SOURCE_PREFIX: Final = {4: 8, 6: 16}


class ConfigError(Exception):
    """Invalid stack settings; `problems` holds one readable line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


class UsageError(ConfigError):
    """A bad command-line argument; each problem names the argument and what is allowed."""


@unique
class Promotion(StrEnum):
    """How a visitor who raises a hand becomes a main participant."""

    auto = "auto"  # granted at once
    moderated = "moderated"  # a moderator approves it
    off = "off"  # not granted automatically, and no approval path in the web client


@unique
class AuthMode(StrEnum):
    """Who may take the stage."""

    # hosts carry a signed token (`xxl token`); everyone without one is a viewer
    jwt = "jwt"
    # anyone may log in; the first joiners fill the main room (rehearsals only)
    anonymous = "anonymous"


@unique
class TlsMode(StrEnum):
    """Where the signaling VM's certificate comes from."""

    letsencrypt = "letsencrypt"
    provided = "provided"
    self_signed = "self-signed"


def _whole_number(value: object) -> object:
    """Accept ints and digit strings (Pulumi passes scalar config as text); refuse the rest.

    A bool is an int to Python, and 2.5 would be truncated by a lax parser: both are refused.
    """
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError("must be a whole number")
    # ASCII digits only: `\d` and int() also take other scripts' digits (Arabic-Indic ...)
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        return int(value)
    if isinstance(value, float):
        return int(value)
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, use_enum_values=False)


class VisitorSettings(_Strict):
    """`jitsi-xxl:visitors`: the visitor prosodies and when viewers are sent to them."""

    nodes: WholeNumber | None = Field(
        default=None,
        ge=1,
        le=MAX_VISITOR_NODES,
        description="visitor prosodies; default derived from audience",
    )
    max_per_node: WholeNumber = Field(
        default=2000, ge=50, le=MAX_PER_NODE, description="hard cap of viewers per node"
    )
    main_participants: WholeNumber = Field(
        default=30, ge=1, le=500, description="jicofo max-participants of the main room"
    )
    promotion: Promotion = Field(
        default=Promotion.moderated, description="visitor promotion; a moderator approves it"
    )
    viewers_per_address: WholeNumber = Field(
        default=1000,
        ge=10,
        le=MAX_VIEWERS_PER_ADDRESS,
        description="viewers that may join from one address (a company behind one NAT)",
    )


class AuthSettings(_Strict):
    """`jitsi-xxl:auth`: how hosts prove they are hosts."""

    mode: AuthMode = Field(
        default=AuthMode.jwt, description="jwt (hosts have tokens) or anonymous (rehearsals)"
    )


@unique
class ScaleOn(StrEnum):
    """What the AWS bridge pool's target tracking follows."""

    stress = "stress"  # the videobridges' own stress_level, published by the agent
    cpu = "cpu"  # EC2's average CPU, if the metric path is unavailable


class BridgeSettings(_Strict):
    """`jitsi-xxl:bridges`: the videobridge pool."""

    participants_per_bridge: WholeNumber = Field(
        default=200, ge=10, le=2000, description="jicofo max-bridge-participants"
    )
    min: WholeNumber | None = Field(
        default=None,
        ge=0,
        le=MAX_BRIDGES,
        description="pool floor; default: what the audience needs",
    )
    max: WholeNumber | None = Field(
        default=None,
        ge=1,
        le=MAX_BRIDGES,
        description="pool ceiling; default 1.5 x what it needs",
    )
    # A bridge leaving the pool drains for at most this long. The AWS lifecycle hook can hold
    # an instance for at most 100 heartbeat timeouts (100 x 300 s), hence the ceiling.
    graceful_shutdown_max_minutes: WholeNumber = Field(
        default=60, ge=5, le=480, description="longest drain before a bridge stops"
    )
    websockets: bool = Field(
        default=False,
        description="colibri WebSockets for the bridge channel (SCTP data channels otherwise)",
    )
    instance_type: str | None = Field(
        default=None, description="bridge machine type; default c6i.2xlarge or ccx33"
    )
    scale_on: ScaleOn = Field(
        default=ScaleOn.stress, description="AWS target tracking signal: stress or cpu"
    )
    # Off, a changed bridge template is used by the bridges started later and none is rolled:
    # a roll during an event drains every bridge in turn (up to the drain bound each).
    refresh_on_change: bool = Field(
        default=False,
        description="AWS: roll running bridges onto a changed template (each drains first)",
    )

    @field_validator("websockets", "refresh_on_change", mode="before")
    @classmethod
    def _flag(cls, value: object) -> object:
        # Pulumi passes scalars as text; accept exactly true/false, nothing looser
        if isinstance(value, str) and value in {"true", "false"}:
            return value == "true"
        if not isinstance(value, bool):
            raise ValueError("must be true or false")  # noqa: TRY004 - pydantic wants ValueError
        return value


class SignalingSettings(_Strict):
    """`jitsi-xxl:signaling`: the signaling VM."""

    instance_type: str | None = Field(
        default=None, description="signaling machine type; default c6i.4xlarge or ccx43"
    )


class DnsSettings(_Strict):
    """`jitsi-xxl:dns`: an A record for the domain, made before the signaling VM boots."""

    zone: str = Field(description="Route53 hosted zone id (aws) or Hetzner DNS zone name")
    ttl: WholeNumber = Field(default=60, ge=30, le=86400, description="record TTL in seconds")


class EventSettings(_Strict):
    """`jitsi-xxl:event`: the window of the event, in UTC (ISO 8601)."""

    start: datetime = Field(description="when viewers arrive, e.g. 2026-12-03T14:00:00Z")
    end: datetime = Field(description="when the event is over")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        # YAML turns an unquoted timestamp into a date or datetime object, while Pulumi hands
        # the program text: only quoted text means the same to both
        if isinstance(value, date):
            msg = 'an unquoted YAML timestamp; quote it, e.g. "2026-12-03T14:00:00Z"'
            raise ValueError(msg)  # noqa: TRY004 - pydantic wants ValueError
        return value

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a time zone, e.g. 2026-12-03T14:00:00Z")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _order(self) -> EventSettings:
        if self.end <= self.start:
            raise ValueError("event.end must be after event.start")
        return self

    def window(self) -> tuple[datetime, datetime]:
        return (self.start, self.end)


class AwsSettings(_Strict):
    """`jitsi-xxl:aws`: AWS-only choices."""

    ami: str | None = Field(
        default=None, description="pin an AMI id; default: newest Debian 13, then kept"
    )
    vpc_id: str | None = Field(default=None, description="deploy into an existing VPC")
    subnet_ids: list[str] | None = Field(
        default=None, description="two or more public subnets of vpc_id, in different zones"
    )

    @model_validator(mode="after")
    def _existing_network(self) -> AwsSettings:
        if (self.vpc_id is None) != (self.subnet_ids is None):
            raise ValueError("aws.vpc_id and aws.subnet_ids go together")
        if self.subnet_ids is not None and len(set(self.subnet_ids)) < 2:  # noqa: PLR2004
            raise ValueError("aws.subnet_ids needs two or more subnets (two zones)")
        return self


class HetznerSettings(_Strict):
    """`jitsi-xxl:hetzner`: Hetzner-only choices."""

    location: str = Field(default="fsn1", description="location of every server")
    network_zone: str = Field(default="eu-central", description="network zone of the location")
    image: str = Field(default="debian-13", description="server image")
    # Without a key Hetzner mails a root password for every server; with none given the stack
    # generates one (a secret output).
    ssh_keys: tuple[str, ...] = Field(
        default=(),
        max_length=MAX_SSH_KEYS,
        description="root's SSH keys: names of the project's keys, or OpenSSH public keys",
    )

    @field_validator("ssh_keys")
    @classmethod
    def _keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for i, key in enumerate(value):
            # a line that starts like a key is a key, never a name
            looks_like_key = key.split(" ", 1)[0] in SSH_KEY_TYPES
            named = not looks_like_key and _SSH_KEY_NAME_RE.fullmatch(key)
            if not (is_public_key(key) or named):
                raise ValueError(
                    f"entry {i + 1} is neither an OpenSSH public key ({', '.join(SSH_KEY_TYPES)}"
                    " followed by base64) nor a key name (1 to 64 letters, digits, . _ - "
                    "and spaces)"
                )
        if len(set(value)) != len(value):
            raise ValueError("lists a key twice")
        return value


class TlsSettings(_Strict):
    """`jitsi-xxl:tls`: the public certificate of the signaling VM."""

    mode: TlsMode = Field(default=TlsMode.letsencrypt, description="certificate source")
    email: str | None = Field(default=None, description="ACME account e-mail (letsencrypt)")

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL_RE.fullmatch(value):
            raise ValueError("must be an e-mail address such as ops@example.org")
        return value

    @model_validator(mode="after")
    def _email_for_acme(self) -> TlsSettings:
        if self.mode is TlsMode.letsencrypt and not self.email:
            raise ValueError("tls.email is required when tls.mode is letsencrypt")
        return self


class NetworkSettings(_Strict):
    """`jitsi-xxl:network`: the private network the signaling VM and bridges share."""

    cidr: str = Field(default="10.0.0.0/16", description="private IPv4 range, /16 to /22")

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            net = ipaddress.IPv4Network(value, strict=True)
        except ValueError as exc:
            raise ValueError("must be an IPv4 network such as 10.0.0.0/16") from exc
        if not net.is_private:
            raise ValueError("must be a private range (10/8, 172.16/12 or 192.168/16)")
        if not 16 <= net.prefixlen <= 22:  # noqa: PLR2004 - the subnet plan needs /24s inside
            raise ValueError("prefix must be between /16 and /22")
        return value


class ReleaseSettings(_Strict):
    """`jitsi-xxl:release`: pinned package versions; every VM of a stack runs the same ones."""

    # Defaults: Jitsi stable 11146 (jitsi-meet-debian-meta tag jitsi_meet_11146) and the
    # Prosody release Jitsi's own infrastructure runs (13.0.6).
    jitsi_meet: str = Field(
        default="1.0.9365-1",
        description="Debian version of jitsi-meet-web, jitsi-meet-web-config, jitsi-meet-prosody",
    )
    jicofo: str = Field(default="1.0-1189-1", description="Debian version of jicofo")
    jitsi_videobridge: str = Field(
        default="2.3-307-g4bb0aead1-1", description="Debian version of jitsi-videobridge2"
    )
    prosody: str = Field(
        # Prosody's own repository, any Debian revision of its trixie build of 13.0.6
        default="13.0.6*",
        description="Debian version or apt pin (13.0.*, 13.0.6*) of prosody; 13.0 or later",
    )

    @field_validator("jitsi_meet", "jicofo", "jitsi_videobridge")
    @classmethod
    def _debian_version(cls, value: str) -> str:
        if not _DEBIAN_VERSION_RE.fullmatch(value):
            raise ValueError("must be a Debian package version such as 1.0.9365-1")
        return value

    @field_validator("prosody")
    @classmethod
    def _prosody_pin(cls, value: str) -> str:
        # Visitors need the s2sout-pre-connect event and Lua 5.4 (prosody 13). 13.0.0-13.0.2
        # ignore the muc_room_default_presence_broadcast table the visitor MUC relies on
        # (Prosody #1938): the bootstrap fixes those versions in place.
        m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+\*?|\*)(-[A-Za-z0-9.+~]+)?", value)
        if not m:
            raise ValueError("must be a version or pin such as 13.0.*, 13.0.6* or 13.0.6-1")
        if (int(m[1]), int(m[2])) < (13, 0):
            raise ValueError("must be prosody 13.0 or later (visitors need prosody 13)")
        return value


class Settings(_Strict):
    """Everything a stack can set under the `jitsi-xxl:` namespace."""

    cloud: Cloud = Field(description="aws or hetzner")
    domain: str = Field(description="public DNS name of the conference site")
    audience: WholeNumber = Field(
        default=10000,
        ge=1,
        le=MAX_AUDIENCE,
        description="expected concurrent viewers; at most what 64 nodes of 10,000 hold",
    )
    visitors: VisitorSettings = Field(default_factory=VisitorSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    bridges: BridgeSettings = Field(default_factory=BridgeSettings)
    tls: TlsSettings = Field(description="certificate mode and ACME e-mail")
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    release: ReleaseSettings = Field(default_factory=ReleaseSettings)
    signaling: SignalingSettings = Field(default_factory=SignalingSettings)
    admin_cidrs: list[str] = Field(
        default_factory=list, description="CIDRs allowed to SSH in; none by default"
    )
    dns: DnsSettings | None = Field(default=None, description="optional DNS record")
    event: EventSettings | None = Field(default=None, description="optional event window")
    aws: AwsSettings = Field(default_factory=AwsSettings)
    hetzner: HetznerSettings = Field(default_factory=HetznerSettings)

    @field_validator("admin_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not a CIDR such as 203.0.113.0/24") from exc
        # by union, not by literal: 0.0.0.0/1 and 128.0.0.0/1 together are 0.0.0.0/0
        nets = [ipaddress.ip_network(c) for c in value]
        v4 = ipaddress.collapse_addresses(n for n in nets if isinstance(n, ipaddress.IPv4Network))
        v6 = ipaddress.collapse_addresses(n for n in nets if isinstance(n, ipaddress.IPv6Network))
        for version, union in ((4, list(v4)), (6, list(v6))):
            if any(n.prefixlen == 0 for n in union):
                raise ValueError(
                    f"together these cover every IPv{version} address: SSH from anywhere is "
                    "not allowed; name your admin networks"
                )
            widest = WIDEST_SOURCE_PREFIX[version]
            wide = [str(n) for n in union if n.prefixlen < widest]
            if wide:
                raise ValueError(
                    f"together these make {', '.join(wide)}, a good part of the internet; "
                    f"allowed: admin networks no wider than /{widest} (IPv{version})"
                )
        return value

    @model_validator(mode="after")
    def _dns_zone(self) -> Settings:
        # Hetzner's zone is a name that must hold the domain (Route53's is an id)
        if self.cloud is Cloud.hetzner and self.dns is not None:
            zone = self.dns.zone.strip().rstrip(".").lower()
            if self.domain != zone and not self.domain.endswith("." + zone):
                raise ValueError(
                    f"{PROJECT}:dns.zone: {self.dns.zone!r} does not contain domain "
                    f"{self.domain!r}; allowed: the domain itself or a zone above it, such as "
                    f"{self.domain.partition('.')[2] or self.domain}"
                )
        return self

    @model_validator(mode="after")
    def _bridge_ceiling(self) -> Settings:
        # A set bridges.max is at most MAX_BRIDGES: when the audience needs more bridges than
        # that, no ceiling the model accepts holds it, so the way out is fuller bridges.
        endpoints = self.audience + self.visitors.main_participants
        per_bridge = self.bridges.participants_per_bridge
        ceiling = self.bridges.max
        if ceiling is not None and -(-endpoints // per_bridge) > MAX_BRIDGES:
            least = -(-endpoints // MAX_BRIDGES)
            raise ValueError(
                f"{PROJECT}:bridges.max: {ceiling} bridges of {per_bridge} carry fewer than "
                f"audience {self.audience} + {self.visitors.main_participants} main "
                f"participants, and a pool holds at most {MAX_BRIDGES}; allowed: "
                f"bridges.participants_per_bridge of at least {least}"
            )
        return self

    @model_validator(mode="after")
    def _machine_types(self) -> Settings:
        table = types_for(self.cloud.value)
        for key, name, least in (
            ("signaling.instance_type", self.signaling_type(), MIN_SIGNALING_VCPUS),
            ("bridges.instance_type", self.bridge_type(), MIN_BRIDGE_VCPUS),
        ):
            if name not in table or table[name].vcpus < least:
                fits = ", ".join(t for t, v in table.items() if v.vcpus >= least)
                raise ValueError(
                    f"{key} {name!r} is not a {self.cloud.value} type we can size and price; "
                    f"allowed: {fits}"
                )
        return self

    def signaling_type(self) -> str:
        return self.signaling.instance_type or DEFAULT_SIGNALING[self.cloud.value]

    def bridge_type(self) -> str:
        return self.bridges.instance_type or DEFAULT_BRIDGE[self.cloud.value]

    @field_validator("domain", mode="before")
    @classmethod
    def _domain(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        name = value.strip().rstrip(".").lower()
        if not MIN_DOMAIN_LENGTH <= len(name) <= MAX_DOMAIN_LENGTH or not _DOMAIN_RE.fullmatch(
            name
        ):
            raise ValueError(
                f"must be a DNS name such as meet.example.org, at most {MAX_DOMAIN_LENGTH} "
                "characters (a certificate's name) with labels of at most 63"
            )
        if name == VISITOR_DOMAIN_SUFFIX or name.endswith("." + VISITOR_DOMAIN_SUFFIX):
            raise ValueError(f"must not be under {VISITOR_DOMAIN_SUFFIX} (the visitor domains)")
        return name


# --- error reporting -----------------------------------------------------------------------


def _nested_model(annotation: object) -> type[BaseModel] | None:
    """The model inside an annotation (`VisitorSettings`, or one member of a union)."""
    members = getattr(annotation, "__args__", (annotation,))
    return next((a for a in members if isinstance(a, type) and issubclass(a, BaseModel)), None)


def _walk(path: tuple[str | int, ...]) -> tuple[type[BaseModel], FieldInfo | None]:
    """Follow a key path through the models: the innermost model and the field's info."""
    model: type[BaseModel] = Settings
    info: FieldInfo | None = None
    for part in path:
        info = model.model_fields.get(str(part))
        if info is None:
            break
        model = _nested_model(info.annotation) or model
    return model, info


def _field_info(path: tuple[str | int, ...]) -> FieldInfo | None:
    return _walk(path)[1]


def _model_at(path: tuple[str | int, ...]) -> type[BaseModel]:
    return _walk(path)[0]


def allowed(path: tuple[str | int, ...]) -> str:
    """Describe what a key accepts, from the model itself (so the text cannot drift)."""
    info = _field_info(path)
    if info is None:
        return "see README, Configuration"
    ann = info.annotation
    args = getattr(ann, "__args__", (ann,))
    enum = next((a for a in args if isinstance(a, type) and issubclass(a, StrEnum)), None)
    if enum is not None:
        return "one of " + ", ".join(m.value for m in enum)
    lo = next((m.ge for m in info.metadata if hasattr(m, "ge")), None)
    hi = next((m.le for m in info.metadata if hasattr(m, "le")), None)
    if lo is not None and hi is not None:
        return f"a whole number from {lo} to {hi}"
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "an object with keys " + ", ".join(ann.model_fields)
    if ann is bool:
        return "true or false"
    return info.description or "see README, Configuration"


def _key(path: tuple[str | int, ...]) -> str:
    return f"{PROJECT}:" + ".".join(str(p) for p in path)


def _problems(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors(include_url=False):
        path = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            parent = _model_at(path[:-1])
            lines.append(
                f"{_key(path)}: unknown key; allowed keys here: {', '.join(parent.model_fields)}"
            )
            continue
        if err["type"] == "missing":
            lines.append(f"{_key(path)}: required; allowed: {allowed(path)}")
            continue
        if (path and path[-1] == "__root__") or (err["type"] == "value_error" and not path):
            msg = err["msg"].removeprefix("Value error, ")
            # a rule that names its key already (`jitsi-xxl:dns.zone: ...`) stands as it is
            lines.append(msg if msg.startswith(f"{PROJECT}:") else f"{PROJECT}: {msg}")
            continue
        got = json.dumps(err["input"], default=str)
        msg = err["msg"].removeprefix("Value error, ")
        where = _key(path) if path else PROJECT
        info = _field_info(path) if path else None
        is_object = info is not None and _nested_model(info.annotation) is not None
        if err["type"] == "value_error" and (info is None or is_object):
            # a rule across an object's keys: the message names them
            lines.append(f"{where}: {msg}")
        else:
            lines.append(f"{where}: {got} is not allowed ({msg}); allowed: {allowed(path)}")
    return lines


# --- parsing -----------------------------------------------------------------------------


def parse_settings(raw: Mapping[str, Any]) -> Settings:
    """Build the model from the project's keys (namespace already stripped).

    Raises ConfigError listing every problem found at once.
    """
    try:
        settings = Settings.model_validate(dict(raw))
    except ValidationError as exc:
        raise ConfigError(_problems(exc)) from None
    # Rules between sections need the planner's arithmetic, so they live there; one entry
    # point either returns a valid model or raises ConfigError.
    problems = check_plan(settings)
    if problems:
        raise ConfigError(problems)
    return settings


def split_namespaces(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Split a stack's `config` map into project keys, provider keys and problems."""
    project: dict[str, Any] = {}
    providers: dict[str, Any] = {}
    problems: list[str] = []
    for full_key, value in config.items():
        namespace, sep, key = str(full_key).partition(":")
        if not sep:
            problems.append(
                f"{full_key}: config keys must be namespaced, e.g. {PROJECT}:{full_key}"
            )
        elif namespace == PROJECT:
            project[key] = value
        elif namespace in PROVIDER_NAMESPACES:
            providers[full_key] = value
        else:
            problems.append(
                f"{full_key}: unknown namespace {namespace!r}; allowed: {PROJECT}, "
                + ", ".join(sorted(PROVIDER_NAMESPACES))
            )
    return project, providers, problems


def is_secure(value: object) -> bool:
    """A stack-file value encrypted by Pulumi (`{secure: ...}`)."""
    return isinstance(value, Mapping) and set(value) == {"secure"}


# Secret keys live beside the model, never in it: the model is plain data that may be
# printed, and these reach the renderer as Pulumi secrets (or throwaway values offline).
# The Hetzner autoscaler's API token: required on Hetzner (components/cloud/stack_config.py).
API_TOKEN_KEY: Final = "hetzner_api_token"  # noqa: S105 - the key's name
SECRET_KEYS: Final = frozenset({"tls_certificate", "tls_private_key", API_TOKEN_KEY})


@dataclass(frozen=True)
class StackFile:
    """A parsed stack file: its settings, provider keys, and which secrets it carries.

    `document` is the file as it was read, so that a command reads its settings once.
    """

    name: str
    settings: Settings
    providers: Mapping[str, Any]
    secrets: frozenset[str]
    document: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def stack_name(path: Path) -> str:
    """`stacks/Pulumi.aws-10k.yaml` -> `aws-10k`."""
    name = path.name
    if not (name.startswith("Pulumi.") and name.endswith((".yaml", ".yml"))):
        raise ConfigError([f"{path}: a stack file is named Pulumi.<stack>.yaml"])
    return name.removeprefix("Pulumi.").rsplit(".", 1)[0]


class _StackLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases: a few lines of `&a [*b, *b, ...]` expand to
    billions of values (billion laughs), and a stack file has no use for them."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event: Any = self.peek_event()  # type: ignore[no-untyped-call]
            raise _YamlRefusedError(
                f"alias *{event.anchor} at line {event.start_mark.line + 1}: aliases are not "
                "allowed in a stack file; allowed: each value written out"
            )
        return super().compose_node(parent, index)


class _YamlRefusedError(Exception):
    """YAML that parses but that a stack file must not contain."""


def _yaml_key(path: tuple[str, ...]) -> str:
    """`("config", "jitsi-xxl:visitors", "nodes")` -> `jitsi-xxl:visitors.nodes`."""
    if len(path) > 1 and path[0] == "config":
        path = path[1:]
    return ".".join(path)


def _duplicate_keys(node: yaml.Node, path: tuple[str, ...] = ()) -> list[str]:
    """One line per key given twice in the same mapping (YAML would keep the last)."""
    problems: list[str] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            if key in seen:
                problems.append(
                    f"duplicate key {_yaml_key((*path, key))} at line "
                    f"{key_node.start_mark.line + 1}; allowed: each key once"
                )
            seen.add(key)
            problems += _duplicate_keys(value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += _duplicate_keys(item, (*path, str(index)))
    return problems


def load_yaml(text: str) -> Any:
    """One YAML document, parsed safely: no aliases, no key given twice.

    Raises ConfigError (without the file's name) or yaml.YAMLError.
    """
    loader = _StackLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except _YamlRefusedError as exc:
            raise ConfigError([str(exc)]) from None
        if node is None:
            return None
        problems = _duplicate_keys(node)
        if problems:
            raise ConfigError(problems)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_stack_file(path: Path) -> StackFile:
    """Parse `stacks/Pulumi.<stack>.yaml` with the same rules as `pulumi up`."""
    name = stack_name(path)
    try:
        text = path.read_bytes().decode("utf-8")
        doc = load_yaml(text)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [
                f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                f"{exc.start}); allowed: a YAML stack file in UTF-8"
            ]
        ) from None
    except ConfigError as exc:
        raise ConfigError([f"{path}: {p}" for p in exc.problems]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({exc})"]) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise ConfigError([f"{path}: must be a mapping with a `config:` key"])
    problems = [
        f"{path}: unknown top-level key {key!r}; allowed: {', '.join(sorted(STACK_FILE_KEYS))}"
        for key in doc
        if key not in STACK_FILE_KEYS
    ]
    config = doc.get("config") or {}
    if not isinstance(config, Mapping):
        raise ConfigError([*problems, f"{path}: `config` must be a mapping"])
    project, providers, ns_problems = split_namespaces(config)
    problems += ns_problems
    secrets = frozenset(k for k in project if k in SECRET_KEYS)
    for key in sorted(secrets):
        if not is_secure(project.pop(key)):
            problems.append(
                f"{PROJECT}:{key}: must be stored encrypted "
                f"(pulumi config set --secret {PROJECT}:{key} ...)"
            )
    try:
        settings = parse_settings(project)
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return StackFile(
        name=name, settings=settings, providers=providers, secrets=secrets, document=doc
    )
