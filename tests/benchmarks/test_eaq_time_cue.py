"""benchmarks.eaq_time_cue: the return-to-go's clock and the synthetic observations' shifts."""

from __future__ import annotations

import dataclasses

import numpy as np

from benchmarks import eaq_time_cue
from wrappers import RandomPolicy, load_episodes, make_env, record_dataset


def _batch(episodes: int = 12):
    kwargs = {"N": 2, "max_cycles": 8}
    env = make_env("mpe2/simple_spread_v3", **kwargs)
    record_dataset("mpe2/simple_spread_v3", RandomPolicy(env, seed=0), episodes,
                   "mpe2/spread2/clock-v0", env_kwargs=kwargs, show_progress=False)
    return load_episodes("mpe2/spread2/clock-v0")


def test_time_cue_finds_a_return_that_counts_the_steps_left() -> None:
    """A reward of 1 per step over episodes of random lengths: the return-to-go is the
    number of steps left, which random observations and the time elapsed cannot tell."""
    b = _batch()
    h = b.horizon
    lengths = np.random.default_rng(0).integers(2, h + 1, size=b.num_episodes)
    valid = np.arange(h)[None, :] < lengths[:, None]
    b = dataclasses.replace(b, lengths=lengths, valid=valid, team_rewards=valid.astype(np.float32))
    cue = eaq_time_cue.time_cue(b)
    assert cue["steps"] == int(lengths.sum())
    assert cue["obs+elapsed+left"]["r2"] > 0.999
    assert cue["obs+elapsed"]["r2"] < 0.95
    assert abs(cue["obs+elapsed+left"]["left_coef"] - h) < 1e-3 * h  # rtg = h * (left / h)


def test_shifts_measure_synthetic_minus_real_in_real_sd() -> None:
    """Copies of the real episodes marked synthetic, one feature moved by 2 real sd: that
    feature shifts by 2, the others by 0."""
    b = _batch(6)
    b = b.select(np.r_[np.arange(6), np.arange(6)])
    synthetic = np.r_[np.zeros(6, bool), np.ones(6, bool)]
    at = b.valid & b.alive[:, :-1, 0] & b.alive[:, :-1, 1]
    sd = np.concatenate([b.obs[:6, :-1, i, 2][at[:6]] for i in range(2)]).std()  # agents pool
    obs = b.obs.copy()
    obs[6:, :, :, 2] += 2.0 * sd
    m = eaq_time_cue.shifts(dataclasses.replace(b, obs=obs, synthetic=synthetic))
    assert abs(m["shift"][2] - 2.0) < 1e-4
    assert np.abs(np.delete(m["shift"], 2)).max() < 1e-5
    assert m["corr_rtg"].shape == m["corr_left"].shape == (b.obs.shape[-1],)


def test_feature_names_follow_smax_layout_only_where_the_width_fits() -> None:
    names = eaq_time_cue.feature_names("smax/2s3z/medium-v0", 127, 5)
    assert names[0] == "ally0_health" and names[4 * 13] == "enemy0_health"
    assert names[117:120] == ["own_health", "own_x", "own_y"]
    assert eaq_time_cue.feature_names("smax/2s3z/medium-v0", 126, 5)[0] == "f0"
    assert eaq_time_cue.feature_names("mpe2/spread2/x-v0", 127, 5)[0] == "f0"
