"""The twin's cache: entries unused for a week go, the ones in use or held by a run stay."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest

from components.twin import image


def test_prune_removes_only_stale_free_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XXL_TWIN_CACHE", str(tmp_path))
    old = time.time() - 30 * 86400
    entries = {n: tmp_path / n for n in ("root-old", "archive-old", "root-kept", "archive-held",
                                         "root-new")}  # fmt: skip
    for name, path in entries.items():
        (path / "x").mkdir(parents=True)
        if name != "root-new":
            os.utime(path, (old, old))
    (tmp_path / "root-old.lock").write_text("")
    with (tmp_path / "archive-held.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        removed = image.prune(keep=[entries["root-kept"]])
    assert sorted(p.name for p in removed) == ["archive-old", "root-old"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "archive-held",
        "root-kept",
        "root-new",
    ]
    assert not (tmp_path / "root-old.lock").exists()
