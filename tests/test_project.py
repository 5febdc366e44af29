"""Pulumi.yaml and the README agree with the settings model."""

from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from components.model.project import PROJECT
from components.model.settings import SECRET_KEYS, Settings
from tests.conftest import ROOT, example_stacks


def project() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    return doc


def test_project_file_basics() -> None:
    doc = project()
    assert doc["name"] == PROJECT
    assert doc["stackConfigDir"] == "stacks"
    assert doc["runtime"]["name"] == "python"


def test_every_key_is_declared_with_a_description() -> None:
    config = project()["config"]
    assert set(config) == set(Settings.model_fields) | SECRET_KEYS
    for key, decl in config.items():
        assert decl.get("description"), f"{key} has no description"
    for key in SECRET_KEYS:
        assert config[key]["secret"] is True


def test_declared_defaults_equal_the_model() -> None:
    config = project()["config"]
    for key, field in Settings.model_fields.items():
        decl = config[key]
        if field.is_required():
            assert "default" not in decl, f"{key} is required but declares a default"
            continue
        default = field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            assert decl.get("default", {}) == default.model_dump(mode="json", exclude_none=True), (
                key
            )
        elif default is None:
            assert "default" not in decl, f"{key} is optional: no default to declare"
        else:
            assert decl["default"] == default, key


def test_readme_documents_every_key() -> None:
    readme = (ROOT / "README.md").read_text()
    for key, field in Settings.model_fields.items():
        members = getattr(field.annotation, "__args__", (field.annotation,))
        model = next((a for a in members if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is not None:
            for sub in model.model_fields:
                assert f"`{key}.{sub}`" in readme, f"README lacks {key}.{sub}"
        else:
            assert f"`{key}`" in readme, f"README lacks {key}"
    for key in SECRET_KEYS:
        assert f"`{key}`" in readme, f"README lacks {key}"


def test_declarations_use_only_what_the_project_schema_allows() -> None:
    """Pulumi's project schema: a declaration may carry type (string, integer, boolean or
    array), items, description, secret and default. Objects have no declarable type, so
    object-valued keys carry a description and default only."""
    for key, decl in project()["config"].items():
        assert set(decl) <= {"type", "items", "description", "secret", "default"}, key
        field = Settings.model_fields.get(key)
        annotation = field.annotation if field else str
        members = getattr(annotation, "__args__", (annotation,))
        if any(isinstance(a, type) and issubclass(a, BaseModel) for a in members):
            assert "type" not in decl, key
        else:
            assert decl["type"] in {"string", "integer", "boolean", "array"}, key
            if decl["type"] == "array":
                assert decl["items"]["type"] == "string", key


def test_event_stacks_are_not_examples(tmp_path: Path) -> None:
    for name in ("Pulumi.trial.yaml", "Pulumi.event-summit.yaml"):
        (tmp_path / name).write_text("config: {}\n")
    assert [p.name for p in example_stacks(tmp_path)] == ["Pulumi.trial.yaml"]
    patterns = (ROOT / ".gitignore").read_text().splitlines()
    assert any(fnmatch("stacks/Pulumi.event-summit.yaml", p) for p in patterns), (
        "event stacks must be git-ignored"
    )


def test_readme_layout_names_every_module() -> None:
    """The README's layout section matches the tree: every package and module is named."""
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("```", 2)[1]
    missing = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "components").rglob("*.py"))
        if p.name != "__init__.py" and p.name not in layout
    ]
    missing += [
        str(d.relative_to(ROOT))
        for d in sorted((ROOT / "components").iterdir())
        if d.is_dir() and d.name != "__pycache__" and f"{d.name}/" not in layout
    ]
    assert not missing, f"README layout does not name: {missing}"


def test_readme_lists_every_output_and_whether_it_is_secret() -> None:
    from components.cloud.outputs import ALL_OUTPUTS, SECRET_OUTPUTS

    section = (ROOT / "README.md").read_text().split("## Outputs", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `([a-z0-9_]+)` \| (yes|no) \|", section, re.M))
    assert set(rows) == set(ALL_OUTPUTS)
    assert {name for name, secret in rows.items() if secret == "yes"} == SECRET_OUTPUTS
