"""Every rendered file goes through the real tool that will read it.

prosody (luac, prosodyctl check config), nginx -t, systemd-analyze verify, cloud-init
schema, shellcheck, and HOCON (pyhocon and the `hocon` tool jicofo's scripts use), plus
jicofo's reference.conf as the oracle for every key we set. In CI, .ci/run installs each
tool and a missing one fails the run (tests.conftest.require_tool).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyhocon import ConfigFactory

from components.model.settings import StackFile, parse_settings
from components.rendering.engine import RenderedFile
from components.rendering.signaling_files import NODE_TEMPLATE, Layout
from tests.conftest import render_stack, require_tool
from tests.hocon_oracle import REFERENCES, known_keys, leaf_paths, upstream_available, upstream_keys

pytestmark = pytest.mark.tools


def materialise(root: Path, files: tuple[RenderedFile, ...]) -> None:
    """Write the files as the bootstrap would lay them out, under a scratch root."""
    for f in files:
        path = Path(f.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f.content)
    root.chmod(0o755)  # the prosody user must traverse it


def self_signed(crt: Path, key: Path, name: str) -> None:
    crt.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [require_tool("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", f"/CN={name}",
         "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True,
    )  # fmt: skip


@pytest.fixture
def world_tmp() -> Iterator[Path]:
    """A scratch folder the prosody user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="jitsi-xxl-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def tree(stack: StackFile, world_tmp: Path) -> tuple[StackFile, Path, tuple[RenderedFile, ...]]:
    root = world_tmp / "vm"
    _, bundle = render_stack(stack.settings, layout=Layout(root=str(root)))
    materialise(root, bundle.files)
    return stack, root, bundle.files


def lua_files(files: tuple[RenderedFile, ...]) -> list[RenderedFile]:
    """Every Lua file prosody reads: the node template is not one (its expansions are)."""
    return [f for f in files if f.path.endswith(".lua") and not f.path.endswith(NODE_TEMPLATE)]


