"""A local stand-in of the Hetzner Cloud API (https://docs.hetzner.cloud/), enough of it for the
autoscaler and the stack's sweep: servers (list by label selector, create, update labels,
shutdown, delete), placement groups (list, create, delete), networks and SSH keys (list by label
selector), the bearer token, with Hetzner's JSON shapes, its error
envelope (`{"error": {"code", "message"}}`), pagination, the 10-servers-per-spread-group and
per-project server limits, and injected failures (429 `rate_limit_exceeded`, 5xx). The official
`hcloud` library talks to it through its `api_endpoint` setting.

Servers stand still unless the test moves them: created `running` (the test may ask for
`initializing`), shut down to `stopping`, and `off` only when the test says the bridge's drain
is over.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SPREAD_LIMIT = 10


def _matches(labels: dict[str, str], selector: str) -> bool:
    """Hetzner's label selector: comma-separated `k=v`, `k!=v`, `k` and `!k` terms."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k) != v:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


@dataclass
class HcloudApi:
    """The stand-in's state; `url` is the endpoint to hand to `hcloud.Client`."""

    max_servers: int = 100
    start_status: str = "running"
    servers: dict[int, dict[str, Any]] = field(default_factory=dict)
    groups: dict[int, dict[str, Any]] = field(default_factory=dict)
    # the project's networks and SSH keys, found by label as the autoscaler does
    networks: dict[int, dict[str, Any]] = field(default_factory=dict)
    ssh_keys: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)  # next answers: (status, code)
    url: str = ""
    token: str = field(default="", repr=False)  # when set, every request must carry it
    action_status: str = "success"  # what a new action says first
    actions: dict[int, dict[str, Any]] = field(default_factory=dict)
    _next_id: int = 1000
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- what the tests do -----------------------------------------------------------------
    def add_network(self, network_id: int, labels: dict[str, str]) -> None:
        self.networks[network_id] = {
            "id": network_id, "name": f"net-{network_id}", "ip_range": "10.0.0.0/16",
            "subnets": [], "routes": [], "servers": [], "labels": dict(labels),
            "protection": {"delete": False}, "created": "2026-11-28T10:00:00+00:00",
            "expose_routes_to_vswitch": False,
        }  # fmt: skip

    def add_ssh_key(self, key_id: int, name: str, labels: dict[str, str]) -> None:
        self.ssh_keys[key_id] = {
            "id": key_id, "name": name, "fingerprint": "00:00", "labels": dict(labels),
            "public_key": "ssh-ed25519 AAAA", "created": "2026-11-28T10:00:00+00:00",
        }  # fmt: skip

    def fail_next(self, count: int, status: int, code: str) -> None:
        self.failures += [(status, code)] * count

    def set_status(self, server_id: int, status: str) -> None:
        self.servers[server_id]["status"] = status

    def named(self, name: str) -> dict[str, Any]:
        return next(s for s in self.servers.values() if s["name"] == name)

    def add_server(self, name: str, labels: dict[str, str], private_ip: str, **extra: Any) -> int:
        with self._lock:
            return self._server(name, labels, private_ip, None, status="running", **extra)

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.calls if m != "GET"]

    # -- the API -----------------------------------------------------------------------------
    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _server(  # noqa: PLR0917 - the API's fields, in its order
        self,
        name: str,
        labels: dict[str, str],
        private_ip: str,
        group: int | None,
        status: str,
        created: str | None = None,
    ) -> int:
        sid = self._id()
        self.servers[sid] = {
            "id": sid,
            "name": name,
            "status": status,
            "created": created or datetime.now(UTC).isoformat(),
            "labels": dict(labels),
            "public_net": {
                "ipv4": {
                    "id": sid,
                    "ip": f"198.51.100.{sid % 250}",
                    "blocked": False,
                    "dns_ptr": "",
                },
                "ipv6": None,
                "floating_ips": [],
                "firewalls": [],
            },
            "private_net": [
                {"network": 4711, "ip": private_ip, "alias_ips": [], "mac_address": "86:00:00:0"}
            ],
            "server_type": {"id": 96, "name": "ccx33"},
            "image": {"id": 114690387, "name": "debian-13", "type": "system"},
            "placement_group": self.groups[group] if group is not None else None,
            "volumes": [],
            "iso": None,
            "rescue_enabled": False,
            "locked": False,
            "protection": {"delete": False, "rebuild": False},
        }
        if group is not None:
            self.groups[group]["servers"].append(sid)
        return sid

    def _action(self, command: str, resource: int) -> dict[str, Any]:
        """An action as Hetzner answers it: `action_status` at first (the test may say
        `running`), `success` once asked for again (GET /actions/{id})."""
        now = datetime.now(UTC).isoformat()
        action_id = self._id()
        action = {
            "id": action_id, "command": command, "status": self.action_status,
            "progress": 100 if self.action_status == "success" else 0, "started": now,
            "finished": now if self.action_status == "success" else None,
            "resources": [{"id": resource, "type": "server"}], "error": None,
        }  # fmt: skip
        self.actions[action_id] = {**action, "status": "success", "progress": 100,
                                      "finished": now}  # fmt: skip
        return action

    def handle(
        self, method: str, path: str, body: dict[str, Any], authorization: str = ""
    ) -> tuple[int, dict[str, Any]]:
        """One request: (status, JSON answer)."""
        with self._lock:
            if self.token and authorization != f"Bearer {self.token}":
                return 401, {"error": {"code": "unauthorized", "message": "unable to authenticate"}}
            self.calls.append((method, path.split("?", maxsplit=1)[0]))
            if self.failures:
                status, code = self.failures.pop(0)
                return status, {"error": {"code": code, "message": code.replace("_", " ")}}
            return self._route(method, path, body)

    def _route(  # noqa: PLR0911, PLR0912 - one answer per endpoint
        self, method: str, path: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        route = parts.path.removeprefix("/v1")
        if method == "GET" and route == "/servers":
            found = [s for s in self.servers.values()
                     if _matches(s["labels"], query.get("label_selector", ""))]  # fmt: skip
            return 200, self._page("servers", found, query)
        if method == "POST" and route == "/servers":
            return self._create(body)
        if m := re.fullmatch(r"/servers/(\d+)", route):
            server = self.servers.get(int(m[1]))
            if server is None:
                return 404, {"error": {"code": "not_found", "message": "server not found"}}
            if method == "GET":
                return 200, {"server": server}
            if method == "PUT":
                server["labels"] = dict(body.get("labels", server["labels"]))
                return 200, {"server": server}
            if method == "DELETE":
                del self.servers[server["id"]]
                for g in self.groups.values():
                    if server["id"] in g["servers"]:
                        g["servers"].remove(server["id"])
                return 200, {"action": self._action("delete_server", server["id"])}
        if (m := re.fullmatch(r"/actions/(\d+)", route)) and method == "GET":
            return 200, {"action": self.actions[int(m[1])]}
        if m := re.fullmatch(r"/servers/(\d+)/actions/(shutdown|poweroff)", route):
            server = self.servers[int(m[1])]
            server["status"] = "stopping" if m[2] == "shutdown" else "off"
            return 201, {"action": self._action(f"{m[2]}_server", server["id"])}
        if method == "GET" and route in {"/networks", "/ssh_keys"}:
            kind = route.removeprefix("/")
            items = self.networks if kind == "networks" else self.ssh_keys
            found = [x for x in items.values()
                     if _matches(x["labels"], query.get("label_selector", ""))]  # fmt: skip
            return 200, self._page(kind, found, query)
        if method == "GET" and route == "/placement_groups":
            found = [g for g in self.groups.values()
                     if _matches(g["labels"], query.get("label_selector", ""))]  # fmt: skip
            return 200, self._page("placement_groups", found, query)
        if (m := re.fullmatch(r"/placement_groups/(\d+)", route)) and method == "DELETE":
            if self.groups.pop(int(m[1]), None) is None:
                return 404, {"error": {"code": "not_found", "message": "no such group"}}
            return 204, {}
        if method == "POST" and route == "/placement_groups":
            gid = self._id()
            self.groups[gid] = {
                "id": gid, "name": body["name"], "type": body.get("type", "spread"),
                "labels": dict(body.get("labels") or {}), "servers": [],
                "created": datetime.now(UTC).isoformat(),
            }  # fmt: skip
            return 201, {"placement_group": self.groups[gid], "action": None}
        return 404, {"error": {"code": "not_found", "message": f"{method} {route}"}}

    def _create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if any(s["name"] == body["name"] for s in self.servers.values()):
            return 409, {"error": {"code": "uniqueness_error", "message": "name is already used"}}
        if len(self.servers) >= self.max_servers:
            return 403, {"error": {"code": "resource_limit_exceeded",
                                   "message": "server limit reached"}}  # fmt: skip
        group = body.get("placement_group")
        if group is not None and len(self.groups[int(group)]["servers"]) >= SPREAD_LIMIT:
            return 422, {"error": {"code": "placement_error",
                                   "message": "spread group is full"}}  # fmt: skip
        sid = self._server(
            body["name"], body.get("labels") or {}, f"10.0.2.{len(self.servers) + 10}",
            int(group) if group is not None else None, self.start_status,
        )  # fmt: skip
        self.servers[sid]["user_data"] = body.get("user_data")
        self.servers[sid]["ssh_keys"] = body.get("ssh_keys")
        self.servers[sid]["networks"] = body.get("networks")
        return 201, {
            "server": self.servers[sid], "action": self._action("create_server", sid),
            "next_actions": [], "root_password": None,
        }  # fmt: skip

    @staticmethod
    def _page(key: str, items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
        page, per_page = int(query.get("page", 1)), int(query.get("per_page", 25))
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        return {
            key: chunk,
            "meta": {"pagination": {
                "page": page, "per_page": per_page, "previous_page": page - 1 or None,
                "next_page": page + 1 if page < last else None, "last_page": last,
                "total_entries": len(items),
            }},
        }  # fmt: skip


def make_server(api: HcloudApi, address: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server answering as `api` (not yet serving); `api.url` says where."""

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            auth = self.headers.get("Authorization") or ""
            status, answer = api.handle(self.command, self.path, body, auth)
            data = json.dumps(answer).encode() if status != HTTPStatus.NO_CONTENT else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer((address, port), Handler)
    api.url = f"http://{address}:{server.server_address[1]}/v1"
    return server


@contextmanager
def serving(
    api: HcloudApi, make: Callable[[], ThreadingHTTPServer] | None = None
) -> Iterator[HcloudApi]:
    """Serve `api` (on a free port of 127.0.0.1, or from `make`) for the duration."""
    server = make() if make is not None else make_server(api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
