"""subset_dataset / `diffusion-agents datasets subset`: N episodes of a dataset as a new one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import minari
import numpy as np
import pytest

from benchmarks.cli import main as cli_main
from wrappers import (
    RandomPolicy,
    check_convention,
    load_episodes,
    make_env,
    record_dataset,
)
from wrappers.minari_io import subset_dataset

ENV, KWARGS, N = "mpe2/simple_spread_v3", {"N": 3, "max_cycles": 5}, 9
SOURCE = "test/spread/src-v0"


def _files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def source():
    record_dataset(
        ENV, RandomPolicy(make_env(ENV, **KWARGS), seed=3), N, SOURCE, env_kwargs=KWARGS,
        seed=11, ref_min_score=-30.0, ref_max_score=-5.0, show_progress=False,
    )
    return minari.load_dataset(SOURCE)


def test_subset_holds_the_drawn_episodes_exactly(source, minari_root):
    before = _files(minari_root / "test" / "spread" / "src-v0")
    sub = subset_dataset(SOURCE, 4, "test/spread/sub-v0", seed=5, show_progress=False)
    assert _files(minari_root / "test" / "spread" / "src-v0") == before  # source untouched

    sub = minari.load_dataset("test/spread/sub-v0")  # stock reader
    assert sub.total_episodes == 4
    meta = sub.storage.metadata
    picked = meta["multiagent"]["subset"]["episode_indices"]
    assert picked == sorted(picked) and len(set(picked)) == 4 and max(picked) < N
    assert picked == sorted(np.random.default_rng(5).choice(N, 4, replace=False).tolist())
    assert meta["multiagent"]["subset"]["source_dataset_id"] == SOURCE
    assert (meta["ref_min_score"], meta["ref_max_score"]) == (-30.0, -5.0)
    check_convention(sub)

    full, part = load_episodes(source), load_episodes(sub)
    assert part.agents == full.agents
    for name in ("obs", "actions", "rewards", "team_rewards", "alive", "lengths"):
        a, b = getattr(full, name), getattr(part, name)
        if isinstance(a, dict):
            for k in a:
                np.testing.assert_array_equal(b[k], a[k][picked], err_msg=f"{name}[{k}]")
        else:
            np.testing.assert_array_equal(b, a[picked], err_msg=name)


def test_first_episodes_and_refusals_write_nothing(source, minari_root):
    sub = subset_dataset(source, 3, "test/spread/first-v0", seed=None, show_progress=False)
    assert sub.storage.metadata["multiagent"]["subset"]["episode_indices"] == [0, 1, 2]
    listing = sorted(p.name for p in (minari_root / "test" / "spread").iterdir())
    for n, target, err in (
        (0, "test/spread/a-v0", ValueError),
        (N + 1, "test/spread/a-v0", ValueError),
        (2, SOURCE, ValueError),
        (2, "test/spread/first-v0", FileExistsError),
    ):
        with pytest.raises(err):
            subset_dataset(SOURCE, n, target, show_progress=False)
    assert sorted(p.name for p in (minari_root / "test" / "spread").iterdir()) == listing
    assert not any(p.name.startswith(".partial") for p in minari_root.rglob("*"))


def test_cli_subset(source, capsys):
    assert cli_main(["datasets", "subset", SOURCE, "--episodes", "2", "--new-id",
                     "test/spread/cli-v0", "--no-progress"]) == 0
    assert "test/spread/cli-v0 | 2 |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="already exists"):
        cli_main(["datasets", "subset", SOURCE, "--episodes", "2", "--new-id",
                  "test/spread/cli-v0", "--no-progress"])
