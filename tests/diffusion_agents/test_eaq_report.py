"""The consistency checks tell real transitions and actions from scrambled ones."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmarks.eaq_guidance_toy import record_towards_or_away
from diffusion_agents.eaq.report import (
    dynamics_consistency,
    fit_dynamics,
    policy_consistency,
)
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

    model = fit_dynamics(real, steps=800)  # fitted once, scores both sets
    ok = model.score(same)
    bad = model.score(scrambled)
    assert dynamics_consistency(real, same, steps=800) == ok  # the one-call form: same seed
    held = ok["dynamics_obs_err_real_heldout"]
    assert bad["dynamics_obs_err_real_heldout"] == held  # same model, same held-out split
    assert ok["dynamics_obs_err_synthetic"] < 3 * held, ok
    assert ok["dynamics_obs_err_over_real_p95"] < 0.2, ok
    assert bad["dynamics_obs_err_synthetic"] > 20 * held, bad
    assert bad["dynamics_obs_err_over_real_p95"] > 0.8, bad
    # rewards were not touched: their error stays at the real level
    assert bad["dynamics_reward_err_synthetic"] < 3 * bad["dynamics_reward_err_real_heldout"] + 1e-3


def test_policy_consistency_flags_actions_the_behaviour_would_not_take():
    """Towards-or-away data: given an observation the action is one of two (the rule's or
    its flip), so a behaviour model fitted on real episodes predicts held-out real actions
    and copies of them far better than chance, and random actions no better than chance."""
    real = load_episodes(record_towards_or_away("mpe2/spread2/towards-away-v0", 60, 8))
    e = real.num_episodes
    same = dataclasses.replace(real, synthetic=np.ones(e, bool))
    actions = real.actions.copy()
    actions[..., 0] = np.random.default_rng(0).integers(0, 5, actions.shape[:-1])
    shuffled = dataclasses.replace(same, actions=actions * real.acted[..., None])

    ok = policy_consistency(real, same, steps=600)
    bad = policy_consistency(real, shuffled, steps=600)
    uniform = np.log(5)
    assert ok["policy_nll_uniform"] == pytest.approx(uniform) == bad["policy_nll_uniform"]
    assert ok["policy_nll_real_heldout"] < uniform - 0.4, ok
    assert ok["policy_nll_synthetic"] < uniform - 0.4, ok
    assert ok["policy_acc_synthetic"] > 0.4, ok
    assert bad["policy_nll_real_heldout"] == ok["policy_nll_real_heldout"]  # same model
    assert bad["policy_nll_synthetic"] > uniform, bad
    assert bad["policy_acc_synthetic"] < 0.3, bad


def test_consistency_checks_keep_features_constant_in_the_real_data_in_raw_units():
    """MPE spread's communication features are always 0. Synthetic copies of the real
    episodes with those features moved by 0.3 (as SMAX unit-type bits come out of a
    generator) score like the real ones: the models fitted on real data never saw those
    features vary, so they are not divided by a ~0 standard deviation."""
    real = load_episodes(record_towards_or_away("mpe2/spread2/towards-away-const-v0", 60, 8))
    comm = slice(real.obs_dims[0] - 2, real.obs_dims[0])
    assert np.all(real.obs[..., comm] == 0)
    same = dataclasses.replace(real, synthetic=np.ones(real.num_episodes, bool))
    obs = real.obs.copy()
    obs[..., comm] = 0.3
    moved = dataclasses.replace(same, obs=obs)

    ok = policy_consistency(real, same, steps=600)
    off = policy_consistency(real, moved, steps=600)
    assert off["policy_nll_synthetic"] < ok["policy_nll_synthetic"] + 0.2, (ok, off)
    assert off["policy_acc_synthetic"] > ok["policy_acc_synthetic"] - 0.1, (ok, off)
    model = fit_dynamics(real, steps=400)
    held = model.score(same)["dynamics_obs_err_real_heldout"]
    assert model.score(moved)["dynamics_obs_err_synthetic"] < 3 * held + 1e-3
