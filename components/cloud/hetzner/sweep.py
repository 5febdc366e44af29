"""LabelledServerSweep: the resource whose delete removes every server carrying the stack's
bridge labels, including the ones the autoscaler made and Pulumi never knew.

Pulumi deletes in reverse dependency order: the sweep depends on the network (so it runs
before the network goes, which a server still attached would block) and the signaling
server depends on the sweep (so the autoscaler on it is gone before the sweep runs and
cannot add a server behind it). A `pulumi destroy` cannot skip it: it is a resource of the
stack like any other.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi.dynamic

from components.model.project import HETZNER_API_ENDPOINT

# What the hcloud provider reads when `hcloud:token` is not in the stack's config.
TOKEN_ENV: Final = "HCLOUD_TOKEN"  # noqa: S105 - the variable's name, not a token


def sweep(client: Any, selector: str, log: Callable[[str], None] = print) -> list[str]:
    """Delete every server and spread placement group matching `selector`; their names.
    The servers' deletions run side by side and are waited for: a placement group or the
    network (deleted next by the engine) is refused while a server is still in it."""
    gone: list[str] = []
    deleting = []
    for server in client.servers.get_all(label_selector=selector):
        deleting.append(server.delete())
        gone.append(server.name)
        log(f"deleting server {server.name} ({selector})")
    for action in deleting:
        action.wait_until_finished()
    for group in client.placement_groups.get_all(label_selector=selector):
        group.delete()
        gone.append(group.name)
        log(f"deleted placement group {group.name} ({selector})")
    return gone


def _client(props: dict[str, Any]) -> Any:
    from hcloud import Client  # noqa: PLC0415 - only when the engine runs the provider

    token = props.get("token") or os.environ.get(TOKEN_ENV, "")
    if not token:
        raise RuntimeError(
            f"the sweep of {props['selector']} needs a Hetzner API token: set hcloud:token "
            f"or {TOKEN_ENV}"
        )
    return Client(token=token, api_endpoint=props.get("endpoint") or HETZNER_API_ENDPOINT)


class SweepProvider(pulumi.dynamic.ResourceProvider):
    """Create records the selector; delete sweeps it; nothing else ever replaces it (a
    replacement would sweep a running pool)."""

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult(id_=str(props["selector"]), outs=props)

    def diff(
        self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]
    ) -> pulumi.dynamic.DiffResult:
        return pulumi.dynamic.DiffResult(
            changes=_olds != _news, replaces=[], delete_before_replace=False
        )

    def update(
        self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]
    ) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(outs=_news)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        sweep(_client(_props), str(_props["selector"]))


@dataclass(frozen=True, kw_only=True)
class LabelledServerSweepArgs:
    """Arguments of LabelledServerSweep."""

    selector: str
    token: pulumi.Input[str] | None = None  # secret; else the engine's HCLOUD_TOKEN at delete
    endpoint: str = HETZNER_API_ENDPOINT


class LabelledServerSweep(pulumi.dynamic.Resource):
    """On delete, no server of the selector is left."""

    def __init__(
        self, name: str, args: LabelledServerSweepArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        props = {
            "selector": args.selector,
            "endpoint": args.endpoint,
            "token": pulumi.Output.secret(args.token) if args.token is not None else None,
        }
        super().__init__(SweepProvider(), name, props, opts)
