"""Which configuration keys jicofo and the videobridge know: their reference.conf key paths.

The key paths are kept in `tests/data/reference_keys.json` with the upstream commits they
were read from, so the oracle works in a clone that has only this repository. Where the
upstream files are beside the checkout (`../shared/upstream`), a test reads them again and
fails when the data differs; `python -m tests.hocon_oracle` rewrites the data from them.

Many keys (jicofo's password, xmpp-domain, brewery-jid, the xmpp.visitors example; the
videobridge's relay region and relay-id, websockets tls) are documented only as comments;
uncommented `# key = value` lines count as known keys too.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Final

from pyhocon import ConfigFactory, ConfigTree

from tests.conftest import ROOT, UPSTREAM

DATA: Final = ROOT / "tests" / "data" / "reference_keys.json"
REFERENCES: Final = {
    "jicofo": (
        "jicofo/jicofo.reference.conf",
        "jicofo/jicofo-common.reference.conf",
        "jicofo/jicofo-selector.reference.conf",
    ),
    "videobridge": (
        "jitsi-videobridge/jvb.reference.conf",
        "jitsi-videobridge/jitsi-media-transform.reference.conf",
        "jitsi-videobridge/ice4j.reference.conf",
    ),
}
# The upstream commits of those files (../shared/upstream/README.md).
SOURCES: Final = {
    "jicofo": "jitsi/jicofo 7ebb13dc353953abaeec2d9ee42b735f39eaa454 (2026-08-19)",
    "videobridge": "jitsi/jitsi-videobridge a29d97d13fbfb54afc676a526485ce87df4f7a64 "
    "(2026-08-19); ice4j: jitsi/ice4j 6da2b08b931f7a1964ebd6554bf87489c81a59de (2026-04-22)",
}

_COMMENTED_KEY = re.compile(r"^(\s*)(?:#|//)\s*([A-Za-z][A-Za-z0-9-]*\s*(?:=|\{).*)$")
_COMMENTED_CLOSE = re.compile(r"^(\s*)(?:#|//)\s*(\}\s*)$")


def reference_tree(*texts: str) -> ConfigTree:
    """Reference files merged into one tree, documented-but-commented keys included."""
    tree = ConfigTree()
    for source in texts:
        lines = []
        in_array = False  # commented examples inside an array stay comments
        for text in source.splitlines():
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


def upstream_available() -> bool:
    return all((UPSTREAM / name).is_file() for names in REFERENCES.values() for name in names)


def upstream_keys(group: str) -> set[str]:
    """The key paths read from the upstream files beside the checkout."""
    return leaf_paths(reference_tree(*((UPSTREAM / n).read_text() for n in REFERENCES[group])))


@cache
def _data() -> dict[str, dict[str, object]]:
    loaded: dict[str, dict[str, object]] = json.loads(DATA.read_text())
    return loaded


def known_keys(group: str) -> set[str]:
    """The key paths kept in the repository."""
    keys = _data()[group]["keys"]
    assert isinstance(keys, list)
    return {str(k) for k in keys}


def write_data() -> None:
    doc = {
        group: {
            "source": SOURCES[group],
            "files": list(names),
            "keys": sorted(upstream_keys(group)),
        }
        for group, names in REFERENCES.items()
    }
    DATA.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    write_data()
