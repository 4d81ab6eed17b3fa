"""Fixtures shared by the EAQ tests."""

from __future__ import annotations

import pytest

from wrappers import RandomPolicy, load_episodes, make_env, record_dataset

# agents die at steps 2 and 4, each up to 3 steps later: episodes of 4 to 7 steps
DYING_KWARGS = {"deaths": [2, 4], "jitter": 3, "max_cycles": 10}


@pytest.fixture
def dying_batch():
    """12 random-policy episodes of the dying toy env, recorded as ``toy/eaq/dying-v0``
    (varied lengths, deaths, a global state), as an ``EpisodeBatch``."""
    env_id = "tests.wrappers.toy_envs:make_dying_env"
    ds = record_dataset(
        env_id, RandomPolicy(make_env(env_id, **DYING_KWARGS), seed=1), 12, "toy/eaq/dying-v0",
        env_kwargs=DYING_KWARGS, ref_min_score=-10.0, ref_max_score=0.0, show_progress=False,
    )
    return load_episodes(ds)
