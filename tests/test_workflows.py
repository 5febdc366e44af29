"""The GitHub workflows: they parse, pin every action by commit, grant least permissions,
run the same `make test`, and keep fork code away from write tokens."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def load(path: Path) -> dict[Any, Any]:
    doc = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True
    doc["on"] = doc.pop(True, doc.get("on"))
    result: dict[Any, Any] = doc
    return result


def steps(doc: dict[Any, Any]) -> list[dict[str, Any]]:
    return [s for job in doc["jobs"].values() for s in job.get("steps", [])]


def test_the_three_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} == {"ci.yml", "preview.yml", "comment.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_pinned_by_commit_with_version_comment(path: Path) -> None:
    text = path.read_text()
    uses = [s["uses"] for s in steps(load(path)) if "uses" in s]
    assert uses
    for ref in uses:
        assert PINNED.match(ref), f"{path.name}: {ref} is not pinned to a commit"
        assert re.search(re.escape(ref) + r" # v\d+\.\d+\.\d+", text), f"{ref}: no version comment"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_permissions(path: Path) -> None:
    doc = load(path)
    assert doc["permissions"] == {}, "the workflow grants nothing by default"
    for name, job in doc["jobs"].items():
        assert "permissions" in job, f"{name} names its permissions"
        assert "write-all" not in str(job["permissions"])
        for step in job.get("steps", []):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_ci_runs_make_test_through_ci_run() -> None:
    doc = load(ROOT / ".github" / "workflows" / "ci.yml")
    runs = " ".join(s.get("run", "") for s in steps(doc))
    assert "bash .ci/run" in runs
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert any("actions/cache@" in s.get("uses", "") for s in steps(doc))


def test_preview_uses_the_policy_pack_and_forks_get_the_offline_plan() -> None:
    doc = load(ROOT / ".github" / "workflows" / "preview.yml")
    preview, offline = doc["jobs"]["preview"], doc["jobs"]["offline-plan"]
    assert "head.repo.full_name == github.repository" in preview["if"]
    assert "head.repo.full_name != github.repository" in offline["if"]
    action = next(s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert action["with"]["command"] == "preview"
    assert action["with"]["policyPacks"] == "policy"
    assert action["with"]["comment-on-pr"] is True
    assert "secrets." not in str(offline), "fork jobs get no secrets"
    assert "--format markdown" in " ".join(s.get("run", "") for s in offline["steps"])


def test_the_privileged_comment_job_never_runs_fork_code() -> None:
    doc = load(ROOT / ".github" / "workflows" / "comment.yml")
    assert doc["on"] == {"workflow_run": {"workflows": ["preview"], "types": ["completed"]}}
    for step in steps(doc):
        assert not step.get("uses", "").startswith("actions/checkout@")
        assert "run" not in step
