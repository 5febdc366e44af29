"""Stand-in Debian packages for what only Jitsi's repository has, built for the twin's archive.

The twin installs packages the way the VM does, with the bootstrap's own `apt-get install`,
from a local archive. Debian 13 has prosody, nginx, coturn and the Lua libraries; these
packages exist only in Jitsi's repository, which cannot be reached here, so each gets a
stand-in under its real name and the pinned version (so the VM's apt pins hold as written):

- `jitsi-meet-prosody`: Jitsi's real prosody plugins, byte for byte, with the real package's
  declared dependencies (its `debian/control`);
- `jicofo`: `standins/jicofo.py`, which plays jicofo's part of the visitors protocol; the user
  and group are the real package's (`jicofo` in group `jitsi`);
- `jitsi-meet-web`: a placeholder page where the web app's files would be;
- `jitsi-meet-web-config`: writes `/etc/jitsi/meet/<domain>-config.js` from debconf, as the
  real package's postinst does, so the bootstrap has the file it appends its overrides to;
- `jitsi-videobridge2` (the bridge VM): `standins/jvb.py`, which logs in to the brewery and
  answers the videobridge's private REST API; it reuses the jicofo stand-in's XMPP code, so
  both files ship as one Python package. The real package's user (`jvb`, group `jitsi`) and
  unit name (`jitsi-videobridge2.service`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from components.model.settings import ReleaseSettings

STANDINS_DIR: Final = Path(__file__).resolve().parent / "standins"
PLUGINS_TARGET: Final = "/usr/share/jitsi-meet/prosody-plugins"
MAINTAINER: Final = "jitsi-xxl twin <twin@invalid>"


@dataclass(frozen=True)
class StandIn:
    """One package: control fields, files (target path -> bytes) and maintainer scripts."""

    name: str
    version: str
    stands_for: str
    depends: tuple[str, ...] = ()
    pre_depends: tuple[str, ...] = ()
    files: Mapping[str, bytes] = field(default_factory=dict)
    modes: Mapping[str, int] = field(default_factory=dict)
    postinst: str | None = None

    def control(self) -> str:
        lines = [
            f"Package: {self.name}",
            f"Version: {self.version}",
            "Architecture: all",
            f"Maintainer: {MAINTAINER}",
        ]
        if self.pre_depends:
            lines.append("Pre-Depends: " + ", ".join(self.pre_depends))
        if self.depends:
            lines.append("Depends: " + ", ".join(self.depends))
        lines += [f"Description: twin stand-in for {self.name}", f" {self.stands_for}"]
        return "\n".join(lines) + "\n"

    def digest(self) -> str:
        h = hashlib.sha256(self.control().encode())
        h.update((self.postinst or "").encode())
        for path in sorted(self.files):
            h.update(path.encode() + b"\0" + self.files[path] + b"\0")
            h.update(str(self.modes.get(path, 0o644)).encode())
        return h.hexdigest()


def control_depends(control: str, package: str) -> tuple[str, ...]:
    """The `Depends` of `package` in a Debian control file, one entry per relation."""
    stanza = next(
        (s for s in re.split(r"\n\s*\n", control) if re.search(rf"^Package: {package}$", s, re.M)),
        None,
    )
    if stanza is None:
        raise ValueError(f"{package} is not in the control file")
    m = re.search(r"^Depends:(.*(?:\n[ \t].*)*)", stanza, re.M)
    if m is None:
        return ()
    entries = (d.strip() for d in m[1].replace("\n", " ").split(","))
    return tuple(d for d in entries if d and not d.startswith("${"))


def plugin_files(plugins: Path) -> dict[str, bytes]:
    """Every file of Jitsi's prosody plugin tree, at the path the real package installs it."""
    return {
        f"{PLUGINS_TARGET}/{p.relative_to(plugins).as_posix()}": p.read_bytes()
        for p in sorted(plugins.rglob("*"))
        if p.is_file()
    }


_JICOFO_POSTINST: Final = """#!/bin/sh
# The real package's user and group: jicofo, in group jitsi.
set -e
if [ "$1" = configure ]; then
    getent group jitsi >/dev/null || groupadd --system jitsi
    getent passwd jicofo >/dev/null || \\
        useradd --system -g jitsi --shell /usr/sbin/nologin -d /usr/share/jicofo jicofo
    install -d -o jicofo -g jitsi -m 0750 /etc/jitsi/jicofo
fi
"""

_JICOFO_UNIT: Final = """[Unit]
Description=jicofo (twin stand-in: the visitors protocol of jicofo, see jicofo_standin.py)
After=network-online.target prosody.service

[Service]
User=jicofo
Group=jitsi
ExecStart=/usr/bin/python3 /usr/share/jicofo/jicofo_standin.py /etc/jitsi/jicofo/jicofo.conf
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
"""

# Where the videobridge stand-in's Python package goes (its modules import each other).
JVB_SHARE: Final = "/usr/share/jitsi-videobridge"
JVB_PACKAGE: Final = "twin_standin"

_JVB_POSTINST: Final = """#!/bin/sh
# The real package's user: jvb, in group jitsi, home /usr/share/jitsi-videobridge; its config
# folder jvb:jitsi 0750 and its log folder /var/log/jitsi.
# No `jvb` group, as in the real package (its postinst deletes one): the rendered files the
# videobridge reads belong to group `jitsi`.
set -e
if [ "$1" = configure ]; then
    getent group jitsi >/dev/null || groupadd --system jitsi
    getent passwd jvb >/dev/null || \\
        useradd --system -g jitsi --shell /bin/bash -d /usr/share/jitsi-videobridge jvb
    install -d -o jvb -g jitsi -m 0750 /etc/jitsi/videobridge
    install -d -o jvb -g jitsi -m 0770 /var/log/jitsi
fi
"""

