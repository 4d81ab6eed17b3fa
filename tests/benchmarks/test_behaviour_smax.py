"""SMAXVecEnv (batched SMAX training env) matches the generic SuperSuit pipeline."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jaxmarl", reason="SMAX tests need the [smax] extra (jaxmarl, jax)")

from benchmarks.behaviour_policy import BehaviourPolicy, make_vec_env  # noqa: E402
from benchmarks.behaviour_smax import SMAXVecEnv, win_rate  # noqa: E402
from wrappers import make_env, record_dataset  # noqa: E402
from wrappers.smax import INFO_KEYS  # noqa: E402

ENV = "smax/3m"
KW = {"jit_opt_level": 0}


def test_batched_env_matches_supersuit_pipeline():
    ours, enc = make_vec_env(ENV, KW, n_envs=3, seed=4)
    assert isinstance(ours, SMAXVecEnv)
    ref, ref_enc = make_vec_env(ENV, KW, n_envs=3, seed=4, batched=False)
    assert ours.num_envs == ref.num_envs == 9
    assert ours.observation_space.shape == ref.observation_space.shape
    x, y = ours.reset(), ref.reset()
    np.testing.assert_allclose(x, y, atol=1e-5)
    rng = np.random.default_rng(0)
    dones_seen = deaths_seen = 0
    for _ in range(40):
        masks = np.stack(ref.env_method("action_masks"))
        np.testing.assert_array_equal(ours.action_masks(), masks)
        acts = (rng.random(masks.shape) * masks).argmax(axis=1)
        x, rx, dx, ix = ours.step(acts)
        y, ry, dy, iy = ref.step(acts)
        np.testing.assert_allclose(x, y, atol=1e-5)
        np.testing.assert_allclose(rx, ry, atol=1e-5)
        np.testing.assert_array_equal(dx, dy)
        for a, b in zip(ix, iy):
            assert ("TimeLimit.truncated" in a) == ("TimeLimit.truncated" in b)
            if "terminal_observation" in b:
                np.testing.assert_allclose(
                    a["terminal_observation"], b["terminal_observation"], atol=1e-5
                )
        dones_seen += int(dx.sum())
        deaths_seen += int((x[:, 0] == 1.0).sum())  # the "dead" input's mask bit
    assert dones_seen > 0 and deaths_seen > 0, "the check must cover deaths and resets"


def test_smax_behaviour_policy_records_a_dataset_with_win_flags():
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.utils import set_random_seed

    set_random_seed(0)
    venv, enc = make_vec_env(ENV, KW, n_envs=3, seed=0)
    model = MaskablePPO(
        "MlpPolicy", venv, n_steps=8, batch_size=24, n_epochs=1, device="cpu"
    )
    model.learn(total_timesteps=72)
    policy = BehaviourPolicy(model, enc, seed=0, env_id=ENV, env_kwargs=KW)
    ds = record_dataset(
        ENV,
        policy,
        num_episodes=3,
        dataset_id="smax/3m/ppo-v0",
        env_kwargs=KW,
        info_keys=INFO_KEYS,
        num_ref_episodes=2,
        show_progress=False,
    )
    wr = win_rate(ds)
    assert wr is not None and 0.0 <= wr <= 1.0
    assert make_env(ENV, **KW).possible_agents == enc.agents
