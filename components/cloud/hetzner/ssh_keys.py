"""RootKeys: the SSH keys root logs in with on every server of the stack.

Hetzner mails a root password for each server created without a key. The stack always
gives one: the names of keys the project has, public keys from the settings (registered
here), or, when `hetzner.ssh_keys` is empty, a key generated for the stack whose private
half is a secret output. SSH itself stays closed to the world (see the firewalls).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_hcloud as hcloud
import pulumi_tls as tls

from components.model.settings import is_public_key


@dataclass(frozen=True, kw_only=True)
class RootKeysArgs:
    """Arguments of RootKeys."""

    keys: tuple[str, ...]  # names or OpenSSH public keys, as the settings hold them
    labels: dict[str, str]


class RootKeys(pulumi.ComponentResource):
    """The keys to put on each server, and the generated private key if there is one."""

    names: list[pulumi.Output[str]]
    private_key: pulumi.Output[str | None]

    def __init__(
        self, name: str, args: RootKeysArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jitsi-xxl:access:RootKeys", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        public = [k for k in args.keys if is_public_key(k)]
        named = [pulumi.Output.from_input(k) for k in args.keys if not is_public_key(k)]
        private: pulumi.Output[str | None] = pulumi.Output.from_input(None)
        if not args.keys:
            generated = tls.PrivateKey(
                f"{name}-generated", tls.PrivateKeyArgs(algorithm="ED25519"), opts=child
            )
            public_keys: list[pulumi.Input[str]] = [generated.public_key_openssh]
            private = pulumi.Output.secret(generated.private_key_openssh)
        else:
            public_keys = list(public)
        registered = [
            hcloud.SshKey(
                f"{name}-{i + 1}",
                hcloud.SshKeyArgs(public_key=key, labels=args.labels),
                opts=child,
            )
            for i, key in enumerate(public_keys)
        ]
        # a server takes keys by name or id; ours by id, so the server depends on the key
        self.names = [*named, *(k.id for k in registered)]
        self.private_key = private
        self.register_outputs({"keys": len(self.names)})
