"""StackSecrets: the stack's shared passwords, generated once and kept as Pulumi secrets.

Creates one `random.RandomPassword` per credential. They live in the stack's state, so a
later `pulumi up` keeps them; every value derived from them (user data, jicofo's config)
stays secret.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import pulumi
import pulumi_random as random

from components.model.credentials import Credentials


@dataclass(frozen=True, kw_only=True)
class StackSecretsArgs:
    """Arguments of StackSecrets."""

    length: int = 32


class StackSecrets(pulumi.ComponentResource):
    """Generated credentials for jicofo, the bridges, the visitor nodes and coturn."""

    credentials: pulumi.Output[Credentials]

    def __init__(
        self, name: str, args: StackSecretsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jitsi-xxl:secrets:StackSecrets", name, None, opts)
        passwords = {
            f.name: random.RandomPassword(
                f"{name}-{f.name.replace('_', '-')}",
                random.RandomPasswordArgs(length=args.length, special=False),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for f in fields(Credentials)
        }
        names = list(passwords)
        self.credentials = pulumi.Output.secret(
            pulumi.Output.all(*(p.result for p in passwords.values())).apply(
                lambda values: Credentials(**dict(zip(names, values, strict=True)))
            )
        )
        self.register_outputs({})
