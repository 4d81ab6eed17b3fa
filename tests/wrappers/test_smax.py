"""SMAX adapter: PettingZoo API, deaths, masks, seeding, and SMAX datasets through Minari.

Compiling SMAX's step dominates the run time, so the tests share a few settings: the
adapter caches compiled functions per (scenario, settings), and ``jit_opt_level=0`` halves
the compile time.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("jaxmarl", reason="SMAX tests need the [smax] extra (jaxmarl, jax)")

from pettingzoo.test import parallel_api_test  # noqa: E402

from wrappers import RandomPolicy, load_episodes, make_env, record_dataset  # noqa: E402
from wrappers.smax import INFO_KEYS, smax_scenarios  # noqa: E402

FAST = {"jit_opt_level": 0}  # compile in about half the time; same results


def _act(policy, obs, env):
    return policy.act({a: obs[a] for a in env.agents})


def test_import_does_not_import_jax():
    code = "import sys, wrappers, wrappers.smax; assert 'jax' not in sys.modules, 'jax'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_scenario_builds_with_consistent_spaces():
    names = smax_scenarios()
    for required in (
        "3m",
        "2s3z",
        "smacv2_5_units",
        "smacv2_10_units",
        "smacv2_20_units",
    ):
        assert required in names
    for name in names:
        env = make_env(f"smax/{name}", **FAST)
        smax = env.smax_env
        assert env.possible_agents == [f"ally_{i}" for i in range(smax.num_allies)]
        a = env.possible_agents[0]
        n_act = smax.num_enemies + 5
        assert env.action_space(a).n == n_act
        assert env.observation_space(a)["action_mask"].shape == (n_act,)
        assert (
            env.observation_space(a)["observation"].shape
            == smax.observation_spaces[a].shape
        )
        assert env.state_space.shape == (smax.state_size,)


def test_bad_arguments_get_one_clear_error():
    with pytest.raises(
        ValueError, match="Unknown SMAX scenario 'nope'.*smacv2_5_units"
    ):
        make_env("smax/nope")
    with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) \['colour'\]"):
        make_env("smax/3m", colour="red")
    with pytest.raises(ValueError, match="only 'discrete'"):
        make_env("smax/3m", action_type="continuous")
    with pytest.raises(ValueError, match="illegal_actions='never'"):
        make_env("smax/3m", illegal_actions="never")


@pytest.mark.parametrize("scenario", ["3m", "smacv2_5_units"])
def test_parallel_api_test(scenario):
    env = make_env(f"smax/{scenario}", **FAST)
    parallel_api_test(env, num_cycles=300)
    # The step compiled once, not once per episode or per reset.
    assert env._c.step._cache_size() == 1
    assert env._c.reset._cache_size() == 1


def test_agents_die_the_pettingzoo_way():
    env = make_env("smax/3m", **FAST)
    policy = RandomPolicy(env, seed=0)
    deaths_mid_episode = 0
    episodes = 0
    while deaths_mid_episode < 3 and episodes < 30:
        obs, infos = env.reset(seed=episodes)
        episodes += 1
        while env.agents:
            before = list(env.agents)
            actions = _act(policy, obs, env)
            obs, rewards, terms, truncs, infos = env.step(actions)
            # Every agent that acted gets its step results, and nobody else.
            assert set(obs) == set(rewards) == set(terms) == set(infos) == set(before)
            for a in before:
                assert (
                    obs[a]["observation"].shape
                    == env.observation_space(a)["observation"].shape
                )
            dead_now = [a for a in before if terms[a]]
            if env.agents and dead_now:
                deaths_mid_episode += len(dead_now)
                assert env.agents == [a for a in before if a not in dead_now]
                # A dead agent's unit is gone: SMAX zeroes its own features.
                assert not obs[dead_now[0]]["observation"].any()
                with pytest.raises(KeyError, match="unknown agents"):
                    env.step({**_act(policy, obs, env), "ally_99": 4})
                info = infos[dead_now[0]]
                assert info["dead_allies"] >= len(dead_now)
                assert not info["battle_won"]
    assert deaths_mid_episode >= 3, "random play on 3m should lose units before the end"


def test_episode_end_flags_and_win_info():
    env = make_env("smax/3m", **FAST)
    policy = RandomPolicy(env, seed=1)
    saw_end = False
    for ep in range(5):
        obs, _ = env.reset(seed=100 + ep)
        while env.agents:
            obs, rew, terms, truncs, infos = env.step(_act(policy, obs, env))
        last = next(iter(infos.values()))
        for key in INFO_KEYS:
            assert key in last
        decided = last["dead_allies"] == 3 or last["dead_enemies"] == 3
        assert all(terms.values()) == decided
        assert all(truncs.values()) == (not decided)
        assert last["battle_won"] == (
            last["dead_enemies"] == 3 and last["dead_allies"] < 3
        )
        saw_end = True
    assert saw_end
    with pytest.raises(RuntimeError, match="no agents left"):
        env.step({})


def test_same_seed_same_episode_and_state():
    env = make_env("smax/smacv2_5_units", **FAST)
    runs = []
    for _ in range(2):
        obs, _ = env.reset(seed=7)
        policy = RandomPolicy(env, seed=7)
        trace = [env.state()]
        for _ in range(10):
            if not env.agents:
                break
            obs, rew, *_ = env.step(_act(policy, obs, env))
            trace.append(env.state())
            trace.append(np.array(list(rew.values())))
        runs.append(trace)
    assert all(np.array_equal(a, b) for a, b in zip(*runs))
    assert runs[0][0].shape == env.state_space.shape
    other, _ = env.reset(seed=8)
    first, _ = env.reset(seed=7)
    assert not np.array_equal(
        other["ally_0"]["observation"], first["ally_0"]["observation"]
    )


def test_masked_out_action_is_refused():
    env = make_env("smax/3m", **FAST)
    obs, _ = env.reset(seed=0)
    mask = obs["ally_0"]["action_mask"]
    assert mask.dtype == np.int8 and mask[4] == 1  # "stop" is always legal
    illegal = int(np.flatnonzero(mask == 0)[0])  # enemies start out of range
    actions = {a: 4 for a in env.agents}
    with pytest.raises(
        ValueError, match=f"Action {illegal} of 'ally_0' is not allowed"
    ):
        env.step({**actions, "ally_0": illegal})
    with pytest.raises(ValueError, match="out of range"):
        env.step({**actions, "ally_0": 99})
    with pytest.raises(KeyError, match="No action for present agent"):
        env.step({"ally_0": 4})


def test_recorded_dataset_round_trips_with_legal_actions_and_deaths():
    ds = record_dataset(
        "smax/3m",
        RandomPolicy(make_env("smax/3m", **FAST), seed=0),
        num_episodes=6,
        dataset_id="smax/3m/random-v0",
        env_kwargs=FAST,
        info_keys=INFO_KEYS,
        num_ref_episodes=3,
        show_progress=False,
    )
    batch = load_episodes(ds)
    assert batch.agents == ("ally_0", "ally_1", "ally_2")
    assert batch.action_masks is not None and batch.states is not None
    assert len(set(batch.lengths.tolist())) > 1, "episodes should differ in length"
    # Every recorded action of an acting agent is legal under the mask it saw.
    e, t, i = np.nonzero(batch.acted)
    chosen = batch.actions[e, t, i, 0].astype(int)
    assert batch.action_masks[e, t, i, chosen].all()
    # Deaths: some agent stops acting before its episode ends.
    died_early = (~batch.alive[:, 1:] & batch.valid[:, :, None]).any(axis=(1, 2))
    assert died_early.any()
    # Replaying episode 0 (seed 0) with its recorded actions reproduces the stored data.
    env = make_env("smax/3m", **FAST)
    obs, _ = env.reset(seed=0)
    for step in range(int(batch.lengths[0])):
        for k, a in enumerate(batch.agents):
            if batch.alive[0, step, k]:
                np.testing.assert_array_equal(
                    batch.obs[0, step, k, : batch.obs_dims[k]], obs[a]["observation"]
                )
                np.testing.assert_array_equal(
                    batch.action_masks[0, step, k], obs[a]["action_mask"].astype(bool)
                )
        np.testing.assert_array_equal(batch.states[0, step], env.state())
        acts = {
            a: int(batch.actions[0, step, k, 0])
            for k, a in enumerate(batch.agents)
            if a in env.agents
        }
        obs, rew, *_ = env.step(acts)
        assert batch.team_rewards[0, step] == pytest.approx(np.mean(list(rew.values())))
    assert not env.agents


def test_pickled_copy_continues_the_same_episode():
    import pickle

    env = make_env("smax/3m", **FAST)
    obs, _ = env.reset(seed=5)
    policy = RandomPolicy(env, seed=5)
    obs, *_ = env.step(_act(policy, obs, env))
    copy = pickle.loads(pickle.dumps(env))
    assert copy.agents == env.agents and copy._c is env._c  # compiled functions reused
    actions = _act(policy, obs, env)
    a = env.step(actions)
    b = copy.step(actions)
    for agent in a[0]:
        np.testing.assert_array_equal(
            a[0][agent]["observation"], b[0][agent]["observation"]
        )
    assert a[1] == b[1] and a[2] == b[2]
    np.testing.assert_array_equal(env.state(), copy.state())
