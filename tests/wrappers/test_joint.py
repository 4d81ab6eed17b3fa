"""JointEnv: SB3's check_env, gymnasium.make, and the joint-episode semantics."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env

from wrappers import JOINT_ENV_ID, JointEnv, joint_env_spec, make_env

TOY = "tests.wrappers.toy_envs"

CHECKED = [
    ("mpe2/simple_spread_v3", {"N": 3, "max_cycles": 10}),
    ("mpe2/simple_spread_v3", {"continuous_actions": True, "max_cycles": 10}),
    ("mpe2/simple_speaker_listener_v4", {"max_cycles": 10}),
    ("mpe2/simple_world_comm_v3", {"max_cycles": 5}),
    (f"{TOY}:make_hetero_env", {}),
    (f"{TOY}:make_masked_env", {"strict": False}),  # check_env samples unmasked actions
    (f"{TOY}:make_dying_env", {"deaths": [1, 2, None], "max_cycles": 4}),
    (f"{TOY}:make_spawn_env", {}),
    (f"{TOY}:make_odd_spaces_env", {}),
]

# SB3 only warns about what it cannot *train* on (Dict actions, nested Dict observations);
# anything else it says is a problem with the env.
ALLOWED_SB3_WARNINGS = (
    "action space is not based off a numpy array",
    "Nested observation spaces",
    "unconventional shape",  # the odd-spaces env's 2-D Box observation, on purpose
)


def _tree_equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_tree_equal(a[k], b[k]) for k in a)
    return np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("env_id, kwargs", CHECKED, ids=lambda x: str(x).split(":")[-1])
def test_sb3_check_env(env_id, kwargs):
    env = JointEnv(env_id, kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, warn=True, skip_render_check=True)
    other = [str(w.message) for w in caught
             if not any(s in str(w.message) for s in ALLOWED_SB3_WARNINGS)]
    assert not other, other


@pytest.mark.parametrize("env_id, kwargs", CHECKED, ids=lambda x: str(x).split(":")[-1])
def test_gymnasium_check_env(env_id, kwargs):
    """Gymnasium's own checker, which also checks that reset(seed) and step are deterministic."""
    from gymnasium.utils.env_checker import check_env as gym_check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(JointEnv(env_id, kwargs), skip_render_check=True)
    other = [str(w.message) for w in caught if "infinity" not in str(w.message)]
    assert not other, other


def test_spaces_keep_possible_agents_order():
    for env_id, kwargs in CHECKED:
        env = JointEnv(env_id, kwargs)
        agents = make_env(env_id, **kwargs).possible_agents
        assert list(env.observation_space.spaces) == agents
        assert list(env.action_space.spaces) == agents
        assert env.possible_agents == agents


