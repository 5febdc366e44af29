"""Benchmark: `xxl plan` side by side with the SDK floor, in one run.

For each stack, alternately, in fresh processes:
  floor   a minimal program that registers the same number of resources, all of the stack's
          main provider type (hcloud.Server or aws.ec2.Instance, required inputs only), under
          the same mocks (components.offline.mocks.OfflineMocks): what any program registering that
          many resources through that provider SDK pays
  plan    `xxl plan --stack <stack> --format json`
Reports the median wall time and the median peak memory (max RSS) of each, and their ratio.
The machines are noisy: read medians and ratios.

    .venv/bin/python bench/plan.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACKS = (
    ROOT / "stacks" / "Pulumi.aws-10k.yaml",
    ROOT / "stacks" / "Pulumi.hetzner-10k.yaml",
    ROOT / "bench" / "stacks" / "Pulumi.hetzner-100k.yaml",
)

FLOOR = """
import sys
import pulumi
from components.offline.mocks import run_program
count = int(sys.argv[1])
program = sys.argv[2]
run = run_program({{}}, "floor", program=__import__("pathlib").Path(program))
assert len(run.resources) == count, (len(run.resources), count)
"""

FLOOR_PROGRAMS = {
    "hetzner": """
import pulumi_hcloud as hcloud
for i in range({count}):
    hcloud.Server(f"server-{{i}}", server_type="ccx33", image="ubuntu-24.04")
""",
    "aws": """
import pulumi_aws as aws
for i in range({count}):
    aws.ec2.Instance(f"instance-{{i}}", ami="ami-0123456789abcdef0", instance_type="c6i.2xlarge")
""",
}


def measure(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{argv} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return wall, usage.ru_maxrss / 1024


def resource_count(stack: Path) -> int:
    xxl = str(Path(sys.executable).parent / "xxl")
    out = subprocess.run(
        [xxl, "plan", "--stack", str(stack), "--format", "json"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return len(json.loads(out.stdout)["resources"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    xxl = str(Path(sys.executable).parent / "xxl")
    print(f"{rounds} rounds, fresh processes, medians")
    print(f"{'stack':<14} {'resources':>9} {'floor s':>8} {'plan s':>7} {'ratio':>6} "
          f"{'floor MiB':>10} {'plan MiB':>9} {'ratio':>6}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for stack in STACKS:
            count = resource_count(stack)
            program = Path(tmp) / f"floor_{count}.py"
            cloud = "aws" if "aws" in stack.name else "hetzner"
            program.write_text(FLOOR_PROGRAMS[cloud].format(count=count))
            floor_argv = [sys.executable, "-c", FLOOR.format(), str(count), str(program)]
            plan_argv = [xxl, "plan", "--stack", str(stack), "--format", "json"]
            floors, plans = [], []
            for _ in range(rounds):
                floors.append(measure(floor_argv))
                plans.append(measure(plan_argv))
            fw = statistics.median(w for w, _ in floors)
            pw = statistics.median(w for w, _ in plans)
            fm = statistics.median(m for _, m in floors)
            pm = statistics.median(m for _, m in plans)
            name = stack.name.removeprefix("Pulumi.").removesuffix(".yaml")
            print(f"{name:<14} {count:>9} {fw:>8.2f} {pw:>7.2f} {pw / fw:>6.2f} "
                  f"{fm:>10.0f} {pm:>9.0f} {pm / fm:>6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
