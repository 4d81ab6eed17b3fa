"""Atomic writes: complete or absent, and readable like any file the user writes."""

from __future__ import annotations

import os
import stat

import pytest

from wrappers.files import atomic_path


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_file_gets_the_umask_permissions_not_private_ones(tmp_path, umask_022):
    target = tmp_path / "sub" / "out.json"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".out.json.")
        tmp.write_text("{}")
        assert not target.exists()  # nothing under the real name until the block ends
    assert target.read_text() == "{}" and _mode(target) == 0o644
    assert os.listdir(target.parent) == ["out.json"]


def test_an_error_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "d" / "out.txt"  # tmp_path also holds the test's Minari root
    target.parent.mkdir()
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target, suffix=".zip") as tmp:
        assert tmp.name.endswith(".partial.zip")
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old" and os.listdir(target.parent) == ["out.txt"]
