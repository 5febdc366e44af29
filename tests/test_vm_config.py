"""Guards for what the twin found wrong in the signaling VM: each fails if its defect returns.

The twin (tests/test_twin.py) proves these on the booted VM; these tests read the rendered
files, so a regression shows in seconds and names the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pyhocon import ConfigFactory

from components.model.admission import DEFAULT_NR_OPEN, Admission, admission
from components.model.planner import MAX_NODES, Plan
from components.model.planner import plan as plan_of
from components.model.settings import MAX_PER_NODE, Settings, StackFile, parse_settings
from components.model.xmpp import names
from components.rendering.engine import RenderedFile
from components.rendering.signaling_files import NODE_TEMPLATE, XXL_PLUGIN_SOURCES
from tests.conftest import UPSTREAM, render_stack

PLUGINS = UPSTREAM / "jitsi-meet" / "resources" / "prosody-plugins"


def lua_configs(files: tuple[RenderedFile, ...]) -> list[RenderedFile]:
    return [f for f in files if f.path.endswith(".cfg.lua")]


def global_section(config: str) -> str:
    """A prosody config up to its first VirtualHost or Component."""
    return re.split(r"^(?:VirtualHost|Component)\b", config, maxsplit=1, flags=re.M)[0]


def enabled_modules(config: str) -> set[str]:
    found: set[str] = set()
    for block in re.findall(r"modules_enabled\s*=\s*\{(.*?)\}", config, re.S):
        body = re.sub(r"--[^\n]*", "", block)
        found |= set(re.findall(r'"([^"]+)"', body))
    return found


def file(files: tuple[RenderedFile, ...], suffix: str) -> str:
    return next(f.content for f in files if f.path.endswith(suffix))


def test_focus_is_admin_of_the_main_prosody(stack: StackFile) -> None:
    _, bundle = render_stack(stack.settings)
    main = global_section(file(bundle.files, "/etc/prosody/prosody.cfg.lua"))
    focus = names(stack.settings.domain)["focus_jid"]
    assert re.search(rf'^admins\s*=\s*\{{[^}}]*"{re.escape(focus)}"', main, re.M), main


def test_no_removed_module_is_enabled(stack: StackFile) -> None:
    _, bundle = render_stack(stack.settings)
    for f in lua_configs(bundle.files):
        assert "polls" not in enabled_modules(f.content), f"{f.path} enables removed module polls"


def test_every_jitsi_module_exists_upstream(stack: StackFile) -> None:
    """Every enabled module is prosody's own or one of Jitsi's real plugins."""
    if not PLUGINS.is_dir():
        pytest.skip(f"needs Jitsi's plugins at {PLUGINS} (../shared/upstream beside the checkout)")
    prosody_own = {
        p.stem.removeprefix("mod_") for p in Path("/usr/lib/prosody/modules").rglob("mod_*.lua")
    }
    if not prosody_own:
        pytest.skip("needs Debian's prosody for its module list")
    jitsi = {p.stem.removeprefix("mod_") for p in PLUGINS.glob("mod_*.lua")}
    ours = {p.stem.removeprefix("mod_") for p in XXL_PLUGIN_SOURCES.glob("mod_*.lua")}
    # prosody 13 modules that Debian 12's 0.12 lacks (the VM runs 13)
    prosody_13 = {"s2s_bidi"}
    _, bundle = render_stack(stack.settings)
    for f in lua_configs(bundle.files):
        unknown = enabled_modules(f.content) - prosody_own - jitsi - prosody_13 - ours
        assert not unknown, f"{f.path}: no such module {sorted(unknown)}"


def test_module_check_catches_an_invented_module() -> None:
    config = 'modules_enabled = { "ping"; -- "commented"\n "no_such_module" }'
    assert enabled_modules(config) == {"ping", "no_such_module"}


def test_listen_backlog_is_a_network_setting(stack: StackFile) -> None:
    _, bundle = render_stack(stack.settings)
    for f in lua_configs(bundle.files):
        assert not re.search(r"^\s*tcp_backlog\s*=", f.content, re.M), (
            f"{f.path}: top-level tcp_backlog"
        )
    for suffix in ("/etc/prosody/prosody.cfg.lua", "/etc/prosody-v1/prosody.cfg.lua"):
        main = global_section(file(bundle.files, suffix))
        assert re.search(r"^network_settings\s*=\s*\{\s*tcp_backlog\s*=\s*\d+", main, re.M), suffix


def limits_of(settings: Settings) -> Admission:
    return admission(plan_of(settings), settings.visitors.viewers_per_address)


def sysctl_values(text: str) -> dict[str, int | str]:
    values: dict[str, int | str] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = int(value) if value.strip().isdigit() else value.strip()
    return values


def backlogs(files: tuple[RenderedFile, ...], domain: str) -> dict[str, int]:
    """Every listen backlog rendered: nginx's listeners and each prosody's tcp_backlog."""
    found: dict[str, int] = {}
    for f in files:
        if f.path.endswith(".cfg.lua") and not f.path.endswith(NODE_TEMPLATE):
            m = re.search(r"^network_settings = \{ tcp_backlog = (\d+) \}$", f.content, re.M)
            if m:
                found[f.path] = int(m[1])
    for suffix in ("/etc/nginx/stream.conf", f"/etc/nginx/sites-available/{domain}.conf"):
        for n, listen in enumerate(re.findall(r"^\s*listen [^;]*;", file(files, suffix), re.M)):
            m = re.search(r"\bbacklog=(\d+)", listen)
            if m:
                found[f"{suffix} listen {n + 1}"] = int(m[1])
    return found


def backlog_problems(files: tuple[RenderedFile, ...], domain: str, nodes: int) -> list[str]:
    """What is wrong with the accept queues: a prosody or public listener without a sized
    backlog, one above somaxconn (the kernel would cut it down), a node above the main."""
    sysctl = sysctl_values(file(files, "/etc/sysctl.d/60-jitsi-xxl.conf"))
    somaxconn, syn = sysctl.get("net.core.somaxconn"), sysctl.get("net.ipv4.tcp_max_syn_backlog")
    if not isinstance(somaxconn, int) or not isinstance(syn, int):
        return ["the sysctl file sets no somaxconn or tcp_max_syn_backlog"]
    problems = [] if syn >= somaxconn else [f"tcp_max_syn_backlog {syn} below somaxconn"]
    found = backlogs(files, domain)
    main = found.get("/etc/prosody/prosody.cfg.lua")
    prosodies = [p for p in found if p.endswith(".cfg.lua")]
    if main is None or len(prosodies) != 1 + nodes:
        problems.append(f"not every prosody sets its backlog: {sorted(prosodies)}")
    public = [k for k in found if "listen" in k]
    if len(public) < 3:  # 443 on IPv4 and IPv6, and the https server behind them
        problems.append(f"public listeners without a backlog: only {public}")
    problems += [
        f"{k}: backlog {v} above somaxconn {somaxconn}" for k, v in found.items() if v > somaxconn
    ]
    problems += [
        f"{k}: backlog {v} above the main prosody's {main}"
        for k, v in found.items()
        if main is not None and "/etc/prosody-v" in k and v > main
    ]
    return problems


def test_every_listen_backlog_fits_the_kernels_queue(stack: StackFile) -> None:
    plan, bundle = render_stack(stack.settings)
    assert backlog_problems(bundle.files, stack.settings.domain, len(plan.nodes)) == []
    a = limits_of(stack.settings)
    assert set(backlogs(bundle.files, stack.settings.domain).values()) <= {
        a.listen_backlog,
        a.main_backlog,
        a.node_backlog,
    }


def test_backlog_check_catches_what_it_guards(stack: StackFile) -> None:
    plan, bundle = render_stack(stack.settings)
    domain, nodes = stack.settings.domain, len(plan.nodes)

    def with_file(suffix: str, old: str, new: str) -> tuple[RenderedFile, ...]:
        return tuple(
            RenderedFile(f.path, f.content.replace(old, new), f.mode, f.group)
            if f.path.endswith(suffix)
            else f
            for f in bundle.files
        )

    a = limits_of(stack.settings)
    big = with_file(
        "/etc/prosody-v1/prosody.cfg.lua", f"tcp_backlog = {a.node_backlog}", "tcp_backlog = 999999"
    )
    assert any("above somaxconn" in p for p in backlog_problems(big, domain, nodes))
    unsized = with_file("/etc/nginx/stream.conf", f" backlog={a.listen_backlog}", "")
    assert any("without a backlog" in p for p in backlog_problems(unsized, domain, nodes))
    low = with_file("60-jitsi-xxl.conf", f"somaxconn = {a.listen_backlog}", "somaxconn = 128")
    assert any("above somaxconn 128" in p for p in backlog_problems(low, domain, nodes))
    gone = with_file("/etc/prosody/prosody.cfg.lua", "network_settings", "-- network_settings")
    assert any("not every prosody" in p for p in backlog_problems(gone, domain, nodes))


def limits(plan: Plan, files: tuple[RenderedFile, ...]) -> tuple[int, int]:
    conf = file(files, "/etc/nginx/nginx.conf")
    m_conn = re.search(r"^\s*worker_connections\s+(\d+);", conf, re.M)
    m_files = re.search(r"^worker_rlimit_nofile\s+(\d+);", conf, re.M)
    assert m_conn, conf
    assert m_files, conf
    return int(m_conn[1]), int(m_files[1])


def test_nginx_holds_the_whole_audience_in_one_worker(stack: StackFile) -> None:
    """Four connections per WebSocket viewer (client to the multiplexer on 443, the
    multiplexer to the https server and that server's end, the one to its prosody), all of
    them possibly in one worker, each an open file besides the worker's logs and listeners."""
    plan, bundle = render_stack(stack.settings)
    connections, nofile = limits(plan, bundle.files)
    viewers = plan.max_per_node * len(plan.nodes) + plan.main_participants
    assert connections >= 4 * viewers
    assert nofile > connections


def test_nginx_upstream_zone_fits_every_node(stack: StackFile) -> None:
    plan, bundle = render_stack(stack.settings)
    site = file(bundle.files, f"/etc/nginx/sites-available/{stack.settings.domain}.conf")
    sizes = {int(k) for k in re.findall(r"zone upstreams (\d+)k;", site)}
    assert sizes == {16 * (len(plan.nodes) + 1)}


def test_main_prosody_open_file_limit(stack: StackFile) -> None:
    _, bundle = render_stack(stack.settings)
    a = limits_of(stack.settings)
    dropin = file(bundle.files, "/etc/systemd/system/prosody.service.d/jitsi-xxl.conf")
    assert re.findall(r"^LimitNOFILE=(\d+)$", dropin, re.M) == [str(a.main_nofile)]
    assert a.main_nofile >= 65536


def test_nginx_unit_grants_the_workers_open_files(stack: StackFile) -> None:
    """The twin's storm found workers refused their worker_rlimit_nofile (setrlimit: EPERM)
    under a lower hard limit; the unit now grants it."""
    _, bundle = render_stack(stack.settings)
    a = limits_of(stack.settings)
    dropin = file(bundle.files, "/etc/systemd/system/nginx.service.d/jitsi-xxl.conf")
    assert re.findall(r"^LimitNOFILE=(\d+)$", dropin, re.M) == [str(a.worker_rlimit_nofile)]
    conf = file(bundle.files, "/etc/nginx/nginx.conf")
    assert f"worker_rlimit_nofile {a.worker_rlimit_nofile};" in conf


def test_visitor_node_open_file_limit(stack: StackFile) -> None:
    """One unit template for every node, so one value, from the per-node cap."""
    plan, bundle = render_stack(stack.settings)
    a = limits_of(stack.settings)
    unit = file(bundle.files, "/etc/systemd/system/prosody-v@.service")
    assert re.findall(r"^LimitNOFILE=(\d+)$", unit, re.M) == [str(a.node_nofile)]
    assert a.node_nofile >= max(65536, 4 * plan.max_per_node)


def big_settings() -> Settings:
    """The largest plan the model allows: 64 nodes of 10,000."""
    return parse_settings(
        {"cloud": "aws", "domain": "meet.example.org", "audience": MAX_NODES * MAX_PER_NODE,
         "tls": {"mode": "self-signed"},
         "visitors": {"nodes": MAX_NODES, "max_per_node": MAX_PER_NODE}}
    )  # fmt: skip


def test_nr_open_is_rendered_exactly_when_a_limit_needs_it(stack: StackFile) -> None:
    """fs.nr_open belongs to the whole machine: in a container (the twin) setting it fails, so
    it appears only where an open-file limit is above Linux's default."""
    _, bundle = render_stack(stack.settings)
    assert "fs.nr_open" not in file(bundle.files, "/etc/sysctl.d/60-jitsi-xxl.conf")
    big = big_settings()
    plan, bundle = render_stack(big)
    sysctl = sysctl_values(file(bundle.files, "/etc/sysctl.d/60-jitsi-xxl.conf"))
    nr_open = sysctl.get("fs.nr_open")
    _, nofile = limits(plan, bundle.files)
    assert nofile > DEFAULT_NR_OPEN
    assert isinstance(nr_open, int)
    assert nr_open >= nofile
    assert backlog_problems(bundle.files, big.domain, len(plan.nodes)) == []


def location(site: str, header: str) -> str:
    """The body of the nginx location opened by `header` (up to its closing brace)."""
    start = site.index(header + " {") + len(header) + 2
    depth, end = 1, start
    while depth:
        depth += {"{": 1, "}": -1}.get(site[end], 0)
        end += 1
    return site[start : end - 1]


STORM_LOCATIONS = {
    "location = /xmpp-websocket": "websocket",
    "location = /http-bind": "bosh",
    "location ~ ^/conference-request/v1(/.*)?$": "conference_request",
}


def storm_limit_problems(site: str, a: Admission) -> list[str]:
    """What is wrong with the per-address limits: a storm location without its limit or with
    a different burst, a zone used but not declared, or declared twice."""
    problems = []
    declared = re.findall(
        r"^limit_(?:req|conn)_zone \$binary_remote_addr zone=(\w+):\d+m", site, re.M
    )
    problems += [
        f"zone {z} declared {declared.count(z)} times"
        for z in set(declared)
        if declared.count(z) > 1
    ]
    used = set(re.findall(r"limit_req zone=(\w+)", site)) | set(
        re.findall(r"limit_conn (\w+) \d+;", site)
    )
    problems += [f"zone {z} used but not declared" for z in sorted(used - set(declared))]
    for header, kind in STORM_LOCATIONS.items():
        if header + " {" not in site:
            problems.append(f"no {header}")
            continue
        body = location(site, header)
        if kind == "bosh":
            # a request per poll: held by open connections, never by a request rate
            if "limit_req " in body:
                problems.append(f"{header}: a request rate would refuse polling BOSH viewers")
        else:
            limit = getattr(a, kind)
            if f"limit_req zone={limit.zone} burst={limit.burst} nodelay;" not in body:
                problems.append(f"{header}: no limit_req zone={limit.zone} burst={limit.burst}")
        if (
            kind in ("websocket", "bosh")
            and f"limit_conn {a.connection_zone} {a.connections_per_address};" not in body
        ):
            problems.append(f"{header}: no limit_conn {a.connection_zone}")
    for directive in ("limit_req_status", "limit_conn_status"):
        if f"{directive} {a.refused_status};" not in site:
            problems.append(f"refusals are not {a.refused_status} ({directive})")
    return problems


def test_nginx_limits_the_storm_per_address(stack: StackFile) -> None:
    _, bundle = render_stack(stack.settings)
    a = limits_of(stack.settings)
    site = file(bundle.files, f"/etc/nginx/sites-available/{stack.settings.domain}.conf")
    assert storm_limit_problems(site, a) == []
    rate = re.search(rf"zone={a.websocket.zone}:(\d+)m rate=(\d+)r/s;", site)
    assert rate, site
    assert (int(rate[1]), int(rate[2])) == (a.address_zone_mib, a.websocket.rate)
    # nginx.conf and stream.conf declare no zone of their own: each is declared once, here
    for other in ("/etc/nginx/nginx.conf", "/etc/nginx/stream.conf"):
        assert "_zone " not in file(bundle.files, other), other


def test_storm_limit_check_catches_what_it_guards(stack: StackFile) -> None:
    _, bundle = render_stack(stack.settings)
    a = limits_of(stack.settings)
    site = file(bundle.files, f"/etc/nginx/sites-available/{stack.settings.domain}.conf")
    ws = f"limit_req zone={a.websocket.zone} burst={a.websocket.burst} nodelay;"
    assert any("/xmpp-websocket" in p for p in storm_limit_problems(site.replace(ws, "", 1), a))
    polled = site.replace("location = /http-bind {", "location = /http-bind {\n" + ws, 1)
    assert any("/http-bind" in p for p in storm_limit_problems(polled, a))
    conn = f"limit_conn {a.connection_zone} {a.connections_per_address};"
    # the first occurrence is /http-bind's
    assert any("/http-bind" in p for p in storm_limit_problems(site.replace(conn, "", 1), a))
    request = f"limit_req zone={a.conference_request.zone} burst={a.conference_request.burst}"
    smaller = site.replace(request, request.replace("burst=", "burst=1"))
    assert any("conference-request" in p for p in storm_limit_problems(smaller, a))
    twice = site.replace(
        "limit_conn_zone",
        "limit_conn_zone $binary_remote_addr zone=jitsi_xxl_conn:1m;\nlimit_conn_zone",
        1,
    )
    assert any("declared 2 times" in p for p in storm_limit_problems(twice, a))
    undeclared = re.sub(r"^limit_conn_zone .*\n", "", site, flags=re.M)
    assert any("not declared" in p for p in storm_limit_problems(undeclared, a))
    assert any("429" in p for p in storm_limit_problems(site.replace(" 429;", " 503;"), a))


def test_node_muc_queues_the_join_storm(stack: StackFile) -> None:
    plan, bundle = render_stack(stack.settings)
    a = limits_of(stack.settings)
    for node in plan.nodes:
        config = file(bundle.files, f"/etc/prosody-{node.name}/prosody.cfg.lua")
        muc = config.split(f'Component "{node.muc}" "muc"', 1)[1].split("\nComponent ", 1)[0]
        assert "muc_rate_limit" in enabled_modules(muc), node.name
        joins = re.findall(r"^\s+muc_rate_joins = (\d+)$", muc, re.M)
        leaves = re.findall(r"^\s+muc_rate_leaves = (\d+)$", muc, re.M)
        assert joins == leaves == [str(a.node_muc_joins)], node.name
        assert a.node_muc_joins * 60 >= 2 * plan.max_per_node


def test_jicofo_spreads_the_storm_over_the_bridges(stack: StackFile) -> None:
    plan, bundle = render_stack(stack.settings)
    a = limits_of(stack.settings)
    conf = ConfigFactory.parse_string(file(bundle.files, "/etc/jitsi/jicofo/jicofo.conf"))
    bridge = conf["jicofo.bridge"]
    assert bridge["max-bridge-participants-per-interval"] == a.bridge_participants_per_interval
    assert bridge["max-bridge-participants"] == plan.participants_per_bridge
    # the interval stays jicofo's default
    assert "max-bridge-participants-interval" not in bridge


def test_bootstrap_makes_lua_5_4_find_jitsi_libraries(stack: StackFile) -> None:
    _, bundle = render_stack(stack.settings)
    boot = file(bundle.files, "/usr/local/sbin/jitsi-xxl-bootstrap")
    assert "readonly LUA54_MISSING=(inspect basexx)" in boot
    assert re.search(r"^  lua_libraries$", boot, re.M)
    assert re.search(r"^  presence_broadcast_fix$", boot, re.M)


def test_jicofo_conf_belongs_to_the_real_packages_group(stack: StackFile) -> None:
    """The jicofo package makes user jicofo in group jitsi; there is no group jicofo."""
    _, bundle = render_stack(stack.settings)
    conf = next(f for f in bundle.files if f.path == "/etc/jitsi/jicofo/jicofo.conf")
    assert conf.group == "jitsi"


def test_stun_service_names_its_transport(stack: StackFile) -> None:
    _, bundle = render_stack(stack.settings)
    for f in lua_configs(bundle.files):
        for entry in re.findall(r"\{ type = \"stun\"[^}]*\}", f.content):
            assert 'transport = "udp"' in entry, f"{f.path}: {entry}"
