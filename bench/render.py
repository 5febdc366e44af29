"""Benchmark: `xxl render` of the 10k stacks, side by side with the interpreter floor.

Each round runs, in the same conditions, one after another:
  floor   python -c "import components.offline.cli" (interpreter start plus our imports, no work)
  render  xxl render --stack stacks/Pulumi.<stack>.yaml --out <tmp> (the whole command)
and, in process, the render alone (settings -> files -> user data), without start-up.
Prints medians over the rounds and the ratio render / floor. The machines are noisy:
read medians and ratios, not single numbers.

    .venv/bin/python bench/render.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.model.credentials import Credentials  # noqa: E402
from components.model.planner import plan  # noqa: E402
from components.model.settings import load_stack_file  # noqa: E402
from components.rendering.signaling_files import signaling_bundle  # noqa: E402

STACKS = ("aws-10k", "hetzner-10k")


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def in_process(stack: Path) -> float:
    start = time.perf_counter()
    settings = load_stack_file(stack).settings
    signaling_bundle(settings, plan(settings), Credentials.throwaway())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    python = sys.executable
    xxl = str(Path(python).parent / "xxl")
    print(f"{rounds} rounds; medians in milliseconds")
    print(f"{'stack':<12} {'floor':>8} {'xxl render':>11} {'ratio':>6} {'render only':>12}")
    with tempfile.TemporaryDirectory() as out:
        for name in STACKS:
            stack = ROOT / "stacks" / f"Pulumi.{name}.yaml"
            floor, full, inner = [], [], []
            for _ in range(rounds):
                floor.append(wall([python, "-c", "import components.offline.cli"]))
                full.append(wall([xxl, "render", "--stack", str(stack), "--out", out]))
                inner.append(in_process(stack))
            f, r, i = (statistics.median(x) * 1000 for x in (floor, full, inner))
            print(f"{name:<12} {f:>8.0f} {r:>11.0f} {r / f:>6.2f} {i:>12.1f}")


if __name__ == "__main__":
    main()