@pytest.mark.parametrize("env_id, kwargs", CHECKED[:2] + CHECKED[4:])
def test_gymnasium_make_rebuilds_the_joint_env(env_id, kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make(JOINT_ENV_ID, env_id=env_id, env_kwargs=kwargs)
        spec_env = gym.make(joint_env_spec(env_id, kwargs))
        obs, info = env.reset(seed=3)
        obs2, _ = spec_env.reset(seed=3)
        steps, done = 0, False
        while not done:
            obs, r, term, trunc, info = env.step(env.action_space.sample())
            done = term or trunc
            steps += 1
            assert steps < 100
    assert isinstance(env.unwrapped, JointEnv)
    assert env.unwrapped.env_id == env_id and env.unwrapped.env_kwargs == kwargs
    assert env.spec.id == JOINT_ENV_ID and spec_env.spec.kwargs["env_kwargs"] == kwargs
    first, _ = env.reset(seed=3)  # both builds give the same first joint observation
    assert _tree_equal(first, obs2)
    # gymnasium's passive checker must not find observations outside the declared space
    bad = [str(w.message) for w in caught if "not within the observation space" in str(w.message)
           or "is not within" in str(w.message)]
    assert not bad, bad
    assert env.observation_space.contains(obs)


def test_dying_agents_observe_zeros_and_are_flagged():
    env = JointEnv(f"{TOY}:make_dying_env", {"deaths": [2, 4, None], "max_cycles": 6},
                   info_keys=("hits",))
    obs, info = env.reset(seed=0)
    assert info["alive"] == {"bot_0": True, "bot_1": True, "bot_2": True}
    keys = set(info)
    assert keys == {"rewards", "alive", "state", "hits"}
    history = []
    done = False
    while not done:
        present = env.agent_obs(obs)
        assert list(present) == env.agents
        obs, r, term, trunc, info = env.step({a: env.action_space[a].sample() for a in present})
        assert set(info) == keys  # fixed keys every step: episodes stack into arrays
        assert env.observation_space.contains(obs)
        history.append((dict(info["alive"]), {a: o.copy() for a, o in obs.items()}, r, info))
        done = term or trunc
    assert len(history) == 6 and trunc and not term
    alive = [[h[0][a] for h in history] for a in ("bot_0", "bot_1", "bot_2")]
    assert alive == [[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0], [1] * 6]
    # zeros after leaving, the real last observation on the step it left
    assert history[1][1]["bot_0"][1] == 2.0 and not history[2][1]["bot_0"].any()
    assert history[3][1]["bot_1"][1] == 4.0 and not history[4][1]["bot_1"].any()
    # per-agent rewards are 0 once gone; the team reward is the mean over those who acted
    assert history[2][3]["rewards"]["bot_0"] == 0.0
    assert history[2][2] == pytest.approx(
        np.mean([history[2][3]["rewards"][a] for a in ("bot_1", "bot_2")]))
    # info_keys: max over the agents' infos ("hits" is the agent index)
    assert history[0][3]["hits"] == 2.0
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step({})


def test_all_agents_dying_terminates():
    env = JointEnv(f"{TOY}:make_dying_env", {"deaths": [1, 3, 2], "max_cycles": 9})
    env.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, _, term, trunc, _ = env.step({a: env.action_space[a].sample() for a in env.agents})
        steps, done = steps + 1, term or trunc
    assert steps == 3 and term and not trunc


def test_missing_action_names_the_agent_and_extra_actions_are_ignored():
    env = JointEnv("mpe2/simple_spread_v3", {"N": 3})
    env.reset(seed=0)
    with pytest.raises(KeyError, match="agent_1"):
        env.step({"agent_0": 0, "agent_2": 0})
    # absent agents' actions (e.g. from check_env's full Dict sample) are dropped
    env2 = JointEnv(f"{TOY}:make_dying_env", {"deaths": [1, None], "max_cycles": 3})
    env2.reset(seed=0)
    env2.step(env2.action_space.sample())
    assert env2.agents == ["bot_1"]
    env2.step(env2.action_space.sample())  # includes bot_0: ignored, no error


def test_same_seed_same_episode():
    def run(seed):
        env = JointEnv(f"{TOY}:make_hetero_env", {"max_cycles": 5})
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        out = [obs]
        done = False
        while not done:
            obs, r, term, trunc, info = env.step(env.action_space.sample())
            out.append((obs, r, info["state"]))
            done = term or trunc
        return out

    a, b, c = run(1), run(1), run(2)
    assert repr(a) == repr(b) and repr(a) != repr(c)


def test_env_object_and_bad_construction():
    env = JointEnv(env=make_env(f"{TOY}:make_masked_env"))
    obs, info = env.reset(seed=0)
    assert set(obs["unit_0"]) == {"observation", "action_mask"} and "state" not in info
    assert not env.has_state
    with pytest.raises(ValueError, match="needs env_id"):
        JointEnv()
    with pytest.raises(ValueError, match="Unknown env id"):
        JointEnv("nope/nope")


def test_render_mode_reaches_the_env():
    env = gym.make(JOINT_ENV_ID, env_id="mpe2/simple_spread_v3", env_kwargs={"max_cycles": 3},
                   render_mode="rgb_array")
    env.reset(seed=0)
    frame = np.asarray(env.render())
    assert frame.ndim == 3 and frame.shape[-1] == 3
    assert env.unwrapped.render_mode == "rgb_array" and env.unwrapped.env_kwargs == {"max_cycles": 3}
    assert "rgb_array" in env.unwrapped.metadata["render_modes"]
    assert JointEnv(f"{TOY}:make_hetero_env").render_mode is None
    env.close()
