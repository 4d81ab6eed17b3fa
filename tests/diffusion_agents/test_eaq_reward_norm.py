"""Quantile-normalized reward rows (``EAQConfig(reward_norm="quantile")``): a sparse reward's
frequent 0 gets a wide basin, so sampling noise no longer inflates the decoded rewards."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffusion_agents.eaq import EAQAugmenter, EAQConfig
from diffusion_agents.eaq.encode import REWARD_KINDS, EpisodeLayout, RowNormalizer

TINY = EAQConfig(
    n_steps=30, batch_size=16, dim=8, dim_mults=(1,), q_hidden=32, q_warmup_steps=10,
    n_diffusion_steps=20, sample_steps=5, sample_batch_size=32, range_margin=5.0,
)


@pytest.fixture
def real(dying_batch):
    return dying_batch


def _sparse(real, seed: int = 0):
    """The real raw tensor with its team-reward row replaced by a SMAX-like sparse reward:
    0 on 70 % of the columns, small damage rewards (0.005-0.08) on the rest and a rare win
    bonus of 1. Returns ``(layout, raw, row)``."""
    layout = EpisodeLayout.from_batch(real)
    raw = layout.encode(real)
    rng = np.random.default_rng(seed)
    r = np.where(rng.random(raw[:, 0].shape) < 0.7, 0.0, rng.uniform(0.005, 0.08, raw[:, 0].shape))
    r[rng.random(r.shape) < 0.005] = 1.0
    row = layout.row("team_reward")
    raw[:, row] = r
    return layout, raw, row


def test_quantile_rows_round_trip_and_give_a_frequent_value_a_wide_basin(real):
    layout, raw, row = _sparse(real)
    rows = np.concatenate([layout.rows(k) for k in REWARD_KINDS])
    quant = RowNormalizer.fit(raw, layout, rows)
    assert row in quant.knots
    y = quant.normalize(raw)
    assert y.min() >= -1 and y.max() <= 1
    np.testing.assert_allclose(quant.unnormalize(y), raw, rtol=0, atol=1e-6)
    # the 0s (70 %) sit at the mean of -1 (limits) and their CDF step's middle (-0.3), about
    # -0.65, and everything below decodes to 0
    zero = np.unique(y[:, row][raw[:, row] == 0])
    assert zero.size == 1 and -0.75 < zero[0] < -0.55
    basin = np.linspace(-1, zero[0] - 1e-4, 50)[None, None, :].repeat(raw.shape[1], 1)
    assert (quant.unnormalize(basin)[0, row] == 0).all()
    # other rows are mapped exactly as by the limits normalizer
    lim = RowNormalizer.fit(raw, layout)
    other = np.setdiff1d(np.arange(layout.num_features), list(quant.knots))
    np.testing.assert_array_equal(y[:, other], lim.normalize(raw)[:, other])
    # the knots survive JSON
    again = RowNormalizer.from_dict(json.loads(json.dumps(quant.to_dict())))
    np.testing.assert_array_equal(again.normalize(raw), y)


def test_noise_inflates_a_sparse_reward_under_limits_but_hardly_under_quantiles(real):
    """The bias seen on SMAX (docs/eaq.md, "Reward fidelity"): Gaussian errors of 0.05 in the
    normalized space, clipped to [-1, 1] as the sampler does, then decoded."""
    layout, raw, row = _sparse(real)
    true = raw[:, row].mean()
    rng = np.random.default_rng(1)
    bias = {}
    for name, quantile_rows in (("limits", None), ("quantile", [row])):
        norm = RowNormalizer.fit(raw, layout, quantile_rows)
        y = norm.normalize(raw)
        noisy = np.clip(y + rng.normal(0, 0.05, y.shape).astype(np.float32), -1, 1)
        bias[name] = norm.unnormalize(noisy)[:, row].mean() - true
    assert bias["limits"] > 0.25 * true  # inflated by more than a quarter
    assert abs(bias["quantile"]) < 0.25 * bias["limits"], bias


def test_bad_knots_and_names_are_refused(real):
    layout, raw, row = _sparse(real)
    low, high = raw.min(axis=(0, 2)), raw.max(axis=(0, 2))
    with pytest.raises(ValueError, match="increase strictly"):
        RowNormalizer(low, high, {row: ([0.0, 0.0, 1.0], [-1.0, 0.0, 1.0])})
    with pytest.raises(ValueError, match="not a non-constant row"):
        RowNormalizer(low, high, {layout.num_features: ([0.0, 1.0], [-1.0, 1.0])})
    with pytest.raises(ValueError, match="reward_norm"):
        EAQConfig(reward_norm="log")


def test_augmenter_with_quantile_rewards_saves_its_knots(real, tmp_path):
    aug = EAQAugmenter(TINY.replace(reward_norm="quantile")).fit(real, show_progress=False)
    rows = {int(r) for k in REWARD_KINDS for r in aug.layout.rows(k)}
    assert set(aug.normalizer.knots) and set(aug.normalizer.knots) <= rows
    res = aug.sample(20, seed=2, show_progress=False)
    lo = min(aug.normalizer.knots[r][0][0] for r in aug.normalizer.knots)
    hi = max(aug.normalizer.knots[r][0][-1] for r in aug.normalizer.knots)
    assert res.batch.rewards.min() >= lo - 1e-6 and res.batch.rewards.max() <= hi + 1e-6
    loaded = EAQAugmenter.load(aug.save(tmp_path / "ckpt"))
    assert loaded.config.reward_norm == "quantile"
    assert set(loaded.normalizer.knots) == set(aug.normalizer.knots)
    np.testing.assert_array_equal(loaded.sample(20, seed=2, show_progress=False).raw, res.raw)