def test_luac_parses_every_lua_file(tree: tuple[StackFile, Path, tuple[RenderedFile, ...]]) -> None:
    _, _, files = tree
    luac = require_tool("luac5.4")
    assert len(lua_files(files)) >= 3
    for f in lua_files(files):
        proc = subprocess.run([luac, "-p", f.path], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{f.path}: {proc.stderr}"


def _prosodyctl_check(config: Path) -> subprocess.CompletedProcess[str]:
    prosodyctl = require_tool("prosodyctl")
    setpriv = require_tool("setpriv")
    argv = [prosodyctl, "--config", str(config), "check", "config"]
    if os.geteuid() == 0:
        # prosodyctl refuses to run as root; run it as the package's prosody user
        argv = [setpriv, "--reuid=prosody", "--regid=prosody", "--init-groups", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_prosodyctl_check_config(tree: tuple[StackFile, Path, tuple[RenderedFile, ...]]) -> None:
    stack, root, _files = tree
    domain = stack.settings.domain
    etc = root / "etc" / "prosody"
    # what the bootstrap does on the VM: enable the site, and certificates exist
    (etc / "conf.d").mkdir()
    (etc / "conf.d" / f"{domain}.cfg.lua").symlink_to(f"../conf.avail/{domain}.cfg.lua")
    self_signed(etc / "certs" / f"{domain}.crt", etc / "certs" / f"{domain}.key", domain)
    subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
    configs = [etc / "prosody.cfg.lua", *sorted(root.glob("etc/prosody-v*/prosody.cfg.lua"))]
    assert len(configs) == 1 + len(list(root.glob("etc/prosody-v*")))
    for config in configs:
        proc = _prosodyctl_check(config)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{config}:\n{out}"
        assert "All checks passed" in out, f"{config}:\n{out}"


def test_prosodyctl_check_catches_a_broken_file(world_tmp: Path) -> None:
    """The check above can fail: a misplaced global option is reported."""
    bad = world_tmp / "bad.cfg.lua"
    bad.write_text('VirtualHost "x.example.org"\n    c2s_ports = { 5222 }\n')
    bad.chmod(0o644)
    assert _prosodyctl_check(bad).returncode != 0


def test_nginx_accepts_the_site(tree: tuple[StackFile, Path, tuple[RenderedFile, ...]]) -> None:
    stack, root, _ = tree
    proc = _nginx_t(require_tool("nginx"), root, stack.settings.domain)
    assert proc.returncode == 0, proc.stderr


def test_systemd_analyze_verify_is_silent(
    tree: tuple[StackFile, Path, tuple[RenderedFile, ...]], tmp_path: Path
) -> None:
    _, root, _ = tree
    analyze = require_tool("systemd-analyze")
    require_tool("prosody")  # ExecStart must exist
    template = root / "etc" / "systemd" / "system" / "prosody-v@.service"
    units = tmp_path / "units"
    units.mkdir()
    # a template unit is verified through an instance of it
    shutil.copy(template, units / "prosody-v@1.service")
    proc = subprocess.run(
        [analyze, "verify", str(units / "prosody-v@1.service")],
        capture_output=True, text=True, check=False, env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )  # fmt: skip
    # systemd-analyze exits 0 on unknown keys and bad values: stderr is the verdict
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_systemd_analyze_reports_a_bad_key(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    unit = tmp_path / "bad@1.service"
    unit.write_text("[Service]\nExecStart=/bin/true\nBogusKey=1\n")
    proc = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert "BogusKey" in proc.stderr


def test_cloud_init_schema(stack: StackFile, tmp_path: Path) -> None:
    cloud_init = require_tool("cloud-init")
    _, bundle = render_stack(stack.settings)
    path = tmp_path / "cloud-init.yaml"
    path.write_text(bundle.user_data)
    proc = subprocess.run(
        [cloud_init, "schema", "--config-file", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    # the exit status is the verdict: the wording differs between cloud-init releases
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_bootstrap(tree: tuple[StackFile, Path, tuple[RenderedFile, ...]]) -> None:
    _, _, files = tree
    shellcheck = require_tool("shellcheck")
    scripts = [f for f in files if f.content.startswith("#!/usr/bin/env bash")]
    assert scripts
    for f in scripts:
        proc = subprocess.run(
            [shellcheck, "--severity=style", "--shell=bash", f.path],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout


def test_bash_parses_bootstrap(tree: tuple[StackFile, Path, tuple[RenderedFile, ...]]) -> None:
    _, _, files = tree
    bash = require_tool("bash")
    for f in files:
        if f.content.startswith("#!/usr/bin/env bash"):
            subprocess.run([bash, "-n", f.path], check=True)


# --- HOCON and the jicofo key oracle ---------------------------------------------------------


def test_every_jicofo_key_exists_upstream(stack: StackFile) -> None:
    reference = known_keys("jicofo")
    _, bundle = render_stack(stack.settings)
    jicofo = next(f for f in bundle.files if f.path.endswith("jicofo.conf"))
    ours = leaf_paths(ConfigFactory.parse_string(jicofo.content))
    # one xmpp.visitors.<name> per node, all of the shape of upstream's `v1` example
    normalised = {
        re.sub(r"^jicofo\.xmpp\.visitors\.v\d+\.", "jicofo.xmpp.visitors.v1.", k) for k in ours
    }
    assert "jicofo.octo.enabled" in ours
    assert not normalised - reference, (
        f"keys jicofo does not know: {sorted(normalised - reference)}"
    )


def test_oracle_rejects_an_invented_key() -> None:
    reference = known_keys("jicofo")
    assert "jicofo.visitors.max-visitors-per-node" in reference
    assert "jicofo.xmpp.client.password" in reference
    assert "jicofo.visitors.max-visitor-per-node" not in reference


@pytest.mark.parametrize("group", sorted(REFERENCES))
def test_kept_reference_keys_equal_upstream(group: str) -> None:
    """The key paths kept in tests/data are the upstream files' (where those are present)."""
    if not upstream_available():
        if os.environ.get("CI"):
            pytest.fail("../shared/upstream reference.conf files missing beside the checkout")
        pytest.skip("compares with ../shared/upstream: put jicofo's and the videobridge's "
                    "reference.conf files there (see tests/hocon_oracle.py)")  # fmt: skip
    assert known_keys(group) == upstream_keys(group), "run: .venv/bin/python -m tests.hocon_oracle"


def test_jicofo_conf_values(stack: StackFile) -> None:
    plan, bundle = render_stack(stack.settings)
    jicofo = next(f for f in bundle.files if f.path.endswith("jicofo.conf"))
    conf = ConfigFactory.parse_string(jicofo.content)
    assert conf["jicofo.visitors.enabled"] is True
    assert conf["jicofo.octo.enabled"] is True
    assert conf["jicofo.bridge.max-bridge-participants"] == plan.participants_per_bridge
    assert conf["jicofo.visitors.max-participants"] == plan.main_participants
    assert conf["jicofo.visitors.max-visitors-per-node"] == plan.node_soft_limit
    assert conf["jicofo.bridge.selection-strategy"] == "VisitorSelectionStrategy"
    assert conf["jicofo.bridge.topology-strategy"] == "VisitorTopologyStrategy"
    assert conf["jicofo.bridge.brewery-jid"] == f"jvbbrewery@internal.auth.{plan.domain}"
    assert len(conf["jicofo.xmpp.visitors"]) == len(plan.nodes)


def test_hocon_tool_reads_jicofo_conf(stack: StackFile, tmp_path: Path) -> None:
    """ruby-hocon's `hocon`, the tool jitsi's own scripts edit jicofo.conf with."""
    hocon = require_tool("hocon")
    plan, bundle = render_stack(stack.settings)
    path = tmp_path / "jicofo.conf"
    path.write_text(next(f for f in bundle.files if f.path.endswith("jicofo.conf")).content)
    last = plan.nodes[-1]
    for key, expected in (
        ("jicofo.octo.enabled", "true"),
        (f"jicofo.xmpp.visitors.{last.name}.port", str(last.c2s_port)),
        ("jicofo.visitors.max-participants", str(plan.main_participants)),
    ):
        proc = subprocess.run(
            [hocon, "-i", str(path), "get", key], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == expected


# --- each validator fails on a broken input (so the checks above can fail) -------------------


def test_validators_reject_broken_files(world_tmp: Path) -> None:
    lua = world_tmp / "bad.cfg.lua"
    lua.write_text('modules_enabled = { "a"; \n')
    assert subprocess.run([require_tool("luac5.4"), "-p", str(lua)], check=False).returncode != 0
    conf = world_tmp / "nginx.conf"
    conf.write_text(f"pid {world_tmp}/p;\nerror_log {world_tmp}/e;\nevents {{}}\nhttp {{ map }}\n")
    nginx = [require_tool("nginx"), "-t", "-q", "-c", str(conf), "-p", str(world_tmp)]
    assert subprocess.run(nginx, capture_output=True, check=False).returncode != 0
    cfg = world_tmp / "cc.yaml"
    cfg.write_text("#cloud-config\nwrite_files:\n  - contnet: x\n    path: /x\n")
    schema = [require_tool("cloud-init"), "schema", "--config-file", str(cfg)]
    assert subprocess.run(schema, capture_output=True, check=False).returncode != 0
    script = world_tmp / "s.sh"
    script.write_text("#!/usr/bin/env bash\nrm -rf $1/*\n")
    shellcheck = [require_tool("shellcheck"), "--severity=style", str(script)]
    assert subprocess.run(shellcheck, capture_output=True, check=False).returncode != 0


def test_sysctl_accepts_the_file_and_it_covers_the_node_ports(
    stack: StackFile, tmp_path: Path
) -> None:
    """`sysctl --dry-run -p` reads the file as the VM will (an unknown key fails it) without
    writing; the reserved ranges sit inside the kernel's ephemeral range, where they matter."""
    sysctl = require_tool("sysctl")
    plan, bundle = render_stack(stack.settings)
    path = tmp_path / "60-jitsi-xxl.conf"
    path.write_text(next(f for f in bundle.files if f.path.endswith("60-jitsi-xxl.conf")).content)
    proc = subprocess.run(
        [sysctl, "--dry-run", "-p", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"^net\.ipv4\.ip_local_reserved_ports = (\S+)$", proc.stdout, re.M)
    assert m, proc.stdout
    value = m[1]
    low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    reserved: set[int] = set()
    for span in value.split(","):
        first, last = (int(x) for x in span.split("-"))
        assert low <= first <= last <= high
        reserved |= set(range(first, last + 1))
    assert set(plan.ports) <= reserved


def test_every_node_count_passes_the_validators(world_tmp: Path) -> None:
    """1 to 64 visitor nodes: every Lua file parses, the main prosody's config and the first
    and last node's pass prosodyctl, nginx accepts the site with the rendered limits, the user
    data passes cloud-init's schema and the bootstrap passes bash -n and shellcheck."""
    luac, nginx = require_tool("luac5.4"), require_tool("nginx")
    cloud_init, shellcheck = require_tool("cloud-init"), require_tool("shellcheck")
    for count in range(1, 65):
        settings = parse_settings(
            {"cloud": "aws", "domain": "meet.example.org", "audience": 100 * count,
             "tls": {"mode": "self-signed"}, "visitors": {"nodes": count}}
        )  # fmt: skip
        root = world_tmp / f"n{count}"
        _, bundle = render_stack(settings, layout=Layout(root=str(root)))
        materialise(root, bundle.files)
        where = f"{count} nodes"
        for f in lua_files(bundle.files):
            # one file per call: Debian 12's luac 5.4.4 crashes on several
            proc = subprocess.run([luac, "-p", f.path], capture_output=True, text=True, check=False)
            assert proc.returncode == 0, f"{where}: {proc.stderr}"
        etc = root / "etc" / "prosody"
        (etc / "conf.d").mkdir()
        (etc / "conf.d" / "meet.example.org.cfg.lua").symlink_to(
            "../conf.avail/meet.example.org.cfg.lua"
        )
        subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
        for config in (etc / "prosody.cfg.lua", root / "etc/prosody-v1/prosody.cfg.lua",
                       root / f"etc/prosody-v{count}/prosody.cfg.lua"):  # fmt: skip
            check = _prosodyctl_check(config)
            assert check.returncode == 0, f"{where}, {config}:\n{check.stdout}{check.stderr}"
        assert _nginx_t(nginx, root, "meet.example.org").returncode == 0, where
        user_data = root / "user-data.yaml"
        user_data.write_text(bundle.user_data)
        schema = [cloud_init, "schema", "--config-file", str(user_data)]
        assert subprocess.run(schema, capture_output=True, check=False).returncode == 0, where
        boot = str(root / "usr/local/sbin/jitsi-xxl-bootstrap")
        subprocess.run(["bash", "-n", boot], check=True)
        sc = subprocess.run(
            [shellcheck, "--severity=style", boot], capture_output=True, check=False
        )
        assert sc.returncode == 0, f"{where}: {sc.stdout!r}"
        shutil.rmtree(root)


@functools.cache
def _stream_module(nginx: str) -> str:
    """The `load_module` line for nginx's stream module where this nginx builds it as a
    module (Debian: libnginx-mod-stream), else nothing."""
    info = subprocess.run([nginx, "-V"], capture_output=True, text=True, check=False).stderr
    if "--with-stream=dynamic" not in info:
        return ""
    m = re.search(r"--modules-path=(\S+)", info)
    module = Path(m[1] if m else "/usr/lib/nginx/modules") / "ngx_stream_module.so"
    if not module.exists():
        require_tool("libnginx-mod-stream's ngx_stream_module.so")
    return f"load_module {module};\n"


def _nginx_t(nginx: str, root: Path, domain: str) -> subprocess.CompletedProcess[str]:
    """nginx -t of the rendered site and stream (the TLS multiplexer on 443) under the
    rendered connection limits."""
    tls = root / "etc" / "jitsi" / "xxl" / "tls"
    if not (tls / f"{domain}.crt").exists():
        self_signed(tls / f"{domain}.crt", tls / f"{domain}.key", domain)
    rendered = (root / "etc" / "nginx" / "nginx.conf").read_text()
    limit = {}
    for key in ("worker_connections", "worker_rlimit_nofile"):
        m = re.search(rf"{key} (\d+);", rendered)
        assert m, f"nginx.conf sets no {key}"
        limit[key] = m[1]
    prefix = root / "nginx"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    site = root / "etc" / "nginx" / "sites-available" / f"{domain}.conf"
    stream = root / "etc" / "nginx" / "stream.conf"
    conf.write_text(
        f"{_stream_module(nginx)}pid {prefix}/nginx.pid;\nerror_log {prefix}/logs/error.log;\n"
        f"include {stream};\n"
        f"worker_rlimit_nofile {limit['worker_rlimit_nofile']};\n"
        f"events {{ worker_connections {limit['worker_connections']}; }}\n"
        f"http {{\n  access_log off;\n  include {site};\n}}\n"
    )
    return subprocess.run(
        [nginx, "-t", "-q", "-c", str(conf), "-p", str(prefix)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
