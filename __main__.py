"""jitsi-xxl: load the stack's settings, plan the topology, render the signaling VM, export."""

import pulumi

from components.credentials import Credentials
from components.outputs import (
    OUTPUT_CAPACITY,
    OUTPUT_JICOFO_VISITORS_CONFIG,
    OUTPUT_PLAN,
    OUTPUT_S2S_CONFIG,
    OUTPUT_URL,
)
from components.planner import plan
from components.signaling_files import jicofo_visitors, s2s_snippet
from components.stack_config import load_settings
from components.stack_secrets import StackSecrets, StackSecretsArgs

settings = load_settings()
the_plan = plan(settings)
secrets = StackSecrets("jitsi", StackSecretsArgs())


def _jicofo(creds: Credentials) -> str:
    return jicofo_visitors(settings, the_plan, creds)


pulumi.export(OUTPUT_URL, f"https://{settings.domain}/")
pulumi.export(OUTPUT_S2S_CONFIG, s2s_snippet(settings, the_plan))
pulumi.export(
    OUTPUT_JICOFO_VISITORS_CONFIG, pulumi.Output.secret(secrets.credentials.apply(_jicofo))
)
pulumi.export(
    OUTPUT_CAPACITY,
    {
        "viewers": the_plan.capacity.viewers,
        "binding": the_plan.capacity.binding,
        "visitor_nodes": len(the_plan.nodes),
        "bridges": {
            "min": the_plan.bridges.min,
            "desired": the_plan.bridges.desired,
            "max": the_plan.bridges.max,
        },
    },
)
pulumi.export(
    OUTPUT_PLAN, {"nodes": [n.name for n in the_plan.nodes], "warnings": list(the_plan.warnings)}
)
