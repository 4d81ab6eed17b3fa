"""Model-decoded rewards (``EAQConfig(reward_decoder="model")``): a reward model fitted on the
real transitions relabels every synthetic step, so a reward follows its transition."""

from __future__ import annotations

import numpy as np
import pytest

from diffusion_agents.eaq import EAQAugmenter, EAQConfig

TINY = EAQConfig(
    n_steps=1500, batch_size=16, dim=8, dim_mults=(1,), q_hidden=32, q_warmup_steps=20,
    n_diffusion_steps=20, sample_steps=5, sample_batch_size=64, range_margin=5.0,
    max_sample_rounds=20, q_weight=0.0,
)


def _true_rewards(batch) -> np.ndarray:
    """The dying env's reward, ``-|next position| + 0.1 i`` where agent ``i`` acts:
    ``(episodes, T, agents)``, 0 elsewhere."""
    i = np.arange(len(batch.agents))
    r = -np.abs(batch.obs[:, 1:, :, 0]) + 0.1 * i
    return np.where(batch.acted, r, 0.0)


def _true_team(batch) -> np.ndarray:
    """The team reward: the mean over the agents that act at the step ``(episodes, T)``."""
    n = batch.acted.sum(-1)
    return np.where(n > 0, _true_rewards(batch).sum(-1) / np.maximum(n, 1), 0.0)


def _errors(batch) -> np.ndarray:
    """Per episode, the mean absolute error of the per-agent rewards against the env's."""
    err = np.abs(batch.rewards - _true_rewards(batch)) * batch.acted
    return err.sum(axis=(1, 2)) / batch.acted.sum(axis=(1, 2))


def test_config_refuses_an_unknown_reward_decoder():
    with pytest.raises(ValueError, match="reward_decoder"):
        EAQConfig(reward_decoder="oracle")


def test_model_rewards_follow_the_generated_transitions(dying_batch, tmp_path):
    real = dying_batch
    assert _errors(real).max() < 1e-5  # the reward function above is the env's
    np.testing.assert_allclose(real.team_rewards[real.valid], _true_team(real)[real.valid],
                               atol=1e-5)
    aug = EAQAugmenter(TINY.replace(reward_decoder="model")).fit(real, show_progress=False)
    assert "rew_fit" in aug.history[-1]

    raw_model = aug.draw(64, seed=3)
    aug.config = aug.config.replace(reward_decoder="generated")
    raw_gen = aug.draw(64, seed=3)
    rew_rows = aug.model.rew.out_rows
    other = np.setdiff1d(np.arange(raw_gen.shape[1]), rew_rows)
    # the same candidates, only the reward rows differ
    np.testing.assert_array_equal(raw_model[:, other], raw_gen[:, other])
    assert not np.allclose(raw_model[:, rew_rows], raw_gen[:, rew_rows])

    res_model, res_gen = aug.decode(raw_model), aug.decode(raw_gen)
    both = res_model.accepted & res_gen.accepted
    assert both.sum() >= 32, (res_model.reasons, res_gen.reasons)
    pick_m = both[res_model.accepted]
    pick_g = both[res_gen.accepted]
    err_model = _errors(res_model.batch)[pick_m].mean()
    err_gen = _errors(res_gen.batch)[pick_g].mean()
    # the generated rewards after 1,500 steps are the denoiser's blur of the real ones; the
    # model reads the synthetic next position
    assert err_model < 0.5 * err_gen, (err_model, err_gen)
    b, g = res_model.batch, res_gen.batch
    team_model = np.abs(b.team_rewards - _true_team(b))[pick_m][b.valid[pick_m]].mean()
    team_gen = np.abs(g.team_rewards - _true_team(g))[pick_g][g.valid[pick_g]].mean()
    assert team_model < 0.5 * team_gen, (team_model, team_gen)
    # an agent's reward is 0 where it does not act (never a reward for a dead agent)
    assert (b.rewards[~b.acted] == 0).all()

    # the reward model (weights and scale) travels with a saved augmenter
    aug.config = aug.config.replace(reward_decoder="model")
    loaded = EAQAugmenter.load(aug.save(tmp_path / "ckpt"))
    np.testing.assert_array_equal(loaded.draw(64, seed=3), raw_model)