_JVB_UNIT: Final = f"""[Unit]
Description=Jitsi Videobridge (twin stand-in: XMPP brewery and REST API, see jvb.py)
After=network.target

[Service]
User=jvb
Environment=PYTHONPATH={JVB_SHARE}
ExecStart=/usr/bin/python3 -m {JVB_PACKAGE}.jvb /etc/jitsi/videobridge/jvb.conf

[Install]
WantedBy=multi-user.target
"""

_WEB_CONFIG_POSTINST: Final = """#!/bin/sh
# As the real package: the site's config.js, named after the debconf host name.
set -e
. /usr/share/debconf/confmodule
if [ "$1" = configure ]; then
    db_get jitsi-videobridge/jvb-hostname
    host="$RET"
    install -d -m 0755 /etc/jitsi/meet
    if [ -n "$host" ] && [ ! -f "/etc/jitsi/meet/$host-config.js" ]; then
        printf 'var config = { hosts: { domain: "%s" } };\\n' "$host" \\
            > "/etc/jitsi/meet/$host-config.js"
    fi
fi
db_stop
"""

_PLACEHOLDER_PAGE: Final = b"""<!doctype html>
<title>jitsi-xxl twin</title>
<p>Placeholder for the Jitsi Meet web app (twin stand-in for jitsi-meet-web).</p>
"""


def standins(release: ReleaseSettings, plugins: Path, control: str) -> tuple[StandIn, ...]:
    """The stand-ins for one release: same names and versions as the pinned real packages."""
    jicofo_code = (STANDINS_DIR / "jicofo.py").read_bytes()
    jvb_package = {
        f"{JVB_SHARE}/{JVB_PACKAGE}/{name}": (STANDINS_DIR / name).read_bytes()
        for name in ("__init__.py", "jicofo.py", "jvb.py")
    }
    return (
        StandIn(
            name="jitsi-meet-prosody",
            version=release.jitsi_meet,
            stands_for="Jitsi's real prosody plugins, as the real package installs them.",
            depends=control_depends(control, "jitsi-meet-prosody"),
            files=plugin_files(plugins),
        ),
        StandIn(
            name="jicofo",
            version=release.jicofo,
            stands_for="Plays jicofo's part of the visitors protocol (no Java, no Jingle).",
            # the real package's non-Java dependencies, and what the stand-in runs on
            depends=("ruby-hocon", "jq", "python3", "python3-slixmpp"),
            files={
                "/usr/share/jicofo/jicofo_standin.py": jicofo_code,
                "/usr/lib/systemd/system/jicofo.service": _JICOFO_UNIT.encode(),
            },
            postinst=_JICOFO_POSTINST,
        ),
        StandIn(
            name="jitsi-meet-web",
            version=release.jitsi_meet,
            stands_for="A placeholder page where the web app would be.",
            files={"/usr/share/jitsi-meet/index.html": _PLACEHOLDER_PAGE},
        ),
        StandIn(
            name="jitsi-meet-web-config",
            version=release.jitsi_meet,
            stands_for="Writes the site's config.js from debconf, as the real postinst does.",
            pre_depends=("nginx",),
            depends=("openssl", "curl"),
            postinst=_WEB_CONFIG_POSTINST,
        ),
        StandIn(
            name="jitsi-videobridge2",
            version=release.jitsi_videobridge,
            stands_for="Joins the brewery and answers the videobridge's REST API (no media).",
            # the real package reads its config with ruby-hocon too; no Java
            depends=("ruby-hocon", "python3", "python3-slixmpp"),
            files={
                **jvb_package,
                "/usr/lib/systemd/system/jitsi-videobridge2.service": _JVB_UNIT.encode(),
            },
            postinst=_JVB_POSTINST,
        ),
    )


def dependency_names(packages: Iterable[StandIn]) -> tuple[str, ...]:
    """Debian package names the stand-ins depend on (the first of each alternative)."""
    own = {p.name for p in packages}
    out: list[str] = []
    for p in packages:
        for rel in (*p.pre_depends, *p.depends):
            name = re.split(r"[\s(|]", rel.strip(), maxsplit=1)[0]
            if name not in own and name not in out:
                out.append(name)
    return tuple(out)


def build_deb(pkg: StandIn, out_dir: Path) -> Path:
    """Build `pkg` with dpkg-deb into `out_dir`; reproducible (fixed mtimes, root owner)."""
    with tempfile.TemporaryDirectory(prefix="standin-") as tmp:
        root = Path(tmp) / pkg.name
        (root / "DEBIAN").mkdir(parents=True)
        (root / "DEBIAN" / "control").write_text(pkg.control())
        if pkg.postinst:
            script = root / "DEBIAN" / "postinst"
            script.write_text(pkg.postinst)
            script.chmod(0o755)
        for target, data in pkg.files.items():
            path = root / target.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(pkg.modes.get(target, 0o644))
        for d in (p for p in root.rglob("*") if p.is_dir()):
            d.chmod(0o755)
        deb = out_dir / f"{pkg.name}_{pkg.version}_all.deb"
        env = {**os.environ, "SOURCE_DATE_EPOCH": "0"}
        subprocess.run(
            [_dpkg_deb(), "--root-owner-group", "-Zxz", "--build", str(root), str(deb)],
            check=True, capture_output=True, env=env,
        )  # fmt: skip
        return deb


def _dpkg_deb() -> str:
    path = shutil.which("dpkg-deb")
    if path is None:
        raise FileNotFoundError("dpkg-deb is not installed (Debian: apt-get install dpkg)")
    return path
