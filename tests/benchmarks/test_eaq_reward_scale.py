"""benchmarks.eaq_reward_scale: synthetic rewards scaled, everything else as in the augmentation."""

from __future__ import annotations

import minari
import numpy as np
import pytest

from benchmarks import eaq_reward_scale
from benchmarks.harness import dataset_info
from diffusion_agents import eaq
from diffusion_agents.eaq import EAQConfig
from wrappers import RandomPolicy, load_episodes, make_env, record_dataset

TINY = EAQConfig(
    n_steps=30, batch_size=16, dim=8, dim_mults=(1,), q_hidden=32, q_warmup_steps=10,
    n_diffusion_steps=20, sample_steps=5, sample_batch_size=64, range_margin=5.0,
    max_sample_rounds=20,
)


def test_scales_only_the_synthetic_rewards(capsys) -> None:
    kwargs = {"N": 2, "max_cycles": 4}
    env = make_env("mpe2/simple_spread_v3", **kwargs)
    record_dataset("mpe2/simple_spread_v3", RandomPolicy(env, seed=0), 6, "mpe2/spread2/tiny-v0",
                   env_kwargs=kwargs, ref_min_score=-20.0, ref_max_score=-5.0, show_progress=False)
    aug = eaq.augment("mpe2/spread2/tiny-v0", ratio=1.0, seed=0, config=TINY, show_progress=False)
    aug_id = aug.spec.dataset_id

    assert eaq_reward_scale.main([aug_id, "--factor", "0.5"]) == 0
    new_id = "mpe2/spread2/tiny-eaq-rs05-v0"
    assert f"wrote {new_id}" in capsys.readouterr().out
    a, b = load_episodes(aug_id), load_episodes(new_id)
    syn = a.synthetic
    assert syn.any() and (~syn).any() and (b.synthetic == syn).all()
    np.testing.assert_allclose(b.team_rewards[syn], 0.5 * a.team_rewards[syn], rtol=1e-6)
    np.testing.assert_allclose(b.rewards[syn], 0.5 * a.rewards[syn], rtol=1e-6)
    np.testing.assert_array_equal(b.team_rewards[~syn], a.team_rewards[~syn])
    np.testing.assert_array_equal(b.obs, a.obs)
    np.testing.assert_array_equal(b.actions, a.actions)
    # still paired with the augmentation's source, but not pooled with it as a replicate
    info_a, info_b = dataset_info(aug_id), dataset_info(new_id)
    assert info_b["source_dataset_id"] == info_a["source_dataset_id"] == "mpe2/spread2/tiny-v0"
    assert info_b["generator"] != info_a["generator"]
    meta = minari.load_dataset(new_id).storage.metadata["multiagent"]
    assert meta["reward_scale"] == {"source_dataset_id": aug_id, "factor": 0.5}
    assert load_episodes(aug_id).team_rewards[syn] == pytest.approx(a.team_rewards[syn])  # untouched

    with pytest.raises(ValueError, match="no synthetic episodes"):
        eaq_reward_scale.main(["mpe2/spread2/tiny-v0", "--factor", "0.5"])
