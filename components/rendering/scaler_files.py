"""The scaler VM of a Hetzner stack: every file it holds from us, rendered from the settings
and the plan.

Hetzner Cloud has no autoscaling service. On Hetzner the bridges are made and deleted by the
autoscaler (`components/agents/hetzner_autoscaler.py`, shipped as it is), which runs on a
small VM of its own rather than on the signaling VM:
- user data: each Hetzner server's is capped at 32 KiB. The bridges' template (their
  agent, bootstrap and configs) and the autoscaler add about 15 KB to the signaling VM's own
  17-19 KB: over the cap at 64 visitor nodes, and with no room left for a provided
  certificate. On a VM of their own they take 20 KB;
- the API token can delete every server of the project: it stays off the VM that faces the
  audience (nginx, prosody, coturn's relays);
- a changed bridge template replaces this VM, which holds no session, in seconds: during an
  event that is a safe change, as a new launch template version is on AWS.

This module decides what the autoscaler is told (`autoscaler.json`: the pool's bounds, the
thresholds of `model/scaling.py`, the event window, and the labels that find the stack's
network and keys) and the bridges' template (their cloud-config with a marker where the
archive goes, and the archive's files: the render `bridge_files` makes for AWS's launch
template).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from components.agents.hetzner_autoscaler import NO_TOKEN_EXIT
from components.model import naming
from components.model.credentials import BRIDGE_SECRETS, Credentials
from components.model.planner import HETZNER_SPREAD_GROUP_SIZE, Plan
from components.model.ports import BRIDGE_STATS_PORT
from components.model.pricing import HETZNER_SCALER_TYPE
from components.model.project import HETZNER_API_ENDPOINT
from components.model.scaling import (
    HETZNER_POLL_SECONDS,
    MAX_STEP_DOWN,
    MAX_STEP_UP,
    SCALE_IN_BELOW,
    SCALE_IN_COOLDOWN_SECONDS,
    STRESS_TARGET,
    WARMUP_SECONDS,
)
from components.model.schedule import grow_at, shrink_at
from components.model.settings import Settings, is_public_key
from components.rendering.bridge_files import bridge_bundle
from components.rendering.engine import FileSpec, RenderedFile, render, render_specs
from components.rendering.package_sources import BRIDGE_UPSTREAM, PackageSources
from components.rendering.secrets_delivery import (
    OFFLINE_STACK,
    SECRETS_FILE,
    SecretsDelivery,
    carried_files,
    delivery,
)
from components.rendering.userdata import (
    BOOTSTRAP,
    ROOTFS_ARCHIVE,
    VmBundle,
    cloud_config_skeleton,
    vm_bundle,
)

SOURCE: Final = Path(__file__).resolve().parents[1] / "agents" / "hetzner_autoscaler.py"
PATH: Final = "/usr/local/lib/jitsi-xxl/hetzner_autoscaler.py"
CONFIG: Final = "/etc/jitsi/xxl/autoscaler.json"
# The bridges' template: their cloud-config skeleton and the list of their files (path, mode,
# group) in BRIDGE_TEMPLATE; each file's content under BRIDGE_FILES, at its own path. As files
# they compress together with this VM's own (the bridges' bootstrap shares most of its code
# with this VM's): 1.2 KB less user data than their contents inside one JSON document, whose
# escaped line ends break the matches.
BRIDGE_TEMPLATE: Final = "/etc/jitsi/xxl/bridge/template.json"
BRIDGE_FILES: Final = "/etc/jitsi/xxl/bridge/files"
STATE_FILE: Final = "/var/lib/jitsi-xxl/autoscaler-state.json"
UNIT: Final = "jitsi-xxl-autoscaler.service"
COMMAND: Final = f"/usr/bin/python3 {PATH} --config {CONFIG}"
# The variable in the scaler VM's secrets.env that holds the Hetzner API token.
TOKEN_NAME: Final = "HETZNER_API_TOKEN"  # noqa: S105 - a variable's name
# Debian 13 packages the official library (python3-hcloud): apt's signatures and pins
# rather than pip at boot.
PACKAGES: Final = ("python3-hcloud",)

_SPECS: Final = (
    FileSpec(f"scaler/etc/systemd/system/{UNIT}.j2", f"/etc/systemd/system/{UNIT}"),
    FileSpec("scaler/etc/jitsi/xxl/autoscaler.json.j2", CONFIG),
)
_BOOTSTRAP_TEMPLATE: Final = "scaler/usr/local/sbin/jitsi-xxl-bootstrap.j2"
SERVER_TYPE: Final = HETZNER_SCALER_TYPE


def window_epochs(settings: Settings) -> tuple[float, float] | None:
    """When the pool grows and empties around the event window, as on AWS (epoch seconds)."""
    if settings.event is None:
        return None
    start, end = settings.event.window()
    return grow_at(start).timestamp(), shrink_at(end).timestamp()


def config(settings: Settings, plan: Plan, stack: str) -> dict[str, Any]:
    """`autoscaler.json`: what the autoscaler needs to know, nothing secret."""
    window = window_epochs(settings)
    hz = settings.hetzner
    return {
        "secrets_file": SECRETS_FILE,
        "token_name": TOKEN_NAME,
        "api_endpoint": HETZNER_API_ENDPOINT,
        "selector": naming.label_selector(stack, naming.ROLE_BRIDGES),
        "labels": naming.labels(stack, naming.ROLE_BRIDGES),
        "name_prefix": f"{naming.resource_prefix(stack)}-jvb",
        "server_type": settings.bridge_type(),
        "image": hz.image,
        "location": hz.location,
        "network_selector": naming.label_selector(stack, naming.ROLE_NETWORK),
        "ssh_key_selector": naming.label_selector(stack, naming.ROLE_ACCESS),
        "ssh_key_names": [k for k in hz.ssh_keys if not is_public_key(k)],
        "bridge_template": BRIDGE_TEMPLATE,
        "min": plan.bridges.min,
        "max": plan.bridges.max,
        "scale_up_above": STRESS_TARGET,
        "scale_down_below": SCALE_IN_BELOW,
        "up_cooldown_seconds": WARMUP_SECONDS,
        "down_cooldown_seconds": SCALE_IN_COOLDOWN_SECONDS,
        "max_step_up": MAX_STEP_UP,
        "max_step_down": MAX_STEP_DOWN,
        "warmup_seconds": WARMUP_SECONDS,
        "graceful_shutdown_max_seconds": settings.bridges.graceful_shutdown_max_minutes * 60,
        "stats_port": BRIDGE_STATS_PORT,
        "poll_seconds": HETZNER_POLL_SECONDS,
        "placement_group_size": HETZNER_SPREAD_GROUP_SIZE,
        "state_file": STATE_FILE,
        "grow_at": window[0] if window else None,
        "shrink_at": window[1] if window else None,
    }


def policy(settings: Settings, plan: Plan) -> dict[str, Any]:
    """The pool's policy as the readiness report and `xxl plan` describe it."""
    serving: dict[str, str] | str = "always"
    if settings.event is not None:
        start, end = settings.event.window()
        serving = {"from": grow_at(start).isoformat(), "until": shrink_at(end).isoformat()}
    return {
        "scaler": f"{UNIT} on the scaler VM",
        "min": plan.bridges.min,
        "max": plan.bridges.max,
        "signal": "average videobridge stress",
        "scale_up_above": STRESS_TARGET,
        "scale_down_below": SCALE_IN_BELOW,
        "max_step_up": MAX_STEP_UP,
        "max_step_down": MAX_STEP_DOWN,
        "warmup_seconds": WARMUP_SECONDS,
        "drain_max_minutes": settings.bridges.graceful_shutdown_max_minutes,
        "serving": serving,
    }


