"""The Pulumi program under the SDK's mocks (no CLI, no cloud): settings, secrets, outputs."""

from __future__ import annotations

import asyncio
import json
import runpy
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest
import yaml

from components.outputs import OUTPUT_CAPACITY, OUTPUT_JICOFO_VISITORS_CONFIG, OUTPUT_S2S_CONFIG
from tests.conftest import ROOT


class Mocks(pulumi.runtime.Mocks):
    """Records resources; answers providers' computed fields; refuses unknown invokes."""

    def __init__(self) -> None:
        self.resources: list[tuple[str, str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append((args.typ, args.name, dict(args.inputs)))
        outputs = dict(args.inputs)
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = f"generated-{args.name}"
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        raise NotImplementedError(f"unmocked invoke {args.token}")


@pytest.fixture
def mocks() -> Iterator[Mocks]:
    m = Mocks()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(m, project="jitsi-xxl", stack="test", preview=False)
    loop.run_until_complete(pulumi.runtime.stack.wait_for_rpcs())
    yield m
    asyncio.set_event_loop(None)
    loop.close()


def set_stack_config(name: str) -> None:
    doc = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{name}.yaml").read_text())
    # the CLI hands objects to the program as JSON text, and scalars as text
    pulumi.runtime.set_all_config(
        {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in doc["config"].items()}
    )


def run_program() -> dict[str, Any]:
    exported: dict[str, Any] = {}
    original = pulumi.export

    def capture(name: str, value: Any) -> None:
        exported[name] = value
        original(name, value)

    pulumi.export = capture  # type: ignore[assignment]
    try:

        @pulumi.runtime.test
        def inner() -> None:
            runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

        inner()
    finally:
        pulumi.export = original  # type: ignore[assignment]
    return exported


def resolved(value: Any) -> Any:
    out: list[Any] = []

    @pulumi.runtime.test
    def grab() -> Any:
        return pulumi.Output.from_input(value).apply(out.append)

    grab()
    return out[0]


def is_secret(value: Any) -> bool:
    loop = asyncio.get_event_loop()
    return bool(loop.run_until_complete(pulumi.Output.from_input(value).is_secret()))


@pytest.mark.parametrize("stack", ["aws-10k", "hetzner-10k", "trial"])
def test_program_exports_s2s_and_jicofo(mocks: Mocks, stack: str) -> None:
    set_stack_config(stack)
    out = run_program()
    assert mocks.resources, "the program registered nothing"
    passwords = [r for r in mocks.resources if r[0] == "random:index/randomPassword:RandomPassword"]
    assert len(passwords) == 4
    assert len({name for _, name, _ in mocks.resources}) == len(mocks.resources)
    s2s = resolved(out[OUTPUT_S2S_CONFIG])
    assert "s2sout_override" in s2s
    assert "conference.v1.meet.jitsi" in s2s
    assert is_secret(out[OUTPUT_JICOFO_VISITORS_CONFIG])
    jicofo = resolved(out[OUTPUT_JICOFO_VISITORS_CONFIG])
    assert "generated-jitsi-visitor-focus-password" in jicofo
    assert resolved(out[OUTPUT_CAPACITY])["viewers"] > 0


def test_bad_config_registers_nothing(mocks: Mocks) -> None:
    set_stack_config("trial")
    pulumi.runtime.set_config("jitsi-xxl:audience", "lots")
    with pytest.raises(Exception, match="jitsi-xxl:audience"):
        run_program()
    assert not [r for r in mocks.resources if not r[0].startswith("pulumi:")]
