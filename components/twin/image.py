"""The twin's Debian 13 root and its local package archive, built once and cached.

The root stands for the cloud's Debian 13 image: a `debootstrap` minbase with what a cloud
image carries (systemd, cloud-init, curl, gnupg, iproute2, ...). Its only package source is
the local archive, mounted read-only at `ARCHIVE_MOUNT`, as a cloud image's only source is its
cloud's mirror: the container has no route out. The archive holds every Debian package the
bootstrap installs (downloaded once, with dependencies, against this very root) and the
stand-ins for Jitsi's packages (`standin_packages`).

Both are cached under `cache_dir()`, each in a folder named after a digest of what goes into
it, so a change of package list, plugins or stand-in rebuilds exactly what it affects, and a
warm run starts in seconds. Builders write to a temporary folder and rename it into place;
a lock file serialises two runs that need the same missing entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final

from components.twin.standin_packages import StandIn, build_deb, dependency_names

SUITE: Final = "trixie"
# debootstrap's own set is kept small (it orders large sets badly); apt adds the rest.
BOOT_PACKAGES: Final = ("systemd", "systemd-sysv", "dbus")
# What a Debian 13 cloud image brings that the bootstrap relies on.
IMAGE_PACKAGES: Final = (
    "cloud-init", "iproute2", "curl", "ca-certificates", "gnupg", "openssl", "xz-utils",
    "procps", "python3", "netbase", "perl-base",
)  # fmt: skip
ARCHIVE_MOUNT: Final = "/var/lib/jitsi-xxl-twin/archive"
# Cached roots and archives unused this long are removed when a twin starts.
PRUNE_AFTER_DAYS: Final = 7.0
UPSTREAM_SOURCES: Final = "/usr/share/jitsi-xxl-twin/upstream.list"
# Bump when the way a root or archive is built changes, so old cache entries are not reused.
_RECIPE: Final = 3
_TWIN_CLOUD_CFG: Final = """\
# The twin's cloud: user data and meta-data from the NoCloud seed; the rig configures the
# network before boot, as a cloud's DHCP would.
datasource_list: [ NoCloud, None ]
network: {config: disabled}
"""
_ARCHIVE_SOURCE: Final = f"""\
Types: deb
URIs: file:{ARCHIVE_MOUNT}
Suites: ./
Trusted: yes
"""


class ImageError(Exception):
    """The root or the archive could not be built; the message says which step."""


def cache_dir() -> Path:
    """Where roots and archives are kept: `XXL_TWIN_CACHE`, else a folder under /var/cache."""
    return Path(os.environ.get("XXL_TWIN_CACHE", "/var/cache/jitsi-xxl-twin"))


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _run(argv: Sequence[str], what: str, timeout: float = 900, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(
            list(argv), check=False, capture_output=True, text=True, timeout=timeout, cwd=cwd
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ImageError(f"{what}: {exc}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise ImageError(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def tool(name: str) -> str:
    """The path of a host tool; ImageError naming it when it is missing."""
    path = shutil.which(name) or next(
        (p for d in ("/usr/sbin", "/sbin") if Path(p := f"{d}/{name}").exists()), None
    )
    if path is None:
        raise ImageError(f"{name} is not installed (see .ci/run for the packages)")
    return path


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _build_once(final: Path, build: Callable[[Path], None]) -> Path:
    """Run `build(tmp)` unless `final` exists; rename the result into place. Each use marks
    the entry as recently used, for `prune`."""
    with _locked(final.with_name(final.name + ".lock")):
        if final.is_dir():
            os.utime(final)
            return final
        tmp = Path(tempfile.mkdtemp(prefix=final.name + ".", dir=final.parent))
        try:
            build(tmp)
            tmp.rename(final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


def prune(keep: Sequence[Path], days: float = PRUNE_AFTER_DAYS) -> list[Path]:
    """Remove cached roots and archives not used for `days`, except `keep`; an entry another
    run holds (its lock taken) is left alone. Returns what was removed."""
    removed: list[Path] = []
    kept = {p.resolve() for p in keep}
    cutoff = time.time() - days * 86400
    entries = [*cache_dir().glob("root-*"), *cache_dir().glob("archive-*")]
    for entry in sorted(entries):
        if not entry.is_dir() or entry.resolve() in kept or entry.stat().st_mtime > cutoff:
            continue
        lock = entry.with_name(entry.name + ".lock")
        with lock.open("w") as held:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            shutil.rmtree(entry, ignore_errors=True)
        lock.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def base_root() -> Path:
    """The cached Debian 13 root (built with debootstrap on first use)."""
    mirror = os.environ.get("XXL_TWIN_DEBIAN_MIRROR")  # debootstrap's own default otherwise
    key = _digest(_RECIPE, SUITE, BOOT_PACKAGES, IMAGE_PACKAGES, mirror)
    return _build_once(cache_dir() / f"root-{key}", lambda tmp: _build_root(tmp, mirror)) / "root"


def _build_root(tmp: Path, mirror: str | None) -> None:
    root = tmp / "root"
    argv = [tool("debootstrap"), "--variant=minbase", "--include=" + ",".join(BOOT_PACKAGES),
            SUITE, str(root)]  # fmt: skip
    _run([*argv, *([mirror] if mirror else [])], "debootstrap of Debian 13")
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    apt = [tool("chroot"), str(root), "/usr/bin/apt-get", "-q", "-y", "--no-install-recommends"]
    _run([*apt, "update"], "apt-get update in the new root")
    _run([*apt, "install", *IMAGE_PACKAGES], "installing the image's packages")
    # A resolver that answers nothing, as on a network with no route out (prosody's
    # libunbound refuses to start without the file).
    (root / "etc/resolv.conf").write_text("nameserver 127.0.0.1\n")
    # Debian's sources are kept for building the archive only; the image sees the archive.
    upstream = root / UPSTREAM_SOURCES.lstrip("/")
    upstream.parent.mkdir(parents=True)
    lists = [root / "etc/apt/sources.list", *(root / "etc/apt/sources.list.d").glob("*")]
    upstream.write_text("".join(p.read_text() for p in lists if p.is_file()))
    for p in lists:
        p.unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d/jitsi-xxl-twin-archive.sources").write_text(_ARCHIVE_SOURCE)
    (root / "etc/cloud/cloud.cfg.d/90-jitsi-xxl-twin.cfg").write_text(_TWIN_CLOUD_CFG)
    for p in (root / "var/cache/apt/archives").glob("*.deb"):
        p.unlink()
    shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True)
    # no login prompt on the console: it is a pipe to a log file, not a terminal
    (root / "etc/systemd/system/console-getty.service").symlink_to("/dev/null")
    (root / "etc/machine-id").write_text("")  # a fresh one per boot, as a first boot


def archive(root: Path, debian: Sequence[str], stand_ins: Sequence[StandIn]) -> Path:
    """The cached local archive: `debian` packages (with what they need beyond `root`), the
    stand-ins' dependencies, and the stand-ins themselves, with a Packages and Release index."""
    wanted = tuple(dict.fromkeys((*debian, *dependency_names(stand_ins))))
    key = _digest(_RECIPE, root.parent.name, wanted, sorted(p.digest() for p in stand_ins))
    final = cache_dir() / f"archive-{key}"
    return _build_once(final, lambda tmp: _build_archive(tmp, root, wanted, stand_ins)) / "archive"


