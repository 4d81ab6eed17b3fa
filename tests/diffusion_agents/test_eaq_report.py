"""The dynamics-consistency check tells consistent transitions from scrambled ones."""

from __future__ import annotations

import dataclasses

import numpy as np

from diffusion_agents.eaq.report import dynamics_consistency
from wrappers import RandomPolicy, load_episodes, make_env, record_dataset


def test_dynamics_consistency_flags_transitions_that_break_the_dynamics():
    env = make_env("mpe2/simple_spread_v3", N=2, max_cycles=10)
    ds = record_dataset(
        "mpe2/simple_spread_v3", RandomPolicy(env, seed=0), 60, "mpe2/spread2/random-v0",
        env_kwargs={"N": 2, "max_cycles": 10}, show_progress=False,
    )
    real = load_episodes(ds)
    e = real.num_episodes
    # "synthetic" copies: the real episodes themselves, and the same observations with
    # their time order scrambled inside each episode (each step still a real observation)
    same = dataclasses.replace(real, synthetic=np.ones(e, bool))
    rng = np.random.default_rng(0)
    obs = real.obs.copy()
    for i in range(e):
        n = int(real.lengths[i]) + 1
        obs[i, :n] = obs[i, rng.permutation(n)]
    scrambled = dataclasses.replace(same, obs=obs)

    ok = dynamics_consistency(real, same, steps=800)
    bad = dynamics_consistency(real, scrambled, steps=800)
    held = ok["dynamics_obs_err_real_heldout"]
    assert bad["dynamics_obs_err_real_heldout"] == held  # same model, same held-out split
    assert ok["dynamics_obs_err_synthetic"] < 3 * held, ok
    assert ok["dynamics_obs_err_over_real_p95"] < 0.2, ok
    assert bad["dynamics_obs_err_synthetic"] > 20 * held, bad
    assert bad["dynamics_obs_err_over_real_p95"] > 0.8, bad
    # rewards were not touched: their error stays at the real level
    assert bad["dynamics_reward_err_synthetic"] < 3 * bad["dynamics_reward_err_real_heldout"] + 1e-3
