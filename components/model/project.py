"""The project's fixed names, shared by the settings model and the planner (which the model
uses for its rules between sections, so neither imports the other's module at load time)."""

from __future__ import annotations

from enum import StrEnum, unique
from typing import Final

PROJECT: Final = "jitsi-xxl"
# The web client and jigasi hard-code `vN.meet.jitsi` as the visitor domains.
VISITOR_DOMAIN_SUFFIX: Final = "meet.jitsi"


@unique
class Cloud(StrEnum):
    """Where the stack runs."""

    aws = "aws"
    hetzner = "hetzner"


# The instance metadata service of both AWS and Hetzner Cloud, from inside a VM.
METADATA_ADDRESS: Final = "169.254.169.254"
# Hetzner Cloud's API, for the autoscaler on the scaler VM and the stack's sweep.
HETZNER_API_ENDPOINT: Final = "https://api.hetzner.cloud/v1"
