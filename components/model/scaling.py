"""How the bridge pool follows its load, on both clouds: one signal, one set of thresholds.

AWS carries these out with target tracking; on Hetzner, which has no autoscaling service, the
autoscaler on the signaling VM does (`components/agents/hetzner_autoscaler.py`).
"""

from __future__ import annotations

from typing import Final

# Jitsi's own autoscaler scales up above 0.3 stress: target tracking keeps the average there.
STRESS_TARGET: Final = 0.3
# Below this average the pool is far larger than its load: one bridge can go.
SCALE_IN_BELOW: Final = 0.1
# A bridge needs a few minutes to boot, install and join the brewery before it carries load:
# it is not judged before, and growth waits this long before judging the grown pool.
WARMUP_SECONDS: Final = 300
# Target tracking's scale-in cooldown (AWS's default): shrink slowly, a drain takes minutes.
SCALE_IN_COOLDOWN_SECONDS: Final = 300
# Servers added per step: a spread group's worth (Hetzner allows 10 in one). A pool growing
# to its floor before an event adds this many every round until it is there.
MAX_STEP_UP: Final = 10
# Bridges drained per step: each takes its viewers' reconnections with it.
MAX_STEP_DOWN: Final = 2
# How often the Hetzner autoscaler looks: 3,600 API requests an hour is the project's limit,
# and one round costs two (list servers, and placement groups when it adds).
HETZNER_POLL_SECONDS: Final = 30
