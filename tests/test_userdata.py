"""Cloud-init user data: built as data, round-trips, grows slowly, stays under both caps."""

from __future__ import annotations

import ast
import base64
import gzip
import io
import json
import lzma
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.model.credentials import Credentials
from components.model.planner import plan
from components.model.project import Cloud
from components.model.settings import parse_settings
from components.rendering import userdata
from components.rendering.engine import RenderedFile, render
from components.rendering.scaler_files import scaler_bundle
from components.rendering.signaling_files import NODE_TEMPLATE, context, expand_node
from components.rendering.userdata import (
    BOOTSTRAP,
    READY_REPORT,
    ROOTFS_ARCHIVE,
    USER_DATA_CAPS,
    UserDataTooLargeError,
    check_caps,
    empty_python_docs,
    for_transport,
    user_data_bytes,
)
from tests.conftest import ROOT, render_stack


def settings_for(nodes: int, cloud: str = "aws") -> Any:
    return parse_settings(
        {
            "cloud": cloud,
            "domain": "a-rather-long-subdomain.events.example.org",
            "audience": 100,
            "tls": {"mode": "letsencrypt", "email": "ops@example.org"},
            "visitors": {"nodes": nodes},
        }
    )


def unpack(user_data: str) -> dict[str, str]:
    doc = yaml.safe_load(user_data)
    (entry,) = doc["write_files"]
    assert entry["path"] == ROOTFS_ARCHIVE
    assert entry["encoding"] == "b64"
    raw = lzma.decompress(base64.b64decode(entry["content"]))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {
            "/" + m.name: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in tar.getmembers()
        }


def test_archive_round_trips_every_file() -> None:
    _, bundle = render_stack(settings_for(8), creds=Credentials.throwaway())
    assert bundle.user_data.startswith("#cloud-config\n")
    files = unpack(bundle.user_data)
    held = {f.path: f.content for f in bundle.files}
    # everything travels but the visitor nodes' configs, which the bootstrap makes from one
    # template (test_node_template_expands_to_every_node)
    nodes = {p for p in held if re.fullmatch(r"/etc/prosody-v[0-9]+/prosody\.cfg\.lua", p)}
    assert len(nodes) == 8
    assert files == {p: c for p, c in held.items() if p not in nodes}
    doc = yaml.safe_load(bundle.user_data)
    assert doc["runcmd"][-1] == [BOOTSTRAP]
    assert BOOTSTRAP.lstrip("/") in doc["runcmd"][0]


def test_aws_gets_the_same_text_gzip_compressed() -> None:
    _, bundle = render_stack(settings_for(8))
    sent = user_data_bytes(bundle.user_data, Cloud.aws)
    assert gzip.decompress(sent).decode() == bundle.user_data
    assert user_data_bytes(bundle.user_data, Cloud.hetzner) == bundle.user_data.encode()


@pytest.mark.parametrize("cloud", ["aws", "hetzner"])
def test_sixty_four_nodes_fit_both_caps(cloud: str) -> None:
    _, bundle = render_stack(settings_for(64, cloud), creds=Credentials.throwaway())
    sizes = check_caps(bundle.user_data)
    for c, size in sizes.items():
        assert size <= USER_DATA_CAPS[c]


def test_growth_per_node_is_bounded() -> None:
    def size(n: int) -> int:
        return len(render_stack(settings_for(n))[1].user_data.encode())

    for n in (1, 8, 9, 31, 63):
        assert size(n + 1) - size(n) <= 256, f"node {n + 1} added more than 256 bytes"
    assert (size(64) - size(1)) / 63 <= 256


