"""Inverse-dynamics actions (``EAQConfig(action_decoder="inverse_dynamics")``).

A per-agent model ``g_i(o_t, o_t+1) -> a_t`` is fitted on the real transitions and decodes
every synthetic transition's action from the generated observations. MPE spread's actions
are identifiable from the velocity change (``v_t+1 = 0.75 v_t + 0.5 u(a_t)`` outside
collisions; 98.8 % of the toy data's actions), so the fitted model must recover the real
actions, and relabelling the decoded synthetic episodes a second time must change nothing
(what was written is what the model reads from the observations the episode holds, with
observations rebuilt from delta rows too).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.eaq_guidance_toy import record_towards_or_away
from diffusion_agents.eaq import EAQAugmenter, EAQConfig, augment
from wrappers import load_episodes

CFG = EAQConfig(
    n_steps=200, batch_size=32, dim=16, dim_mults=(1, 2), q_hidden=64, q_weight=0.0,
    q_warmup_steps=100, n_diffusion_steps=50, sample_steps=10, sample_batch_size=128,
    seed=0, action_decoder="inverse_dynamics",
)


def _relabelled(aug: EAQAugmenter, batch):
    """``batch`` re-encoded, its actions decoded by ``aug``'s inverse dynamics."""
    x = torch.as_tensor(aug.normalizer.normalize(aug.layout.encode(batch)))
    x, count, changed = aug.relabel_actions(x)
    res = aug.decode(aug.normalizer.unnormalize(x.numpy()))
    assert res.accepted.all()
    return res.batch, int(changed.sum()) / max(int(count.sum()), 1)


def _agreement(a, b) -> float:
    steps = np.arange(a.actions.shape[1])[None, :] < a.lengths[:, None]
    return float((a.actions[..., 0] == b.actions[..., 0])[steps].mean())


def test_inverse_dynamics_actions_explain_the_transitions():
    # with delta rows: the model must read the observations rebuilt from them, as decoded
    obs_deltas = True
    real = load_episodes(record_towards_or_away("mpe2/spread2/inv-v0", 60, 10))
    aug = EAQAugmenter(CFG.replace(obs_deltas=obs_deltas)).fit(real, show_progress=False)
    assert aug.history[-1]["inv_fit"] < 0.3  # cross-entropy; uniform over 5 actions: 1.61
    # the fitted model reads the real actions back from the real observations
    back, changed = _relabelled(aug, real)
    assert _agreement(back, real) > 0.95 and changed < 0.05

    res = aug.sample(64, seed=1, show_progress=False)
    assert res.relabelled is not None and 0.0 < res.relabelled <= 1.0
    # the synthetic actions are the model's reading of the synthetic observations: a
    # second pass over the decoded episodes changes (almost) nothing
    again, changed = _relabelled(aug, res.batch)
    assert _agreement(again, res.batch) > 0.99 and changed < 0.01, changed

    # generated actions (the paper's decoder) from the same fit would disagree with it
    gen = EAQAugmenter(CFG.replace(obs_deltas=obs_deltas, action_decoder="generated"))
    gen.layout, gen.normalizer, gen.model, gen.ema = aug.layout, aug.normalizer, aug.model, aug.ema
    plain = gen.sample(64, seed=1, show_progress=False).batch
    assert _agreement(plain, res.batch) < 0.9


def test_inverse_dynamics_is_saved_validated_and_recorded(tmp_path):
    with pytest.raises(ValueError, match="action_decoder"):
        EAQConfig(action_decoder="policy")
    ds = record_towards_or_away("mpe2/spread2/inv-save-v0", 6, max_cycles=5, seed=1)
    cfg = CFG.replace(n_steps=3, batch_size=4, dim=8, q_hidden=16, q_warmup_steps=1,
                      n_diffusion_steps=10, sample_steps=2, sample_batch_size=8)
    aug = EAQAugmenter(cfg).fit(ds, show_progress=False)
    back = EAQAugmenter.load(aug.save(tmp_path / "aug"))
    assert back.config.action_decoder == "inverse_dynamics" and back.model.inv is not None
    torch.testing.assert_close(back.model.inv.delta_scale, aug.model.inv.delta_scale)
    a = aug.sample(4, seed=3, show_progress=False).batch
    b = back.sample(4, seed=3, show_progress=False).batch
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.obs, b.obs)
    new = augment(ds, num_episodes=4, augmenter=back, new_dataset_id="mpe2/spread2/inv-aug-v0",
                  show_progress=False)
    meta = new.storage.metadata["multiagent"]["eaq"]
    assert meta["settings"]["action_decoder"] == "inverse_dynamics"
    assert 0.0 <= meta["actions_relabelled"] <= 1.0
