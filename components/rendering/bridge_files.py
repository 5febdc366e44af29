"""Every file a videobridge VM holds from us, rendered from the settings and the plan.

All bridges of the pool boot from the same user data; the agent (`bridge_agent.py`, shipped
as it is) gives each its identity at boot, and drains it before it stops. This module
decides the values; the templates under `templates/jvb/` (a mirror of the VM's file system)
only place them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from components.model.credentials import BRIDGE_SECRETS, Credentials
from components.model.planner import Plan
from components.model.ports import (
    BRIDGE_STATS_PORT,
    JVB_MEDIA_PORT,
    JVB_PRIVATE_PORT,
    JVB_WEBSOCKET_PORT,
)
from components.model.project import METADATA_ADDRESS, Cloud
from components.model.settings import Settings
from components.model.xmpp import names
from components.rendering.engine import FileSpec, RenderedFile, render, render_specs
from components.rendering.package_sources import BRIDGE_UPSTREAM, PackageSources
from components.rendering.secrets_delivery import (
    OFFLINE_STACK,
    SecretsDelivery,
    carried_files,
    delivery,
)
from components.rendering.userdata import READY_REPORT, VmBundle, vm_bundle

AGENT_SOURCE: Final = Path(__file__).resolve().parents[1] / "agents" / "bridge_agent.py"
AGENT_PATH: Final = "/usr/local/lib/jitsi-xxl/bridge_agent.py"
AGENT_CONFIG: Final = "/etc/jitsi/xxl/agent.json"
AGENT_COMMAND: Final = f"/usr/bin/python3 {AGENT_PATH} --config {AGENT_CONFIG}"
IDENTITY_FILE: Final = "/etc/jitsi/videobridge/xxl-identity.conf"
METADATA_URL: Final = f"http://{METADATA_ADDRESS}"
# The CloudWatch metric the pool scales on (the Auto Scaling group is its dimension).
STRESS_NAMESPACE: Final = "JitsiXXL"
STRESS_METRIC: Final = "StressLevel"
# Agent cadence: JVB stats and health every poll, a lifecycle heartbeat every minute (the
# hook's heartbeat timeout is five), a metric point every minute.
POLL_SECONDS: Final = 5
HEARTBEAT_SECONDS: Final = 60
METRIC_SECONDS: Final = 60
# The lifecycle hook's heartbeat timeout: the agent retries completing the action this long.
HOOK_HEARTBEAT_SECONDS: Final = 300
# A videobridge whose health check fails this long is not serving: a restart by systemd has
# had its chance, a blip has passed.
UNHEALTHY_AFTER_SECONDS: Final = 180
# Where a drain's start is kept (tmpfs: a reboot forgets it).
DRAIN_STATE_FILE: Final = "/run/jitsi-xxl/drain-started"
# Stop timeout of the drain unit beyond the drain bound: time to log and exit.
DRAIN_STOP_MARGIN_SECONDS: Final = 120

_UNITS: Final = "/etc/systemd/system"
_SPECS: Final = (
    FileSpec(
        # the real package's group (its user is jvb, in group jitsi)
        "jvb/etc/jitsi/videobridge/jvb.conf.j2",
        "/etc/jitsi/videobridge/jvb.conf",
        0o640,
        "jitsi",
    ),
    FileSpec("jvb/etc/jitsi/xxl/agent.json.j2", AGENT_CONFIG),
    FileSpec(
        "jvb/etc/systemd/system/jitsi-xxl-identity.service.j2",
        f"{_UNITS}/jitsi-xxl-identity.service",
    ),
    FileSpec(
        "jvb/etc/systemd/system/jitsi-xxl-drain.service.j2", f"{_UNITS}/jitsi-xxl-drain.service"
    ),
    FileSpec(
        "jvb/etc/systemd/system/jitsi-xxl-agent.service.j2", f"{_UNITS}/jitsi-xxl-agent.service"
    ),
    FileSpec(
        "jvb/etc/systemd/system/jitsi-videobridge2.service.d/jitsi-xxl.conf.j2",
        f"{_UNITS}/jitsi-videobridge2.service.d/jitsi-xxl.conf",
    ),
    FileSpec(
        "jvb/etc/apt/sources.list.d/jitsi-xxl.sources.j2",
        "/etc/apt/sources.list.d/jitsi-xxl.sources",
    ),
    FileSpec(
        "common/etc/apt/preferences.d/jitsi-xxl.pref.j2", "/etc/apt/preferences.d/jitsi-xxl.pref"
    ),
)
_BOOTSTRAP_TEMPLATE: Final = "jvb/usr/local/sbin/jitsi-xxl-bootstrap.j2"


def agent_config(settings: Settings) -> dict[str, Any]:
    """`/etc/jitsi/xxl/agent.json`: what the agent needs to know, nothing secret."""
    return {
        "cloud": settings.cloud.value,
        "jvb_url": f"http://127.0.0.1:{JVB_PRIVATE_PORT}",
        "metadata_url": METADATA_URL,
        "identity_file": IDENTITY_FILE,
        "websockets": settings.bridges.websockets,
        "graceful_shutdown_max_seconds": settings.bridges.graceful_shutdown_max_minutes * 60,
        "poll_seconds": POLL_SECONDS,
        "heartbeat_seconds": HEARTBEAT_SECONDS,
        "metric_seconds": METRIC_SECONDS,
        "metric_namespace": STRESS_NAMESPACE,
        "metric_name": STRESS_METRIC,
        "hook_heartbeat_timeout_seconds": HOOK_HEARTBEAT_SECONDS,
        "unhealthy_after_seconds": UNHEALTHY_AFTER_SECONDS,
        "ready_report": READY_REPORT,
        "drain_state_file": DRAIN_STATE_FILE,
        # the Hetzner autoscaler reads stress here; AWS publishes it to CloudWatch instead
        "stats_port": BRIDGE_STATS_PORT if settings.cloud is Cloud.hetzner else 0,
    }


# Units the bootstrap starts after the videobridge, on both clouds: the drain on stop, and
# the agent (health everywhere; stress and lifecycle on AWS).
AGENT_UNITS: Final = ("jitsi-xxl-drain.service", "jitsi-xxl-agent.service")


def context(
    settings: Settings, plan: Plan, packages: PackageSources = BRIDGE_UPSTREAM
) -> dict[str, Any]:
    """All values the bridge templates place; `packages` is a render option (the twin's
    archive instead of Jitsi's repository), as for the signaling VM."""
    return {
        **names(settings.domain),
        "cloud": settings.cloud.value,
        "signaling_private_ip": plan.network.signaling_private_ip,
        "jvb_websocket_port": JVB_WEBSOCKET_PORT,
        "jvb_media_port": JVB_MEDIA_PORT,
        "websockets": settings.bridges.websockets,
        "graceful_shutdown_max_minutes": settings.bridges.graceful_shutdown_max_minutes,
        "drain_stop_timeout": settings.bridges.graceful_shutdown_max_minutes * 60
        + DRAIN_STOP_MARGIN_SECONDS,
        "release": settings.release,
        "apt_sources": list(packages.sources),
        "prosody_pin": packages.prosody_pin or settings.release.prosody,
        # templates only ever see placeholders; values arrive at boot (secrets_delivery)
        "creds": Credentials.placeholders(),
        "agent_config": agent_config(settings),
        "agent_command": AGENT_COMMAND,
        "agent_units": list(AGENT_UNITS),
        "identity_file": IDENTITY_FILE,
        "checks": [
            {"name": "jvb-health", "target": f"http://127.0.0.1:{JVB_PRIVATE_PORT}/about/health"},
        ],
        "reported_packages": ["jitsi-videobridge2"],
    }


def secrets(settings: Settings, stack: str) -> SecretsDelivery:
    """How a bridge gets its secrets: its own login, nothing else."""
    return delivery(settings.cloud, stack, "jvb", BRIDGE_SECRETS)


def bridge_bundle(
    settings: Settings,
    plan: Plan,
    creds: Credentials,
    *,
    stack: str = OFFLINE_STACK,
    packages: PackageSources = BRIDGE_UPSTREAM,
) -> VmBundle:
    """Render a bridge VM; raises UserDataTooLargeError if the user data is over a cap."""
    ctx = context(settings, plan, packages)
    specs = _SPECS
    how = secrets(settings, stack)
    rootfs = (
        *render_specs(specs, ctx, settings.domain),
        RenderedFile(AGENT_PATH, AGENT_SOURCE.read_text(), 0o755),
        *carried_files(how, creds, BRIDGE_SECRETS),
    )
    ctx |= how.context(rootfs)
    return vm_bundle(
        settings.cloud, rootfs, lambda extra: render(_BOOTSTRAP_TEMPLATE, {**ctx, **extra})
    )
