"""Every file the signaling VM holds from us, rendered from the settings and the plan.

The VM runs the main prosody, one prosody per visitor node (`prosody-v@N`), jicofo, nginx
with the web app, and coturn. This module decides the values; the templates under
`templates/signaling/` (a mirror of the VM's file system) only place them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

from components.model.admission import admission, audience_capacity
from components.model.credentials import SIGNALING_SECRETS, Credentials, TlsMaterial
from components.model.planner import (
    Plan,
    VisitorNode,
    colibri_ws_route,
    node_names,
    reserved_port_ranges,
)
from components.model.ports import (
    HTTPS_BACKEND_PORT,
    HTTPS_PORT,
    JICOFO_REST_PORT,
    JVB_WEBSOCKET_PORT,
    MAIN_C2S_PORT,
    MAIN_HTTP_PORT,
    MAIN_S2S_PORT,
    TURN_PORT,
    TURN_RELAY_MAX_PORT,
    TURN_RELAY_MIN_PORT,
    TURNS_BACKEND_PORT,
    TURNS_PORT,
)
from components.model.project import VISITOR_DOMAIN_SUFFIX
from components.model.settings import AuthMode, Promotion, Settings, TlsMode
from components.model.tokens import APP_ID, STAGE_GROUP
from components.model.turn import (
    TURN_ALPNS,
    coturn_range,
    credential_ttl,
    denied_peers,
    public_address,
    relay_limits,
)
from components.model.xmpp import names
from components.rendering.engine import FileSpec, RenderedFile, render, render_specs
from components.rendering.package_sources import UPSTREAM, PackageSources
from components.rendering.secrets_delivery import (
    OFFLINE_STACK,
    SecretsDelivery,
    carried_files,
    delivery,
)
from components.rendering.userdata import VmBundle, vm_bundle

LOOPBACK: Final = "127.0.0.1"
# Where jitsi-meet-prosody installs Jitsi's prosody modules.
JITSI_PLUGINS: Final = "/usr/share/jitsi-meet/prosody-plugins/"
# Our own prosody modules (components/agents/prosody/), beside Jitsi's.
XXL_PLUGINS: Final = "/usr/local/lib/jitsi-xxl/prosody-plugins/"
XXL_PLUGIN_SOURCES: Final = Path(__file__).resolve().parents[1] / "agents" / "prosody"
# What the bootstrap installs (certbot too, with Let's Encrypt). lua-unbound: prosody's
# resolver; without it prosody warns and falls back to a blocking one. libnginx-mod-stream:
# Debian 13 builds nginx's stream module (the TLS multiplexer on 443) as a separate package.
SIGNALING_PACKAGES: Final = (
    "nginx", "libnginx-mod-stream", "prosody", "lua-unbound", "coturn", "openssl", "curl",
    "nftables",
    "jitsi-meet-prosody", "jitsi-meet-web", "jitsi-meet-web-config", "jicofo",
)  # fmt: skip
# Jitsi's plugins require these pure-Lua libraries, which Debian installs for Lua 5.1-5.3
# only; prosody 13 runs Lua 5.4 (see the bootstrap's lua_libraries).
LUA54_MISSING: Final = ("inspect", "basexx")


@dataclass(frozen=True)
class Layout:
    """Render options: where the rendered files live and listen, and where packages come
    from. The defaults are the cloud VM's; the twin changes only `packages`."""

    root: str = ""
    plugin_paths: tuple[str, ...] = (JITSI_PLUGINS,)
    https_listen: tuple[str, ...] = ("443", "[::]:443")
    http_listen: tuple[str, ...] = ("80", "[::]:80")
    packages: PackageSources = UPSTREAM

    def path(self, absolute: str) -> str:
        return self.root + absolute


def main_s2s_routes(plan: Plan) -> dict[str, str]:
    """The main prosody's `s2sout_override`: every name of every node to its s2s port."""
    return {name: f"tcp://{LOOPBACK}:{n.s2s_port}" for n in plan.nodes for name in n.s2s_names}


def vnode_s2s_names(domain: str) -> tuple[str, ...]:
    """Main-side names a visitor node talks to (chat, promotion, presence, polls)."""
    n = names(domain)
    return (n["muc"], n["visitors_component"], n["domain"], n["polls"])


