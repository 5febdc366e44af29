"""Stack output names, shared by `__main__.py`, `xxl plan` and the tests."""

from typing import Final

OUTPUT_URL: Final = "url"
OUTPUT_SIGNALING_PUBLIC_IP: Final = "signaling_public_ip"
OUTPUT_SIGNALING_PRIVATE_IP: Final = "signaling_private_ip"
OUTPUT_S2S_CONFIG: Final = "s2s_config"
OUTPUT_JICOFO_VISITORS_CONFIG: Final = "jicofo_visitors_config"
OUTPUT_BRIDGE_POOL: Final = "bridge_pool"
OUTPUT_CAPACITY: Final = "capacity"
OUTPUT_COST: Final = "estimated_cost_per_hour"
OUTPUT_PLAN: Final = "plan"
# The HS256 key of the hosts' tokens; `xxl token` reads it from here.
OUTPUT_JWT_APP_SECRET: Final = "jwt_app_secret"  # noqa: S105 - a name, not a value
# root's private key when the stack generated one (Hetzner without `hetzner.ssh_keys`), else null
OUTPUT_SSH_PRIVATE_KEY: Final = "ssh_private_key"
# the settings of the last deployment, nothing secret among them
OUTPUT_SETTINGS: Final = "settings"

SECRET_OUTPUTS: Final = frozenset(
    {OUTPUT_JICOFO_VISITORS_CONFIG, OUTPUT_JWT_APP_SECRET, OUTPUT_SSH_PRIVATE_KEY}
)
ALL_OUTPUTS: Final = (
    OUTPUT_URL,
    OUTPUT_SIGNALING_PUBLIC_IP,
    OUTPUT_SIGNALING_PRIVATE_IP,
    OUTPUT_S2S_CONFIG,
    OUTPUT_JICOFO_VISITORS_CONFIG,
    OUTPUT_BRIDGE_POOL,
    OUTPUT_CAPACITY,
    OUTPUT_COST,
    OUTPUT_PLAN,
    OUTPUT_JWT_APP_SECRET,
    OUTPUT_SSH_PRIVATE_KEY,
    OUTPUT_SETTINGS,
)