@contextlib.contextmanager
def overlay(lower: Path, scratch: Path) -> Iterator[Path]:
    """`lower` mounted read-only under a writable layer in `scratch`; unmounted on exit."""
    upper, work, merged = scratch / "upper", scratch / "work", scratch / "merged"
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    _run([tool("mount"), "-t", "overlay", "overlay", "-o", opts, str(merged)], "overlay mount")
    try:
        yield merged
    finally:
        unmount(merged)


def unmount(path: Path) -> None:
    """Unmount `path` (lazily if it is still busy); a path that is not mounted is left alone."""
    if not os.path.ismount(path):
        return
    done = subprocess.run([tool("umount"), str(path)], check=False, capture_output=True)
    if done.returncode != 0:
        subprocess.run([tool("umount"), "-l", str(path)], check=False, capture_output=True)


def _build_archive(
    tmp: Path, root: Path, wanted: Sequence[str], stand_ins: Sequence[StandIn]
) -> None:
    apt_opts = [
        f"-oDir::Etc::SourceList={UPSTREAM_SOURCES}",
        "-oDir::Etc::SourceParts=/nonexistent",
        "-oAPT::Install-Recommends=false",
        "-q",
    ]
    with overlay(root, tmp / "overlay") as merged:
        shutil.copy("/etc/resolv.conf", merged / "etc/resolv.conf")
        chroot = [tool("chroot"), str(merged), "/usr/bin/apt-get", *apt_opts]
        _run([*chroot, "update"], "apt-get update (Debian's archive)")
        _run(
            [*chroot, "install", "-y", "--download-only", *wanted],
            "download of " + " ".join(wanted),
        )
        debs = sorted((merged / "var/cache/apt/archives").glob("*.deb"))
        out = tmp / "archive"
        out.mkdir()
        for deb in debs:
            shutil.copy2(deb, out / deb.name)
    shutil.rmtree(tmp / "overlay", ignore_errors=True)
    for pkg in stand_ins:
        build_deb(pkg, out)
    # run inside the archive, so that every Filename is relative to it
    packages = _run(
        [tool("dpkg-scanpackages"), "--multiversion", "."], "dpkg-scanpackages", cwd=out
    )
    (out / "Packages").write_text(packages)
    release = _run([tool("apt-ftparchive"), "release", "."], "apt-ftparchive release", cwd=out)
    (out / "Release").write_text(release)
    # the container reads it as another user than the builder's
    for p in (out, *out.iterdir()):
        p.chmod(0o755 if p.is_dir() else 0o644)
    (tmp / "packages.json").write_text(json.dumps({"debian": list(wanted)}, indent=1) + "\n")