def cert_names(domain: str) -> list[str]:
    """The names of the self-signed certificate prosody offers: the main hosts, and the
    visitor nodes by one wildcard. s2s between the main prosody and the nodes uses TLS but
    verifies no name (self-signed, `s2s_secure_auth = false`, dialback), so listing each
    node's four names would only cost user data (64 nodes must fit AWS's 16 KB)."""
    main = [v for k, v in names(domain).items() if not k.endswith("_jid")]
    return list(dict.fromkeys([*main, f"*.{VISITOR_DOMAIN_SUFFIX}"]))


def readiness_checks(plan: Plan) -> list[dict[str, str]]:
    """What the bootstrap waits for before it reports the VM ready: name and probe target.

    `tcp:HOST:PORT` must accept a connection; an `http://` URL must answer 2xx.
    """
    checks = [
        {"name": "prosody-c2s-loopback", "target": f"tcp:{LOOPBACK}:{MAIN_C2S_PORT}"},
        {
            "name": "prosody-c2s-private",
            "target": f"tcp:{plan.network.signaling_private_ip}:{MAIN_C2S_PORT}",
        },
        {"name": "prosody-http", "target": f"tcp:{LOOPBACK}:{MAIN_HTTP_PORT}"},
    ]
    for n in plan.nodes:
        checks.append({"name": f"prosody-{n.name}-c2s", "target": f"tcp:{LOOPBACK}:{n.c2s_port}"})
        checks.append({"name": f"prosody-{n.name}-http", "target": f"tcp:{LOOPBACK}:{n.http_port}"})
    checks += [
        {"name": "jicofo", "target": f"http://{LOOPBACK}:{JICOFO_REST_PORT}/about/health"},
        {"name": "nginx-https", "target": f"tcp:{LOOPBACK}:{HTTPS_PORT}"},
        {"name": "nginx-web", "target": f"tcp:{LOOPBACK}:{HTTPS_BACKEND_PORT}"},
        # coturn takes no plain TCP (`no-tcp`): its TLS port, where nginx sends TURN clients
        {"name": "coturn", "target": f"tcp:{LOOPBACK}:{TURNS_PORT}"},
    ]
    return checks


def turn_view(settings: Settings, plan: Plan) -> dict[str, Any]:
    """coturn's policy (components/model/turn.py) as the templates place it."""
    limits = relay_limits(audience_capacity(plan))
    event = settings.event
    alpns = "|".join(a.replace(".", "\\.") for a in TURN_ALPNS)
    return {
        "denied_peers": [
            {"range": coturn_range(net), "reason": why}
            for net, why in denied_peers(plan.network.cidr)
        ],
        "user_quota": limits.user_quota,
        "total_quota": limits.total_quota,
        "max_bps": limits.max_bps,
        "credential_ttl": credential_ttl(
            event.start if event else None, event.end if event else None
        ),
        "public_address": public_address(settings.cloud).value,
        # $ssl_preread_alpn_protocols lists the offered protocols, comma-separated
        "alpn_regex": f"(^|,)({alpns})(,|$)",
        "relay_min_port": TURN_RELAY_MIN_PORT,
        "relay_max_port": TURN_RELAY_MAX_PORT,
        "backend_port": TURNS_BACKEND_PORT,
    }


# The visitor nodes' configs travel as one template that the bootstrap expands per node: they
# differ only in the node's number and ports, and 64 copies would not fit the user data caps.
NODE_TEMPLATE: Final = "/etc/jitsi/xxl/prosody-vN.cfg.lua"
NODE_INDEX_TOKEN: Final = "@@XXL_NODE@@"  # noqa: S105 - a placeholder, not a secret
NODE_PORT_TOKENS: Final = {
    "c2s_port": "@@XXL_NODE_C2S_PORT@@",
    "s2s_port": "@@XXL_NODE_S2S_PORT@@",
    "http_port": "@@XXL_NODE_HTTP_PORT@@",
}


