"""MADiff and EAQ on a real SMAX dataset: masks, deaths, variable-length episodes.

A short end-to-end check (issue 4): record a small SMAX dataset with a random policy, train
MADiff and EAQ for a few steps on it, then act in the real SMAX env (every action legal under
the env's masks) and write an augmented dataset whose synthetic actions are legal too.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jaxmarl")

from diffusion_agents import MADiffConfig, MADiffPolicy, eaq  # noqa: E402
from wrappers import RandomPolicy, load_episodes, make_env, record_dataset  # noqa: E402

ENV_ID = "smax/3m"


@pytest.fixture()
def smax_dataset():
    env = make_env(ENV_ID)
    return record_dataset(
        ENV_ID,
        RandomPolicy(env, seed=0),
        num_episodes=12,
        dataset_id="smax/3m/random-v0",
        ref_max_score=1.0,
        num_ref_episodes=2,
        show_progress=False,
    )


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_madiff_and_eaq_train_and_act_on_smax(smax_dataset, precision):
    """Also with bf16 training (``precision``): masked logits and variable lengths under
    autocast must still give finite losses, legal actions and legal synthetic episodes."""
    batch = load_episodes(smax_dataset)
    assert batch.action_masks is not None
    assert len(set(batch.lengths.tolist())) > 1, "want variable-length episodes"
    assert (~batch.alive[:, :-1] & batch.valid[:, :, None]).any(), "want deaths"

    config = MADiffConfig(
        n_steps=30, batch_size=8, horizon=4, base_width=16, precision=precision
    )
    losses: list[float] = []
    policy = MADiffPolicy.train(
        smax_dataset, config, seed=0, show_progress=False,
        callback=lambda step, m: losses.extend([m["loss"], m["inv_loss"]]),
    )
    assert len(losses) == 60 and np.isfinite(losses).all(), losses
    env = make_env(ENV_ID)
    obs, _ = env.reset(seed=3)
    policy.reset()
    steps = 0
    while env.agents and steps < 40:
        actions = policy.act(obs)
        assert set(actions) == set(obs)  # exactly the agents given (incl. just-dead)
        for agent in env.agents:  # agents that just died are ignored by the env
            a = int(actions[agent])
            assert obs[agent]["action_mask"][a], f"{agent} took illegal action {a}"
        obs, _, _, _, _ = env.step(actions)
        steps += 1
    assert steps > 0

    out = eaq.augment(
        smax_dataset, num_episodes=4, n_steps=20, seed=0, show_progress=False,
        config=eaq.EAQConfig(precision=precision),
    )
    aug = load_episodes(out)
    assert aug.synthetic.sum() >= 1 and (~aug.synthetic).sum() == batch.num_episodes
    syn = aug.select(np.flatnonzero(aug.synthetic))
    for i in range(syn.num_agents):
        acted = syn.acted[:, :, i]
        idx = syn.actions[:, :, i, 0].astype(np.int64)[acted]
        legal = syn.action_masks[:, :-1, i][acted]
        assert legal[np.arange(len(idx)), idx].all(), "EAQ decoded an illegal action"
