"""Shared fixtures: every test writes datasets into its own temporary Minari root."""

from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    root.mkdir()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    # CI has 2 cores; keep tests predictable and leave a core to the test runner.
    torch.set_num_threads(2)
    yield


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny models: no sync overhead, and it keeps the
    tests fast when the CI cores are shared. Use with ``pytest.mark.usefixtures``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def umask_022():
    """The common umask, so that file-permission checks do not depend on the runner's."""
    old = os.umask(0o022)
    yield
    os.umask(old)
