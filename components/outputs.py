"""Stack output names, shared by `__main__.py` and the tests."""

from typing import Final

OUTPUT_S2S_CONFIG: Final = "s2s_config"
OUTPUT_JICOFO_VISITORS_CONFIG: Final = "jicofo_visitors_config"
OUTPUT_CAPACITY: Final = "capacity"
OUTPUT_PLAN: Final = "plan"
OUTPUT_URL: Final = "url"