def _symbolic_node() -> VisitorNode:
    """A node whose number and ports are the tokens: rendering it gives the template."""
    name, domain, muc, polls = node_names(NODE_INDEX_TOKEN)
    tokens: dict[str, Any] = dict(NODE_PORT_TOKENS)
    return VisitorNode(
        index=cast(int, NODE_INDEX_TOKEN), name=name, domain=domain, muc=muc, polls=polls, **tokens
    )


def expand_node(template: str, node: VisitorNode) -> str:
    """What the bootstrap makes of the template for `node` (the same substitutions, and its
    `$(<file)` read drops trailing newlines, printf puts one back)."""
    text = template.rstrip("\n")
    for field, token in NODE_PORT_TOKENS.items():
        text = text.replace(token, str(getattr(node, field)))
    return text.replace(NODE_INDEX_TOKEN, str(node.index)) + "\n"


def _node_view(node: VisitorNode, layout: Layout) -> dict[str, Any]:
    return {
        "index": node.index,
        "name": node.name,
        "domain": node.domain,
        "muc": node.muc,
        "polls": node.polls,
        "c2s_port": node.c2s_port,
        "s2s_port": node.s2s_port,
        "http_port": node.http_port,
        "config": layout.path(f"{node.config_dir}/prosody.cfg.lua"),
        "data_dir": layout.path(node.data_dir),
        "log_dir": layout.path(node.log_dir),
        "pidfile": layout.path(f"{node.run_dir}/prosody.pid"),
    }


def context(settings: Settings, plan: Plan, layout: Layout = Layout()) -> dict[str, Any]:
    """All values the signaling templates place."""
    hosts = names(settings.domain)
    ws_regex, ws_target = colibri_ws_route(settings.network.cidr, JVB_WEBSOCKET_PORT)
    promotion = settings.visitors.promotion
    tls_dir = layout.path("/etc/jitsi/xxl/tls")
    return {
        **hosts,
        "layout_root": layout.root,
        "plan": plan,
        "nodes": [_node_view(n, layout) for n in plan.nodes],
        "loopback": LOOPBACK,
        "private_ip": plan.network.signaling_private_ip,
        "network_cidr": plan.network.cidr,
        "main_c2s_port": MAIN_C2S_PORT,
        "main_s2s_port": MAIN_S2S_PORT,
        "main_http_port": MAIN_HTTP_PORT,
        "jicofo_rest_port": JICOFO_REST_PORT,
        "jvb_websocket_port": JVB_WEBSOCKET_PORT,
        "s2sout_override": main_s2s_routes(plan),
        "s2s_whitelist": list(main_s2s_routes(plan)),
        "vnode_s2s_whitelist": list(vnode_s2s_names(settings.domain)),
        "vnode_s2sout_override": dict.fromkeys(
            vnode_s2s_names(settings.domain), f"tcp://{LOOPBACK}:{MAIN_S2S_PORT}"
        ),
        "auto_allow_promotion": promotion is Promotion.auto,
        "jwt": (
            {"app_id": APP_ID, "stage_group": STAGE_GROUP}
            if settings.auth.mode is AuthMode.jwt
            else None
        ),
        "conference_request_url": (
            f"https://{settings.domain}/conference-request/v1"
            if promotion is Promotion.moderated
            else None
        ),
        "visitors_ignore_list": [hosts["recorder"]],
        # ours, beside the package's (see cert_names)
        "prosody_certs": {
            "key": layout.path("/etc/prosody/certs/jitsi-xxl.key"),
            "crt": layout.path("/etc/prosody/certs/jitsi-xxl.crt"),
        },
        "plugin_paths": [*layout.plugin_paths, layout.path(XXL_PLUGINS)],
        "https_listen": list(layout.https_listen),
        "http_listen": list(layout.http_listen),
        "c2s_interfaces": list(dict.fromkeys((LOOPBACK, plan.network.signaling_private_ip))),
        "cert_names": cert_names(settings.domain),
        "reserved_ports": reserved_port_ranges(plan.nodes),
        "main_data_dir": layout.path("/var/lib/prosody"),
        "main_log_dir": layout.path("/var/log/prosody"),
        "main_pidfile": layout.path("/run/prosody/prosody.pid"),
        "tls_crt": f"{tls_dir}/{settings.domain}.crt",
        "tls_key": f"{tls_dir}/{settings.domain}.key",
        "tls_mode": settings.tls.mode.value,
        "tls_email": settings.tls.email or "",
        "acme_webroot": layout.path("/var/www/jitsi-xxl-acme"),
        "turn_port": TURN_PORT,
        "turns_port": TURNS_PORT,
        "https_port": HTTPS_PORT,
        "https_backend_port": HTTPS_BACKEND_PORT,
        "turn": turn_view(settings, plan),
        "colibri_ws_regex": ws_regex,
        "colibri_ws_target": ws_target,
        "release": settings.release,
        "apt_sources": list(layout.packages.sources),
        "prosody_pin": layout.packages.prosody_pin or settings.release.prosody,
        "packages": list(SIGNALING_PACKAGES),
        "lua54_missing": list(LUA54_MISSING),
        "admission": admission(plan, settings.visitors.viewers_per_address),
        # templates only ever see placeholders; values arrive at boot (secrets_delivery)
        "creds": Credentials.placeholders(),
        "checks": readiness_checks(plan),
        "reported_packages": ["prosody", "jicofo", "jitsi-meet-web", "nginx", "coturn"],
    }


