"""Stand-ins for the cloud around a bridge twin: the instance metadata service and AWS's APIs.

Both are HTTP servers of the host process whose listening sockets live in the `cloud` host
namespace on the twin's private network:

- the metadata service at the cloud's link-local address (`METADATA_ADDRESS`, port 80), which
  the bridges reach on-link, as on EC2 and Hetzner Cloud. It answers per requesting bridge, by
  source address: EC2's IMDSv2 (a token from ``PUT /latest/api/token`` with a TTL header,
  required on every GET) and Hetzner's ``/hetzner/v1/metadata/...``;
- AWS's APIs at one private address (as a VPC interface endpoint would be), which boto3 on the
  bridge is pointed at with ``AWS_ENDPOINT_URL``. Debian 13's botocore (1.37) speaks JSON 1.1
  to SSM (``X-Amz-Target: AmazonSSM.<Action>``) and the query protocol (form-encoded
  ``Action=...``, XML answers) to Auto Scaling and CloudWatch; these are answered:
  ``GetParametersByPath``, ``RecordLifecycleActionHeartbeat``, ``CompleteLifecycleAction``
  and ``PutMetricData``. Every call is recorded, with the access key it was signed with.

The role's keys are made up at run time; they are only ever compared, never checked as
signatures.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gzip
import http.server
import json
import re
import secrets
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from components.model.project import METADATA_ADDRESS, Cloud
from components.twin import container

METADATA_PORT: Final = 80
AWS_API_PORT: Final = 80
ROLE: Final = "jitsi-xxl-jvb"
TOKEN_MAX_TTL: Final = 21600
_QUERY_NAMESPACES: Final = {
    "RecordLifecycleActionHeartbeat": "http://autoscaling.amazonaws.com/doc/2011-01-01/",
    "CompleteLifecycleAction": "http://autoscaling.amazonaws.com/doc/2011-01-01/",
    "PutMetricData": "http://monitoring.amazonaws.com/doc/2010-08-01/",
}
_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")


@dataclass
class Instance:
    """One bridge as its cloud knows it."""

    cloud: Cloud
    private_ip: str
    instance_id: str
    public_ip: str
    region: str
    group: str = ""  # the Auto Scaling group (AWS)
    network: str = ""  # the private network's range (Hetzner's private-networks document)
    lifecycle_state: str = "InService"


@dataclass(frozen=True)
class Call:
    """One AWS API call: which bridge made it, the action, its parameters and signing key."""

    source: str
    action: str
    params: dict[str, Any]
    access_key: str = field(repr=False)

    def signed_with(self, key: str) -> bool:
        """Whether the call was signed with `key` (compared, never printed)."""
        return secrets.compare_digest(self.access_key, key)


@dataclass
class CloudStub:
    """The recorded state of both servers; thread-safe (each request runs in a thread)."""

    instances: dict[str, Instance] = field(default_factory=dict)
    # secrets stay out of reprs (a failing test prints its fixtures)
    parameters: dict[str, str] = field(default_factory=dict, repr=False)  # SSM name -> value
    calls: list[Call] = field(default_factory=list)
    metadata_requests: list[tuple[str, str, str]] = field(default_factory=list)
    access_key: str = field(
        default_factory=lambda: "ASIA" + secrets.token_hex(8).upper(), repr=False
    )
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(30), repr=False)
    session_token: str = field(default_factory=lambda: secrets.token_urlsafe(60), repr=False)
    _tokens: dict[str, str] = field(default_factory=dict, repr=False)  # IMDSv2 token -> source
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set_lifecycle_state(self, private_ip: str, state: str) -> None:
        with self._lock:
            self.instances[private_ip].lifecycle_state = state

    def calls_of(self, action: str, source: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.action == action and source in (None, c.source)]

    # -- the metadata service ---------------------------------------------------------------
    def metadata(self, source: str, method: str, path: str, headers: Any) -> tuple[int, str]:
        with self._lock:
            self.metadata_requests.append((source, method, path))
            instance = self.instances.get(source)
            if instance is None:
                return 404, "not an instance of this cloud\n"
            if instance.cloud is Cloud.hetzner:
                return self._hetzner(instance, method, path)
            return self._imds(instance, source, method, path, headers)

    def _imds(
        self, i: Instance, source: str, method: str, path: str, headers: Any
    ) -> tuple[int, str]:
        if path == "/latest/api/token":
            ttl = headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if method != "PUT" or not ttl.isdigit() or not 1 <= int(ttl) <= TOKEN_MAX_TTL:
                return 400, "a PUT with X-aws-ec2-metadata-token-ttl-seconds is required\n"
            token = secrets.token_urlsafe(32)
            self._tokens[token] = source
            return 200, token
        # IMDSv2 only, as the launch template sets: no token, no answer
        if self._tokens.get(headers.get("X-aws-ec2-metadata-token", "")) != source:
            return 401, ""
        if method != "GET" or not path.startswith("/latest/meta-data/"):
            return 404, ""
        values = {
            "instance-id": i.instance_id,
            "local-ipv4": i.private_ip,
            "public-ipv4": i.public_ip,
            "placement/region": i.region,
            "placement/availability-zone": i.region + "a",
            "tags/instance/aws:autoscaling:groupName": i.group,
            "autoscaling/target-lifecycle-state": i.lifecycle_state,
            "iam/security-credentials/": ROLE,
            f"iam/security-credentials/{ROLE}": self._role_credentials(),
        }
        value = values.get(path.removeprefix("/latest/meta-data/"))
        return (404, "") if value is None else (200, value)

    def _role_credentials(self) -> str:
        now = dt.datetime.now(dt.UTC)
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        return json.dumps(
            {
                "Code": "Success",
                "LastUpdated": now.strftime(stamp),
                "Type": "AWS-HMAC",
                "AccessKeyId": self.access_key,
                "SecretAccessKey": self.secret_key,
                "Token": self.session_token,
                "Expiration": (now + dt.timedelta(hours=6)).strftime(stamp),
            }
        )

    def _hetzner(self, i: Instance, method: str, path: str) -> tuple[int, str]:
        base = "/hetzner/v1/metadata/"
        # the document Hetzner serves for a server in one network (YAML, a list of mappings)
        networks = (
            f"- ip: {i.private_ip}\n  alias_ips: []\n  interface_num: 1\n"
            f"  mac_address: 86:00:00:00:00:01\n  network_id: 1\n  network_name: jitsi-xxl\n"
            f"  network: {i.network}\n  subnet: {i.network}\n"
        )
        values = {
            "instance-id": i.instance_id,
            "private-networks": networks,
            "public-ipv4": i.public_ip,
            "region": i.region,
            "hostname": f"bridge-{i.instance_id}",
        }
        value = values.get(path.removeprefix(base)) if path.startswith(base) else None
        if method != "GET" or value is None:
            return 404, ""
        return 200, value

    # -- AWS's APIs -------------------------------------------------------------------------
    def aws(self, source: str, headers: Any, body: bytes) -> tuple[int, str, str]:
        """(status, content type, body) for one API request."""
        if headers.get("Content-Encoding", "") == "gzip":
            body = gzip.decompress(body)
        match = _CREDENTIAL.search(headers.get("Authorization", ""))
        key = match[1] if match else ""
        target = headers.get("X-Amz-Target", "")
        if target:
            action = target.rsplit(".", 1)[-1]
            params: dict[str, Any] = json.loads(body or b"{}")
            self._record(Call(source, action, params, key))
            return self._json(action, params, key)
        form = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
        action = form.pop("Action", "")
        self._record(Call(source, action, form, key))
        namespace = _QUERY_NAMESPACES.get(action)
        if namespace is None or key != self.access_key:
            code = "InvalidClientTokenId" if namespace else "InvalidAction"
            return 400, "text/xml", _query_error(code)
        result = "" if action == "PutMetricData" else f"<{action}Result/>"
        answer = (
            f'<{action}Response xmlns="{namespace}">{result}<ResponseMetadata>'
            f"<RequestId>{secrets.token_hex(8)}</RequestId></ResponseMetadata></{action}Response>"
        )
        return 200, "text/xml", answer

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _json(self, action: str, params: dict[str, Any], key: str) -> tuple[int, str, str]:
        content = "application/x-amz-json-1.1"
        if key != self.access_key:
            return 400, content, json.dumps({"__type": "UnrecognizedClientException"})
        if action != "GetParametersByPath":
            return 400, content, json.dumps({"__type": "InvalidAction"})
        path = str(params.get("Path", ""))
        found = [
            {"Name": name, "Type": "SecureString", "Value": value, "Version": 1}
            for name, value in sorted(self.parameters.items())
            if name.startswith(path)
        ]
        return 200, content, json.dumps({"Parameters": found})


def _query_error(code: str) -> str:
    return (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
        f"<Message>{code}</Message></Error><RequestId>0</RequestId></ErrorResponse>"
    )


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def _reply(self, status: int, content_type: str, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        source = self.client_address[0]
        if self.server.role == "metadata":
            self._body()
            status, text = self.server.stub.metadata(source, self.command, self.path, self.headers)
            self._reply(status, "text/plain", text)
        else:
            self._reply(*self.server.stub.aws(source, self.headers, self._body()))

    do_GET = do_PUT = do_POST = _handle  # noqa: N815 - http.server's method names

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # the stub's record is `CloudStub`; nothing on stderr
        return


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], stub: CloudStub, role: str) -> None:
        self.stub = stub
        self.role = role
        super().__init__(address, _Handler)


@contextlib.contextmanager
def serving(netns: Path, stub: CloudStub, aws_address: str) -> Iterator[None]:
    """Both servers, their sockets in `netns`; stopped on exit."""
    servers: list[_Server] = []
    try:
        for address, port, role in (
            (METADATA_ADDRESS, METADATA_PORT, "metadata"),
            (aws_address, AWS_API_PORT, "aws"),
        ):
            server = container.run_in_netns(
                netns, functools.partial(_Server, (address, port), stub, role)
            )
            servers.append(server)
            threading.Thread(target=server.serve_forever, name=f"stub-{role}", daemon=True).start()
        yield
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
