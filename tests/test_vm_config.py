"""Guards for what the twin found wrong in the signaling VM: each fails if its defect returns.

The twin (tests/test_twin.py) proves these on the booted VM; these tests read the rendered
files, so a regression shows in seconds and names the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from components.model.planner import Plan
from components.model.settings import StackFile
from components.rendering.engine import RenderedFile
from components.rendering.signaling_files import PROSODY_NOFILE, XXL_PLUGIN_SOURCES, names
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
    them possibly in one worker."""
    plan, bundle = render_stack(stack.settings)
    connections, nofile = limits(plan, bundle.files)
    viewers = plan.max_per_node * len(plan.nodes) + plan.main_participants
    assert connections >= 4 * viewers
    assert nofile >= connections


def test_nginx_upstream_zone_fits_every_node(stack: StackFile) -> None:
    plan, bundle = render_stack(stack.settings)
    site = file(bundle.files, f"/etc/nginx/sites-available/{stack.settings.domain}.conf")
    sizes = {int(k) for k in re.findall(r"zone upstreams (\d+)k;", site)}
    assert sizes == {16 * (len(plan.nodes) + 1)}


def test_main_prosody_open_file_limit(stack: StackFile) -> None:
    _, bundle = render_stack(stack.settings)
    dropin = file(bundle.files, "/etc/systemd/system/prosody.service.d/jitsi-xxl.conf")
    assert f"LimitNOFILE={PROSODY_NOFILE}" in dropin
    assert PROSODY_NOFILE >= 65536


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
