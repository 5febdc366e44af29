"""Benchmark: viewers joining the signaling twin, side by side with stock MUC presence, in one run.

Boots the twin of the 10k Hetzner stack (the signaling VM from its user data, prosody 13 and
Jitsi's real plugins; see the README's testing section) and, per repetition:

  1 node, the storm        the stack with one visitor node: `--viewers` joining within
                           `--storm` seconds, holding, leaving
  1 node, side by side     on the same node, `--side-by-side` crowds at `--slow-ramp` joins a
                           second, as rendered and with visitor presence broadcast on (the one
                           line `muc_room_default_presence_broadcast` changed back to stock MUC
                           behaviour): the stanzas per join as the room grows
  8 nodes, the storm       the stack as rendered, the same storm spread over its nodes
  8 nodes, the largest     `--eight-nodes` viewers at `--eight-ramp` joins a second: the
                           largest crowd this machine generates and serves at once

Each repetition boots fresh twins and times the boot (container start to readiness report).
Writes bench/results/: load.json (every run's summary), capacity.md (the table and arithmetic
the README shows), capacity.png (join latency and CPU against connected viewers) and
runs.pickle (the raw runs).

    .venv/bin/python bench/load.py [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pickle
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.load.capacity import extrapolate  # noqa: E402
from components.load.metrics import Summary, summarize  # noqa: E402
from components.load.report import Scenario, plot, spread, table  # noqa: E402
from components.load.run import LoadError, LoadRun, LoadSpec, run  # noqa: E402
from components.model.planner import plan  # noqa: E402
from components.model.settings import Settings, load_stack_file  # noqa: E402
from components.twin import rig  # noqa: E402

STACK = ROOT / "stacks" / "Pulumi.hetzner-10k.yaml"
RESULTS = ROOT / "bench" / "results"
BROADCAST_LINE = "muc_room_default_presence_broadcast = { visitor = false;"
STOCK_LINE = "muc_room_default_presence_broadcast = { visitor = true;"


def one_node(settings: Settings) -> Settings:
    """The stack with one visitor node, at its default cap."""
    visitors = settings.visitors.model_copy(update={"nodes": 1})
    return settings.model_copy(update={"visitors": visitors, "audience": visitors.max_per_node})


@contextlib.contextmanager
def booted(settings: Settings, boots: list[float]) -> Iterator[rig.Twin]:
    with rig.running(settings, boot=False) as twin:
        began = time.monotonic()
        twin.boot()
        boots.append(time.monotonic() - began)
        yield twin


def set_broadcast(twin: rig.Twin, stock: bool) -> None:
    """Visitor presence broadcast on (stock) or off (as rendered) on node v1, then restart it."""
    config = twin.path("/etc/prosody-v1/prosody.cfg.lua")
    text = config.read_text()
    old, new = (BROADCAST_LINE, STOCK_LINE) if stock else (STOCK_LINE, BROADCAST_LINE)
    if old not in text and new not in text:
        raise SystemExit(f"node v1's config has no {BROADCAST_LINE!r}: the bench is out of date")
    if old not in text:
        return
    config.write_text(text.replace(old, new))
    done = twin.run("systemctl", "restart", "prosody-v@1", timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"restarting prosody-v@1 failed: {done.stderr}")
    time.sleep(3)  # jicofo reconnects to the node


@dataclass
class Bench:
    """The runs of the whole benchmark, as they come in."""

    args: argparse.Namespace
    rows: dict[str, list[Summary]] = field(default_factory=dict)
    runs: list[LoadRun] = field(default_factory=list)
    boots: list[float] = field(default_factory=list)

    def record(self, name: str, result: LoadRun) -> None:
        summary = summarize(result)
        self.rows.setdefault(name, []).append(summary)
        self.runs.append(result)
        for note in result.notes:
            print(f"  note: {note}", flush=True)
        print(
            f"  {name}: {summary.joined}/{summary.viewers} joined, p50 {summary.join_p50:.2f} s,"
            f" p99 {summary.join_p99:.2f} s, {summary.stanzas_per_join:.1f} stanzas/join",
            flush=True,
        )

    def one_node_round(self, settings: Settings) -> None:
        a = self.args
        with booted(settings, self.boots) as twin:
            storm = LoadSpec(a.viewers, a.viewers / a.storm, a.hold)
            self.record(f"1 node, {a.viewers} in {a.storm:g} s", run(twin, storm, "1 node"))
            for stock in (False, True):
                set_broadcast(twin, stock=stock)
                kind = "stock presence" if stock else "as rendered"
                for viewers in a.side_by_side:
                    spec = LoadSpec(viewers, a.slow_ramp, a.hold)
                    result = run(twin, spec, "stock" if stock else "rendered")
                    self.record(f"1 node, {viewers} at {a.slow_ramp:g}/s, {kind}", result)

    def eight_node_round(self, settings: Settings) -> None:
        a = self.args
        with booted(settings, self.boots) as twin:
            storm = LoadSpec(a.viewers, a.viewers / a.storm, a.hold, sites=32)
            self.record(f"8 nodes, {a.viewers} in {a.storm:g} s", run(twin, storm, "8 nodes"))
            spec = LoadSpec(a.eight_nodes, a.eight_ramp, a.hold, sites=64, workers=2)
            name = f"8 nodes, {a.eight_nodes} at {a.eight_ramp:g}/s"
            self.record(name, run(twin, spec, "8 nodes, largest"))

    def write(self, base: Settings) -> str:
        a = self.args
        a.out.mkdir(parents=True, exist_ok=True)
        scenarios = [Scenario(name, tuple(s)) for name, s in self.rows.items()]
        data = {
            "boots": self.boots,
            "scenarios": {n: [asdict(s) for s in ss] for n, ss in self.rows.items()},
        }
        (a.out / "load.json").write_text(json.dumps(data, indent=1))
        one = [r for r in self.runs if r.label == "1 node"]
        eight = [r for r in self.runs if r.label == "8 nodes"]
        largest = [r for r in self.runs if r.label == "8 nodes, largest"]
        plot([*one[-1:], *eight[-1:], *largest[-1:]], a.out / "capacity.png")
        lines = ["", "Stanzas per join, stock presence / as rendered, same node, same crowd:"]
        for viewers in a.side_by_side:
            ours = self.rows[f"1 node, {viewers} at {a.slow_ramp:g}/s, as rendered"]
            stock = self.rows[f"1 node, {viewers} at {a.slow_ramp:g}/s, stock presence"]
            ratio = [
                s.stanzas_per_join / o.stanzas_per_join for s, o in zip(stock, ours, strict=True)
            ]
            lines.append(f"- {viewers} viewers: {spread(ratio, '{:.1f}')}x")
        measured = self.rows[f"8 nodes, {a.eight_nodes} at {a.eight_ramp:g}/s"]
        text = (
            table(scenarios)
            + "\n".join(lines)
            + "\n\nTime to ready (container start to readiness report, packages local): "
            + f"{spread(self.boots, '{:.0f}')} s over {len(self.boots)} boots.\n\n"
            + extrapolate(measured, plan(base)).markdown()
        )
        (a.out / "capacity.md").write_text(text)
        return text


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a few hundred viewers, one round")
    parser.add_argument("--viewers", type=int, default=2000, help="the storm's viewers")
    parser.add_argument("--storm", type=float, default=60.0, help="seconds the storm takes")
    parser.add_argument("--side-by-side", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--slow-ramp", type=float, default=5.0, help="joins/s, side by side")
    parser.add_argument("--eight-nodes", type=int, default=8000)
    parser.add_argument("--eight-ramp", type=float, default=25.0)
    parser.add_argument("--hold", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.viewers, args.side_by_side, args.eight_nodes = 1, 200, [50], 300
        args.storm = 20.0
    return args


def main() -> int:
    args = arguments()
    base = load_stack_file(STACK).settings
    bench = Bench(args)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        for round_ in range(args.repeat):
            print(f"round {round_ + 1} of {args.repeat}", flush=True)
            bench.one_node_round(one_node(base))
            bench.eight_node_round(base)
    except (rig.TwinError, LoadError) as exc:
        print(f"bench/load.py: {exc}", file=sys.stderr)
        return 1
    with (args.out / "runs.pickle").open("wb") as raw:
        pickle.dump(bench.runs, raw)  # the raw runs, should the report need drawing again
    print(bench.write(base))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
