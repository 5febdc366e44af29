"""Where a VM's packages come from: a render option, so that the twin can differ only here.

On the cloud the signaling VM adds Jitsi's repository and Prosody's (the image's own Debian
archive has neither jicofo nor a current prosody); the bootstrap fetches their keys. The twin
has no route out: its image's archive holds every package, stand-ins included, so it adds no
source and pins prosody to the version that archive has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# The Debian release the VMs run; Prosody's repository is per release.
DEBIAN_SUITE: Final = "trixie"


@dataclass(frozen=True)
class AptSource:
    """One deb822 source and the key it is signed with (fetched by the bootstrap)."""

    uris: str
    suites: str
    components: str
    key_url: str
    keyring: str
    dearmor: bool


@dataclass(frozen=True)
class PackageSources:
    """Sources beyond the image's own archive, and a prosody pin that overrides the release's."""

    sources: tuple[AptSource, ...]
    prosody_pin: str | None = None


JITSI: Final = AptSource(
    uris="https://download.jitsi.org",
    suites="stable/",
    components="",
    key_url="https://download.jitsi.org/jitsi-key.gpg.key",
    keyring="/usr/share/keyrings/jitsi-keyring.gpg",
    dearmor=True,
)
PROSODY: Final = AptSource(
    uris="http://packages.prosody.im/debian",
    suites=DEBIAN_SUITE,
    components="main",
    key_url="https://prosody.im/files/prosody-debian-packages.key",
    keyring="/usr/share/keyrings/prosody-debian-packages.key",
    dearmor=False,
)
UPSTREAM: Final = PackageSources(sources=(JITSI, PROSODY))
# A bridge needs only the videobridge, which only Jitsi's repository has.
BRIDGE_UPSTREAM: Final = PackageSources(sources=(JITSI,))


def image_archive_only(prosody_pin: str) -> PackageSources:
    """No source beyond the image's archive (the twin), prosody pinned to what it holds."""
    return PackageSources(sources=(), prosody_pin=prosody_pin)