_MAIN_SPECS: Final = (
    FileSpec(
        "signaling/etc/prosody/prosody.cfg.lua.j2", "/etc/prosody/prosody.cfg.lua", 0o640, "prosody"
    ),
    FileSpec(
        "signaling/etc/prosody/conf.avail/DOMAIN.cfg.lua.j2",
        "/etc/prosody/conf.avail/{domain}.cfg.lua",
        0o640,
        "prosody",
    ),
    FileSpec(
        "signaling/etc/systemd/system/prosody-v@.service.j2",
        "/etc/systemd/system/prosody-v@.service",
    ),
    FileSpec(
        "signaling/etc/jitsi/jicofo/jicofo.conf.j2",
        "/etc/jitsi/jicofo/jicofo.conf",
        0o640,
        "jitsi",  # the real jicofo package's group (its user is jicofo, in group jitsi)
    ),
    FileSpec("signaling/etc/nginx/nginx.conf.j2", "/etc/nginx/nginx.conf"),
    FileSpec("signaling/etc/nginx/stream.conf.j2", "/etc/nginx/stream.conf"),
    FileSpec(
        "signaling/etc/systemd/system/prosody.service.d/jitsi-xxl.conf.j2",
        "/etc/systemd/system/prosody.service.d/jitsi-xxl.conf",
    ),
    FileSpec(
        "signaling/etc/systemd/system/nginx.service.d/jitsi-xxl.conf.j2",
        "/etc/systemd/system/nginx.service.d/jitsi-xxl.conf",
    ),
    FileSpec(
        "signaling/etc/nginx/sites-available/DOMAIN.conf.j2",
        "/etc/nginx/sites-available/{domain}.conf",
    ),
    FileSpec(
        "signaling/etc/jitsi/meet/DOMAIN-xxl-config.js.j2",
        "/etc/jitsi/meet/{domain}-xxl-config.js",
    ),
    FileSpec("signaling/etc/sysctl.d/60-jitsi-xxl.conf.j2", "/etc/sysctl.d/60-jitsi-xxl.conf"),
    FileSpec("signaling/etc/turnserver.conf.j2", "/etc/turnserver.conf", 0o640, "turnserver"),
    FileSpec(
        "signaling/etc/apt/sources.list.d/jitsi-xxl.sources.j2",
        "/etc/apt/sources.list.d/jitsi-xxl.sources",
    ),
    FileSpec(
        "common/etc/apt/preferences.d/jitsi-xxl.pref.j2", "/etc/apt/preferences.d/jitsi-xxl.pref"
    ),
)
_NODE_SPEC: Final = FileSpec(
    "signaling/etc/prosody-vN/prosody.cfg.lua.j2",
    "/etc/prosody-{node}/prosody.cfg.lua",
    0o640,
    "prosody",
)
_BOOTSTRAP_TEMPLATE: Final = "signaling/usr/local/sbin/jitsi-xxl-bootstrap.j2"


def secrets(settings: Settings, stack: str) -> SecretsDelivery:
    """How the signaling VM gets its secrets (all of them: it runs every service)."""
    return delivery(settings.cloud, stack, "signaling", SIGNALING_SECRETS)


