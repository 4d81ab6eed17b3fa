"""The library's own atomic writers (checkpoints, harness results, behaviour policies) leave
files with the user's umask permissions, not ``tempfile``'s private 0o600."""

from __future__ import annotations

import os
import stat

import torch


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_checkpoints_and_harness_results_use_it(tmp_path, umask_022):
    tmp_path = tmp_path / "d"  # tmp_path also holds the test's Minari root
    from benchmarks.harness import write_json_atomic
    from diffusion_agents.checkpoint import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "m.safetensors", {"w": torch.ones(2)}, kind="k",
                           version=1, meta={})
    write_json_atomic(tmp_path / "r.json", {"a": 1})
    assert _mode(ckpt) == 0o644 and _mode(tmp_path / "r.json") == 0o644
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors", "r.json"]
