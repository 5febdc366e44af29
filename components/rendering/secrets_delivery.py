"""How a VM's secrets reach it: the one decision both VMs' renders share.

Config files are rendered with placeholders (`credentials.placeholder`); the bootstrap fills
them from `/etc/jitsi/xxl/secrets.env`. Where that file comes from is decided here:

- AWS: fetched at boot from SSM Parameter Store (SecureString, one folder per role, see
  `naming.secrets_path`) with boto3 and the instance role's credentials (the bootstrap's
  `obtain_secrets`). The user data carries no secret.
- Hetzner: Hetzner Cloud has no secret store, so the file travels in the user data (readable
  through the Hetzner API and, on the VM, from the metadata address, which the bootstrap
  closes to everyone but root).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from components.model.credentials import PLACEHOLDER, VALUE, Credentials, env_name
from components.model.naming import secrets_path
from components.model.project import METADATA_ADDRESS, Cloud
from components.rendering.engine import FileSpec, RenderedFile, render_specs

SECRETS_FILE: Final = "/etc/jitsi/xxl/secrets.env"
GUARD_UNIT: Final = "jitsi-xxl-metadata-guard.service"
GUARD_SPECS: Final = (
    FileSpec("common/etc/jitsi/xxl/metadata-guard.nft.j2", "/etc/jitsi/xxl/metadata-guard.nft"),
    FileSpec(
        "common/etc/systemd/system/jitsi-xxl-metadata-guard.service.j2",
        f"/etc/systemd/system/{GUARD_UNIT}",
    ),
)
# The stack name of offline renders that were not given one (`xxl render` passes the real one).
OFFLINE_STACK: Final = "offline"


class SecretsSource(StrEnum):
    user_data = "user-data"
    ssm = "ssm"


@dataclass(frozen=True)
class SecretsDelivery:
    """What the bootstrap needs to obtain and place one VM's secrets."""

    source: SecretsSource
    names: tuple[str, ...]  # variable names in secrets.env, e.g. JVB_PASSWORD
    path: str  # SSM folder (AWS); empty otherwise

    def context(self, files: tuple[RenderedFile, ...]) -> dict[str, object]:
        """Template values: the source, the names, and the files that hold placeholders."""
        return {
            "secrets_file": SECRETS_FILE,
            "secrets_source": self.source.value,
            "secrets_path": self.path,
            "secret_names": list(self.names),
            "secret_files": placeholder_files(files),
            "guard_unit": GUARD_UNIT,
        }


def delivery(cloud: Cloud, stack: str, role: str, fields: tuple[str, ...]) -> SecretsDelivery:
    names = tuple(env_name(f) for f in fields)
    if cloud is Cloud.aws:
        return SecretsDelivery(SecretsSource.ssm, names, secrets_path(stack, role))
    return SecretsDelivery(SecretsSource.user_data, names, "")


def placeholder_files(files: tuple[RenderedFile, ...]) -> list[str]:
    """Paths of the rendered files the bootstrap must fill, in order."""
    return sorted(f.path for f in files if f.path != SECRETS_FILE and PLACEHOLDER.search(f.content))


def carried_files(
    d: SecretsDelivery,
    creds: Credentials,
    fields: tuple[str, ...],
    extra: Mapping[str, str] | None = None,
) -> tuple[RenderedFile, ...]:
    """What the user data carries for the secrets: nothing on AWS; on Hetzner secrets.env
    (`creds`' `fields`, then `extra` by variable name), and the guard that keeps everyone but
    root away from the metadata service (which would hand out the same user data)."""
    if d.source is SecretsSource.ssm:
        return ()
    guard = render_specs(GUARD_SPECS, {"metadata_address": METADATA_ADDRESS}, "")
    env = {**creds.env(fields), **(extra or {})}
    for name, value in env.items():
        # sourced by bash unquoted: only values that need no quoting may pass
        if not (VALUE.fullmatch(value) or PLACEHOLDER.fullmatch(value)):
            raise ValueError(f"secret {name} has characters a generated secret never has")
    lines = [f"{name}={value}" for name, value in env.items()]
    return (RenderedFile(SECRETS_FILE, "\n".join(lines) + "\n", 0o600), *guard)