def test_over_a_cap_says_by_how_much(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(userdata.USER_DATA_CAPS, Cloud.hetzner, 1000)
    with pytest.raises(UserDataTooLargeError, match=r"bytes, \d+ over the hetzner cap of 1000"):
        render_stack(settings_for(2, "hetzner"))


def test_archive_is_reproducible() -> None:
    a = render_stack(settings_for(3))[1].user_data
    b = render_stack(settings_for(3))[1].user_data
    assert a == b


@pytest.mark.parametrize("cloud", ["aws", "hetzner"])
def test_node_template_expands_to_every_node(cloud: str) -> None:
    """The template that travels, expanded as the bootstrap does, gives exactly what rendering
    each node directly gives (comments emptied as for transport), for all 64 nodes."""
    settings = settings_for(64, cloud)
    the_plan = plan(settings)
    _, bundle = render_stack(settings)
    template = unpack(bundle.user_data)[NODE_TEMPLATE]
    ctx = context(settings, the_plan)
    for node, view in zip(the_plan.nodes, ctx["nodes"], strict=True):
        direct = render("signaling/etc/prosody-vN/prosody.cfg.lua.j2", {**ctx, "node": view})
        expected = for_transport(RenderedFile(NODE_TEMPLATE, direct)).content
        assert expand_node(template, node) == expected, node.name
        assert bundle.vm.file(f"{node.config_dir}/prosody.cfg.lua").content == expected


def docstrings(tree: ast.AST) -> list[ast.Expr]:
    """The docstrings of a parsed module, its classes and functions, as Python sees them."""
    owners = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return [
        node.body[0]
        for node in ast.walk(tree)
        if isinstance(node, owners)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
        and isinstance(node.body[0].value.value, str)
    ]


def _without_docstrings(source: str) -> str:
    tree = ast.parse(source)
    for doc in docstrings(tree):
        doc.value = ast.Constant(value="")
    return ast.dump(tree)


@pytest.mark.parametrize("source", sorted((ROOT / "components" / "agents").glob("*.py")))
def test_python_travels_as_the_same_program_with_the_same_lines(source: Path) -> None:
    """The agents travel without docstrings and comments: the same syntax tree but for the
    docstrings' text, every line where it was (a traceback on a VM cites the repository's)."""
    text = source.read_text()
    sent = empty_python_docs(text)
    assert _without_docstrings(sent) == _without_docstrings(text)
    assert [d.value.value.strip() for d in docstrings(ast.parse(sent))] == [  # type: ignore[attr-defined]
        "" for _ in docstrings(ast.parse(text))
    ]
    assert len(sent.splitlines()) == len(text.splitlines())
    assert len(sent) < len(text)
    assert '"""' not in "".join(line for line in sent.splitlines() if line.strip() != '"""')
    assert not [line for line in sent.splitlines()[1:] if line.lstrip().startswith("#")]


def test_a_string_that_is_not_a_docstring_is_kept() -> None:
    source = 'def f():\n    """Doc."""\n    x = "kept"  # why\n    return x\n'
    sent = empty_python_docs(source)
    assert sent == 'def f():\n    ""\n    x = "kept"\n    return x\n'
    assert _without_docstrings(sent) == _without_docstrings(source)
    # no docstring: an f-string or bytes first, a one-line class before a block, a string
    # that is part of an expression
    kept = (
        'def g(x):\n    f"{x}"\n    b"raw"\n',
        'class A: pass\nif True:\n    "not a docstring"\n',
        'def h():\n    "a" + "b"\n',
    )
    for text in kept:
        assert empty_python_docs(text) == text, text


def test_the_archive_is_one_plain_line_of_base64() -> None:
    _, bundle = render_stack(settings_for(8))
    doc = yaml.safe_load(bundle.user_data)
    content = doc["write_files"][0]["content"]
    assert "\n" not in content
    assert lzma.decompress(base64.b64decode(content))
    assert content in bundle.user_data  # a plain scalar: the marker's place, nothing else


def test_a_readiness_report_without_probes_is_json(tmp_path: Path) -> None:
    """The scaler VM probes nothing and reports only its autoscaler: the report must still
    be JSON (the twin found `[,{...}]`, an extra result after no checks)."""
    settings = parse_settings({"cloud": "hetzner", "domain": "live.example.org",
                               "tls": {"mode": "self-signed"}})  # fmt: skip
    vm = scaler_bundle(settings, plan(settings), Credentials.placeholders())
    script = vm.file(BOOTSTRAP).content
    report = tmp_path / "ready.json"
    script = script.replace(f"readonly REPORT={READY_REPORT}", f"readonly REPORT={report}")
    script = script.rsplit('main "$@"', 1)[0] + "report autoscaler false || true\n"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    doc = json.loads(report.read_text())
    assert doc["checks"] == [{"name": "autoscaler", "ok": False}]
    assert doc["ready"] is False
    assert doc["bridge_pool"]["scale_up_above"] == 0.3
