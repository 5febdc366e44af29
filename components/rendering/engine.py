"""The one jinja environment, and the serialising filters every template uses.

Templates only place values; everything they place is computed in Python beforehand. The
environment is strict (an undefined name is an error) and render errors name the template
and line.
"""

from __future__ import annotations

import json
import re
import shlex
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import jinja2

TEMPLATES_DIR: Final = Path(__file__).resolve().parents[2] / "templates"

_LUA_IDENT: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOCON_BARE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class RenderedFile:
    """A file for a VM: absolute path, text, mode, and the group that may read it."""

    path: str
    content: str
    mode: int = 0o644
    group: str = "root"


@dataclass(frozen=True)
class FileSpec:
    """A template and the file it becomes; `{domain}` in the target stands for the domain."""

    template: str
    target: str
    mode: int = 0o644
    group: str = "root"


def render_specs(
    specs: Iterable[FileSpec], context: Mapping[str, Any], domain: str, root: str = ""
) -> tuple[RenderedFile, ...]:
    """Render each spec with one context; `root` prefixes the targets (local runs)."""
    return tuple(
        RenderedFile(
            root + s.target.format(domain=domain), render(s.template, context), s.mode, s.group
        )
        for s in specs
    )


class RenderError(Exception):
    """A template could not be rendered; the message names the template and line."""


def lua(value: object) -> str:
    """Serialise a Python value as a Lua literal (strings double-quoted and escaped)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        escaped = (
            value.replace("\\", "\\\\")
            .replace('"', '\\"')
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
        return f'"{escaped}"'
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            k = key if isinstance(key, str) and _LUA_IDENT.match(key) else f"[{lua(key)}]"
            items.append(f"{k} = {lua(item)}")
        return "{ " + "; ".join(items) + " }" if items else "{}"
    if isinstance(value, list | tuple | frozenset | set):
        return "{ " + "; ".join(lua(v) for v in value) + " }" if value else "{}"
    raise TypeError(f"no Lua form for {type(value).__name__}")


def hocon(value: object) -> str:
    """Serialise a scalar or list as a HOCON value (strings as JSON strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(hocon(v) for v in value) + "]"
    raise TypeError(f"no HOCON form for {type(value).__name__}")


def hocon_key(value: str) -> str:
    """A path element: bare when HOCON allows it, quoted otherwise."""
    return value if _HOCON_BARE.match(value) else json.dumps(value)


def sh(value: object) -> str:
    """Quote a value for bash."""
    return shlex.quote(str(value))


def sh_array(values: object) -> str:
    """A bash array literal: `(a b c)`, each element quoted."""
    if not isinstance(values, list | tuple):
        raise TypeError("sh_array takes a list")
    return "(" + " ".join(sh(v) for v in values) + ")"


def js(value: object) -> str:
    """A JavaScript literal (JSON is valid JavaScript)."""
    return json.dumps(value, sort_keys=True)


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - nothing here is HTML; values go through typed filters
    )
    env.filters.update(lua=lua, hocon=hocon, hocon_key=hocon_key, sh=sh, sh_array=sh_array, js=js)
    return env


def render(template: str, context: Mapping[str, Any]) -> str:
    """Render one template; errors are re-raised with the template name and line."""
    try:
        return environment().get_template(template).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"{exc.name or template}:{exc.lineno}: {exc.message}") from exc
    except (jinja2.UndefinedError, TypeError, ValueError) as exc:
        line = next(
            (
                f"{Path(f.filename).relative_to(TEMPLATES_DIR)}:{f.lineno}"
                for f in reversed(traceback.extract_tb(exc.__traceback__))
                if f.filename.endswith(".j2")
            ),
            template,
        )
        raise RenderError(f"{line}: {exc}") from exc