def describe(p: dict[str, Any]) -> str:
    """`policy` in one line, for `xxl plan`."""
    serving = p["serving"]
    window = (
        f"; serving {serving['from']} to {serving['until']}, empty outside"
        if isinstance(serving, dict)
        else ""
    )
    return (
        f"{p['scaler']}: {p['min']}..{p['max']} bridges on {p['signal']}; up above "
        f"{p['scale_up_above']} ({p['max_step_up']} a step at most), down below "
        f"{p['scale_down_below']} ({p['max_step_down']} a step, drained up to "
        f"{p['drain_max_minutes']} min){window}"
    )


def bridge_template(
    settings: Settings, plan: Plan, packages: PackageSources = BRIDGE_UPSTREAM
) -> tuple[RenderedFile, ...]:
    """The bridges' template: their cloud-config skeleton, the list of the files of its
    archive, and those files as they travel (secrets.env with placeholders, which the
    autoscaler fills on the VM). Root's alone: no other user of this VM needs them."""
    bundle = bridge_bundle(settings, plan, Credentials.placeholders(), packages=packages)
    doc = {
        "cloud_config": cloud_config_skeleton(ROOTFS_ARCHIVE, BOOTSTRAP),
        "files_dir": BRIDGE_FILES,
        "files": [{"path": f.path, "mode": f.mode, "group": f.group} for f in bundle.files],
    }
    return (
        RenderedFile(BRIDGE_TEMPLATE, json.dumps(doc, sort_keys=True, indent=1) + "\n", 0o600),
        *(RenderedFile(BRIDGE_FILES + f.path, f.content, 0o600) for f in bundle.files),
    )


def secrets(settings: Settings, stack: str) -> SecretsDelivery:
    """The scaler VM's secrets: the bridges' login, which it puts into each bridge's user
    data (and the API token, beside them; see scaler_bundle)."""
    return delivery(settings.cloud, stack, "scaler", BRIDGE_SECRETS)


def scaler_bundle(
    settings: Settings,
    plan: Plan,
    creds: Credentials,
    *,
    stack: str = OFFLINE_STACK,
    api_token: str | None = None,
    packages: PackageSources = BRIDGE_UPSTREAM,
) -> VmBundle:
    """Render the scaler VM. `api_token` is the autoscaler's (a stack secret); without one
    it starts, says so and does nothing. `packages` are the bridges' (the twin's archive)."""
    ctx: dict[str, Any] = {
        "autoscaler_config": config(settings, plan, stack),
        "autoscaler_command": COMMAND,
        "autoscaler_unit": UNIT,
        "state_dir": str(Path(STATE_FILE).parent),
        "no_token_status": NO_TOKEN_EXIT,
        "packages": list(PACKAGES),
        "reported_packages": list(PACKAGES),
        "checks": [],
        "report_pool": json.dumps(policy(settings, plan), sort_keys=True),
    }
    how = secrets(settings, stack)
    token = {TOKEN_NAME: api_token} if api_token else {}
    template = bridge_template(settings, plan, packages)
    rootfs = (
        *render_specs(_SPECS, ctx, settings.domain),
        RenderedFile(PATH, SOURCE.read_text(), 0o755),
        *template,
        *carried_files(how, creds, BRIDGE_SECRETS, token),
    )
    # the bridges' placeholders stay: the autoscaler fills them per bridge, not the bootstrap
    ctx |= how.context(tuple(f for f in rootfs if f not in template))
    return vm_bundle(
        settings.cloud, rootfs, lambda extra: render(_BOOTSTRAP_TEMPLATE, {**ctx, **extra})
    )