def rootfs_files(
    settings: Settings,
    plan: Plan,
    creds: Credentials,
    tls: TlsMaterial | None = None,
    layout: Layout = Layout(),
    *,
    stack: str = OFFLINE_STACK,
) -> tuple[RenderedFile, ...]:
    """The files the bootstrap unpacks onto the VM (everything but the bootstrap itself)."""
    ctx = context(settings, plan, layout)
    files = list(render_specs(_MAIN_SPECS, ctx, settings.domain, layout.root))
    template = FileSpec(_NODE_SPEC.template, NODE_TEMPLATE, _NODE_SPEC.mode, _NODE_SPEC.group)
    symbolic = {**ctx, "node": _node_view(_symbolic_node(), layout)}
    files += render_specs([template], symbolic, settings.domain, layout.root)
    if settings.tls.mode is TlsMode.provided:
        if tls is None:
            raise ValueError("tls.mode is provided but no certificate was given")
        files += [
            RenderedFile(ctx["tls_crt"], tls.certificate.rstrip("\n") + "\n", 0o644),
            RenderedFile(ctx["tls_key"], tls.private_key.rstrip("\n") + "\n", 0o600),
        ]
    files += [
        RenderedFile(layout.path(XXL_PLUGINS) + src.name, src.read_text())
        for src in sorted(XXL_PLUGIN_SOURCES.glob("mod_*.lua"))
    ]
    files += carried_files(secrets(settings, stack), creds, SIGNALING_SECRETS)
    return tuple(sorted(files, key=lambda f: f.path))


def s2s_snippet(settings: Settings, plan: Plan) -> str:
    """The main prosody's s2s settings (`s2sout_override`, `s2s_whitelist`) as Lua."""
    return render("outputs/s2s.cfg.lua.j2", context(settings, plan))


def jicofo_visitors(settings: Settings, plan: Plan, creds: Credentials) -> str:
    """jicofo's visitors HOCON: `jicofo.visitors` and one `jicofo.xmpp.visitors.vN` per node.
    A stack output for a jicofo run elsewhere, so it holds the real password (and is secret)."""
    return render("outputs/jicofo-visitors.conf.j2", {**context(settings, plan), "creds": creds})


@dataclass(frozen=True)
class SignalingBundle:
    """Everything rendered for the signaling VM, plus the stack's two config outputs."""

    vm: VmBundle
    s2s_config: str
    jicofo_visitors_config: str

    @property
    def files(self) -> tuple[RenderedFile, ...]:
        """Every file the VM holds from us once booted."""
        return self.vm.files

    @property
    def user_data(self) -> str:
        return self.vm.user_data


def signaling_bundle(
    settings: Settings,
    plan: Plan,
    creds: Credentials,
    tls: TlsMaterial | None = None,
    layout: Layout = Layout(),
    *,
    stack: str = OFFLINE_STACK,
) -> SignalingBundle:
    """Render the signaling VM; raises UserDataTooLargeError if the user data is over a cap."""
    ctx = context(settings, plan, layout)
    rootfs = rootfs_files(settings, plan, creds, tls, layout, stack=stack)
    ctx |= secrets(settings, stack).context(rootfs)
    template_path = layout.path(NODE_TEMPLATE)

    def node_configs(sent: dict[str, RenderedFile]) -> list[RenderedFile]:
        template = sent[template_path]
        return [
            RenderedFile(
                layout.path(f"{n.config_dir}/prosody.cfg.lua"),
                expand_node(template.content, n),
                template.mode,
                template.group,
            )
            for n in plan.nodes
        ]

    ctx |= {
        "node_template": template_path,
        "node_tokens": {"index": NODE_INDEX_TOKEN, **NODE_PORT_TOKENS},
    }
    vm = vm_bundle(
        settings.cloud,
        rootfs,
        lambda extra: render(_BOOTSTRAP_TEMPLATE, {**ctx, **extra}),
        layout.root,
        node_configs,
    )
    return SignalingBundle(
        vm=vm,
        s2s_config=s2s_snippet(settings, plan),
        jicofo_visitors_config=jicofo_visitors(settings, plan, creds),
    )
