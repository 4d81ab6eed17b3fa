"""Behaviour cloning: greedy (``bc``) vs sampled (``bc_sampled``) on a real recorded dataset."""

from __future__ import annotations

import numpy as np

from benchmarks.algorithms import ALGORITHMS, TrainContext
from benchmarks.algorithms.bc import train_bc
from benchmarks.algorithms.options import BCConfig, SampledBCConfig
from tests.benchmarks.harness_helpers import DATASET, ENV, ENV_KWARGS, make_dataset
from wrappers import load_episodes, make_env


def _fit(config) -> object:
    ctx = TrainContext(
        dataset_id=DATASET, source_dataset_id=DATASET, env_id=ENV, env_kwargs=ENV_KWARGS,
        seed=0, config=config,
    )
    return train_bc(ctx)


def test_sampled_bc_draws_from_the_learned_distribution_and_greedy_does_not():
    make_dataset(episodes=12)
    assert ALGORITHMS["bc_sampled"].config_cls is SampledBCConfig
    greedy = _fit(BCConfig(steps=200))
    sampled = _fit(SampledBCConfig(steps=200))
    env = make_env(ENV, **ENV_KWARGS)
    obs, _ = env.reset(seed=0)
    greedy_acts = {tuple(int(v) for v in greedy.act(obs).values()) for _ in range(30)}
    drawn = [tuple(int(v) for v in sampled.act(obs).values()) for _ in range(200)]
    assert len(greedy_acts) == 1
    # random-policy data: the learned distribution is near uniform over 5 actions
    assert len(set(drawn)) > 5
    first = np.array([d[0] for d in drawn])
    assert np.bincount(first, minlength=5).min() > 10
    for a, space in ((a, env.action_space(a)) for a in obs):
        assert all(space.contains(np.int64(d[list(obs).index(a)])) for d in drawn)
    assert load_episodes(DATASET).num_episodes == 12
