"""The upstream reference.conf files as an oracle: which keys jicofo and the videobridge know.

Many keys (jicofo's password, xmpp-domain, brewery-jid, the xmpp.visitors example; the
videobridge's relay region and relay-id, websockets tls) are documented only as comments;
uncommented `# key = value` lines count as known keys too.
"""

from __future__ import annotations

import re

from pyhocon import ConfigFactory, ConfigTree

from tests.conftest import UPSTREAM

_COMMENTED_KEY = re.compile(r"^(\s*)(?:#|//)\s*([A-Za-z][A-Za-z0-9-]*\s*(?:=|\{).*)$")
_COMMENTED_CLOSE = re.compile(r"^(\s*)(?:#|//)\s*(\}\s*)$")


def reference_tree(*names: str) -> ConfigTree:
    """Reference files merged into one tree, documented-but-commented keys included."""
    tree = ConfigTree()
    for name in names:
        lines = []
        in_array = False  # commented examples inside an array stay comments
        for text in (UPSTREAM / name).read_text().splitlines():
            live = re.sub(r"(#|//).*$", "", text)
            if re.search(r"\[\s*$", live):
                in_array = True
            elif "]" in live:
                in_array = False
            m = None if in_array else _COMMENTED_KEY.match(text) or _COMMENTED_CLOSE.match(text)
            if m and not re.search(r"\[\s*$", text):
                # only the key matters: `#password =` or `# brewery-jid = a@b` -> key = null
                lines.append(m.group(1) + re.sub(r"=.*$", "= null", m.group(2)))
            else:
                lines.append(text)
        parsed = ConfigFactory.parse_string("\n".join(lines), resolve=False)
        tree = ConfigTree.merge_configs(tree, parsed)
    return tree


def leaf_paths(tree: ConfigTree, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, ConfigTree):
            out |= leaf_paths(value, path)
        else:
            out.add(path)
    return out
