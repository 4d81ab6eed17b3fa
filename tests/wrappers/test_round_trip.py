"""record_dataset -> stock minari.load_dataset -> load_episodes gives back what was played.

The ground truth is captured independently (tests/wrappers/replay.py): the logging policy
writes down what it saw and did while recording, and a hand-written replay steps the raw
PettingZoo env with the same seeds. Both must match the loaded arrays exactly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import minari
import numpy as np
import pytest
from minari.data_collector.episode_buffer import EpisodeBuffer

from tests.wrappers.replay import LoggingPolicy, replay
from wrappers import load_episodes, make_env, record_dataset
from wrappers.minari_io import batch_to_buffers, write_dataset

TOY = "tests.wrappers.toy_envs"

CASES = {
    "spread-discrete": ("mpe2/simple_spread_v3", {"N": 3, "max_cycles": 6}, 3),
    "spread-continuous": (
        "mpe2/simple_spread_v3", {"continuous_actions": True, "max_cycles": 6}, 3
    ),
    "speaker-listener": ("mpe2/simple_speaker_listener_v4", {"max_cycles": 5}, 2),
    "world-comm": (
        "mpe2/simple_world_comm_v3", {"continuous_actions": True, "max_cycles": 4}, 2
    ),
    "hetero": (f"{TOY}:make_hetero_env", {"max_cycles": 6}, 3),
    "masked": (f"{TOY}:make_masked_env", {"n_agents": 3, "n_actions": 5}, 3),
    "hetero-masked": (f"{TOY}:make_hetero_env", {"max_cycles": 6, "mask_worker": True}, 2),
    "dying": (f"{TOY}:make_dying_env", {"deaths": [2, 4, None], "max_cycles": 6}, 2),
    "dying-all": (f"{TOY}:make_dying_env", {"deaths": [1, 3, 2], "max_cycles": 9}, 2),
    "dying-jitter": (  # episodes of different lengths: padding
        f"{TOY}:make_dying_env",
        {"deaths": [2, 3, 4], "jitter": 4, "max_cycles": 20, "action_start": 1}, 4,
    ),
    "odd-spaces": (f"{TOY}:make_odd_spaces_env", {}, 2),
    "spawn": (f"{TOY}:make_spawn_env", {"n_late": 2, "spawn_at": 2, "max_cycles": 6}, 2),
}

SEED, POLICY_SEED = 100, 7
ARRAY_FIELDS = (
    "obs", "actions", "action_masks", "rewards", "team_rewards", "terminations",
    "truncations", "valid", "lengths", "alive", "acted", "states", "synthetic",
)


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


def _same_log(log_a, log_b) -> bool:
    """Two LoggingPolicy logs hold the same observations and actions, step by step."""
    if [len(ep) for ep in log_a] != [len(ep) for ep in log_b]:
        return False
    return all(
        _same(oa, ob) and _same(aa, ab)
        for ep_a, ep_b in zip(log_a, log_b)
        for (oa, aa), (ob, ab) in zip(ep_a, ep_b)
    )


def _record(name: str):
    env_id, kwargs, n = CASES[name]
    policy = LoggingPolicy(make_env(env_id, **kwargs), seed=POLICY_SEED)
    dataset_id = f"test/{name}/rt-v0"
    record_dataset(
        env_id, policy, n, dataset_id, env_kwargs=kwargs, seed=SEED,
        ref_min_score=-10.0, ref_max_score=10.0, show_progress=False,
    )
    return dataset_id, policy


@pytest.mark.parametrize("name", list(CASES))
def test_record_load_round_trip_is_exact(name):
    env_id, kwargs, n = CASES[name]
    dataset_id, rec_policy = _record(name)

    ds = minari.load_dataset(dataset_id)  # stock Minari reader
    assert ds.total_episodes == n
    batch = load_episodes(ds)

    rep_policy = LoggingPolicy(make_env(env_id, **kwargs), seed=POLICY_SEED)
    truths = replay(env_id, kwargs, rep_policy, n, seed=SEED)
    # the replay is the same rollout the recording saw
    assert len(rec_policy.log) == n
    assert _same_log(rec_policy.log, rep_policy.log)

    assert batch.agents == tuple(make_env(env_id, **kwargs).possible_agents)
    assert list(batch.observation_spaces) == list(batch.agents)
    assert batch.metadata["env_id"] == env_id and batch.metadata["env_kwargs"] == kwargs
    assert batch.ref_min_score == -10.0 and batch.ref_max_score == 10.0
    T = max(tr.length for tr in truths)
    assert batch.horizon == T and batch.num_episodes == n
    for e, tr in enumerate(truths):
        L = tr.length
        assert batch.lengths[e] == L
        assert batch.valid[e].tolist() == [True] * L + [False] * (T - L)
        D = tr.obs.shape[-1]
        np.testing.assert_array_equal(batch.obs[e, : L + 1, :, :D], tr.obs)
        assert not batch.obs[e, L + 1 :].any() and not batch.obs[e, :, :, D:].any()
        K = tr.actions.shape[-1]
        np.testing.assert_array_equal(batch.actions[e, :L, :, :K], tr.actions)
        assert not batch.actions[e, L:].any()
        np.testing.assert_array_equal(batch.acted[e, :L], tr.acted)
        assert not batch.acted[e, L:].any()
        np.testing.assert_array_equal(batch.alive[e, : L + 1], tr.alive)
        np.testing.assert_array_equal(batch.rewards[e, :L], tr.rewards.astype(np.float32))
        np.testing.assert_array_equal(batch.team_rewards[e, :L], tr.team.astype(np.float32))
        assert batch.terminations[e, : L - 1].sum() == 0 and batch.truncations[e, : L - 1].sum() == 0
        assert (batch.terminations[e, L - 1], batch.truncations[e, L - 1]) == (
            tr.terminated, tr.truncated
        )
        if tr.masks is None:
            assert batch.action_masks is None
        else:
            N = tr.masks.shape[-1]
            for i in range(batch.num_agents):
                if tr.masks[:, i].any():  # a masked agent: its masks, exactly
                    np.testing.assert_array_equal(batch.action_masks[e, : L + 1, i, :N], tr.masks[:, i])
                else:  # an agent without masks: every action allowed
                    assert batch.action_masks[e, : L + 1, i, : max(batch.n_actions[i], 1)].all()
        if tr.states is None:
            assert batch.states is None
        else:
            np.testing.assert_array_equal(batch.states[e, : L + 1], tr.states)
        for i, a in enumerate(batch.agents):
            assert batch.agent_obs(a).shape[-1] == batch.obs_dims[i]
            # zeros whenever an agent is absent, zero action whenever it did not act
            assert not batch.obs[e, ~batch.alive[e, :, i], i].any()
            assert not batch.actions[e, ~batch.acted[e, :, i], i].any()
    assert not batch.synthetic.any()

    # The raw Minari episodes follow the convention too (what other Minari tools see).
    for e, ep in enumerate(ds.iterate_episodes()):
        tr = truths[e]
        np.testing.assert_allclose(ep.rewards, tr.team, rtol=0, atol=1e-12)
        for i, a in enumerate(batch.agents):
            assert ep.infos["rewards"][a][0] == 0.0
            np.testing.assert_allclose(ep.infos["rewards"][a][1:], tr.rewards[:, i], rtol=0, atol=1e-12)
            assert ep.infos["alive"][a].dtype == bool


@pytest.mark.parametrize(
    "name", ["spread-continuous", "speaker-listener", "masked", "dying-jitter", "odd-spaces"]
)
def test_batch_to_buffers_write_dataset_round_trip(name):
    dataset_id, _ = _record(name)
    src = minari.load_dataset(dataset_id)
    batch = load_episodes(src)
    meta = {"multiagent": dict(batch.metadata, source=dataset_id),
            "ref_min_score": batch.ref_min_score, "ref_max_score": batch.ref_max_score}
    copy = write_dataset(
        f"test/{name}/copy-v0", batch_to_buffers(batch),
        observation_space=src.observation_space, action_space=src.action_space,
        metadata=meta, num_episodes=batch.num_episodes, show_progress=False,
    )
    again = load_episodes(minari.load_dataset(copy.spec.dataset_id))
    for field in ARRAY_FIELDS:
        a, b = getattr(batch, field), getattr(again, field)
        assert (a is None) == (b is None), field
        if a is not None:
            assert a.dtype == b.dtype, field
            np.testing.assert_array_equal(a, b, err_msg=field)
    assert again.agents == batch.agents and again.obs_dims == batch.obs_dims
    assert again.ref_min_score == batch.ref_min_score
    assert again.metadata["source"] == dataset_id
    # raw Minari episodes pass write_dataset's checks too (EAQ copies real episodes so)
    raw = write_dataset(
        f"test/{name}/raw-v0",
        (EpisodeBuffer(observations=ep.observations, actions=ep.actions, rewards=ep.rewards,
                       terminations=ep.terminations, truncations=ep.truncations,
                       infos=ep.infos) for ep in src.iterate_episodes()),
        observation_space=src.observation_space, action_space=src.action_space,
        metadata=meta, show_progress=False,
    )
    np.testing.assert_array_equal(load_episodes(raw).obs, batch.obs)
    # the Minari-level observations (including int8 masks) are identical too
    for ep_a, ep_b in zip(src.iterate_episodes(), copy.iterate_episodes()):
        assert _same(ep_a.observations, ep_b.observations)
        assert _same(ep_a.actions, ep_b.actions)
        assert _same(ep_a.infos["alive"], ep_b.infos["alive"])


def test_dying_agents_follow_the_convention():
    """Hand-checked layout for deaths at steps 2 and 4 and a survivor truncated at 6."""
    dataset_id, _ = _record("dying")
    b = load_episodes(dataset_id)
    assert b.agents == ("bot_0", "bot_1", "bot_2") and b.horizon == 6
    alive = b.alive[0].T.astype(int).tolist()  # (agents, T + 1)
    assert alive == [[1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0, 0], [1] * 7]
    acted = b.acted[0].T.astype(int).tolist()
    assert acted == [[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0], [1] * 6]
    # the last observation of a dying agent is real (its step counter), zeros afterwards
    assert b.obs[0, 2, 0, 1] == 2.0 and not b.obs[0, 3:, 0].any()
    assert b.obs[0, 4, 1, 1] == 4.0 and not b.obs[0, 5:, 1].any()
    assert (b.rewards[0, 2:, 0] == 0).all() and (b.rewards[0, :2, 0] != 0).all()
    # team reward: mean over the agents that acted
    np.testing.assert_allclose(b.team_rewards[0, 3], b.rewards[0, 3, 1:].mean(), rtol=1e-6)
    np.testing.assert_allclose(b.team_rewards[0, 5], b.rewards[0, 5, 2], rtol=1e-6)
    assert b.truncations[0, 5] and not b.terminations[0, 5]
    b3 = load_episodes(_record("dying-jitter")[0])
    assert len(set(b3.lengths.tolist())) > 1  # the padding is exercised
    # Discrete(3, start=1) agents: the action is 0 (not a legal index) where they did not act
    assert not b3.actions[~b3.acted[..., 0], 0].any() and (b3.actions[b3.acted[..., 0], 0] >= 1).all()
    b4 = load_episodes(_record("spawn")[0])  # agents joining late: zeros before they exist
    assert b4.alive[0].T.astype(int).tolist() == [[1] * 7, [0, 0, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1]]
    assert b4.acted[0].T.astype(int).tolist() == [[1] * 6, [0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1]]
    assert not b4.obs[0, :2, 1].any() and b4.obs[0, 2, 1, 1] == 2.0
    b2 = load_episodes(_record("dying-all")[0])
    assert b2.lengths.tolist() == [3, 3] and b2.terminations[:, 2].all()
    assert not b2.truncations.any()


def test_recover_environment_and_metadata():
    dataset_id, _ = _record("hetero")
    ds = minari.load_dataset(dataset_id)
    meta = ds.storage.metadata
    ma = meta["multiagent"]
    assert ma["convention"] == "diffusion-agents/multiagent-v1"
    assert ma["agents"] == ["scout", "worker", "pilot"]
    assert ma["behaviour_policy"] == "logging-test-policy" and ma["has_state"] is True
    assert ma["seed"] == SEED
    for eval_env in (False, True):
        env = ds.recover_environment(eval_env=eval_env)
        obs, info = env.reset(seed=SEED)
        assert set(obs) == {"scout", "worker", "pilot"}
        assert env.unwrapped.env_kwargs == {"max_cycles": 6}
        # same seed, same first observation as recorded
        first = load_episodes(ds).obs[0, 0]
        for i, a in enumerate(ma["agents"]):
            np.testing.assert_array_equal(first[i, : obs[a].shape[0]], obs[a])
        env.close()
    mpe_id, _ = _record("spread-discrete")
    env = minari.load_dataset(mpe_id).recover_environment(render_mode="rgb_array")
    env.reset(seed=0)
    assert np.asarray(env.render()).ndim == 3
    env.close()


def test_ref_scores_measured_and_normalize():
    env_id, kwargs, _ = CASES["hetero"]
    env = make_env(env_id, **kwargs)
    from tests.wrappers.toy_envs import ChasePolicy
    from wrappers import RandomPolicy

    ds = record_dataset(
        env_id, RandomPolicy(env, seed=0), 2, "test/hetero/ref-v0", env_kwargs=kwargs,
        num_ref_episodes=3, show_progress=False,
    )
    b = load_episodes(ds)
    assert b.ref_min_score is not None and b.ref_max_score is None
    assert "ref_max_score" not in ds.storage.metadata
    with pytest.raises(ValueError, match="no ref_min_score/ref_max_score"):
        b.normalize(b.returns)

    chase_id = f"{TOY}:make_chase_env"
    ds2 = record_dataset(
        chase_id, RandomPolicy(make_env(chase_id), seed=1), 3, "test/chase/random-v0",
        expert_policy=ChasePolicy(), num_ref_episodes=4, show_progress=False,
    )
    b2 = load_episodes(ds2)
    assert b2.ref_max_score > b2.ref_min_score  # the scripted expert beats random
    norm = b2.normalize([b2.ref_min_score, b2.ref_max_score])
    np.testing.assert_allclose(norm, [0.0, 100.0])
    np.testing.assert_allclose(b2.returns, b2.team_rewards.sum(1), rtol=1e-6)
    rtg = b2.return_to_go()
    np.testing.assert_allclose(rtg[:, 0], b2.returns, rtol=1e-5)
    assert (rtg[np.arange(3), b2.lengths] == 0).all()


def _minari_cli() -> list[str]:
    script = Path(sys.executable).with_name("minari")
    if script.exists():
        return [str(script)]
    exe = shutil.which("minari")
    if exe:
        return [exe]
    return [sys.executable, "-c", "import sys; from minari.cli import app; sys.exit(app())"]


def test_minari_cli_show_and_list_read_our_datasets(minari_root):
    dataset_id, _ = _record("masked")
    assert (minari_root / "test" / "masked" / "rt-v0").is_dir()  # local: no network needed
    repo = str(Path(__file__).resolve().parents[2])  # so `minari show` can build the toy env
    env = dict(os.environ, MINARI_DATASETS_PATH=str(minari_root), COLUMNS="200",
               NO_COLOR="1", TERM="dumb",
               PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
    shown = subprocess.run(
        _minari_cli() + ["show", dataset_id], env=env, capture_output=True, text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert dataset_id in out and "Total Episodes" in out and "logging-test-policy" in out
    assert "diffusion-agents/JointEnv-v0" in out and "Failed to make env" not in shown.stderr
    listed = subprocess.run(
        _minari_cli() + ["list", "local"], env=env, capture_output=True, text=True, timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert "rt-v0" in listed.stdout or "masked" in listed.stdout


def test_deterministic_behaviour_policy_is_reproducible_from_the_data():
    """ChaseEnv + ChasePolicy: every stored action is what the policy does on the stored obs.

    (A fixture for learners that must reproduce a deterministic behaviour policy.)
    """
    from tests.wrappers.toy_envs import ChasePolicy

    env_id = f"{TOY}:make_chase_env"
    ds = record_dataset(env_id, ChasePolicy(), 4, "test/chase/expert-v0",
                        env_kwargs={"n_agents": 3}, ref_min_score=-20.0, show_progress=False)
    b = load_episodes(ds)
    policy = ChasePolicy()
    for e in range(b.num_episodes):
        for t in range(int(b.lengths[e])):
            obs = {a: b.agent_obs(a)[e, t] for a in b.agents}
            want = policy.act(obs)
            got = {a: int(b.agent_actions(a)[e, t, 0]) for a in b.agents}
            assert got == {a: int(v) for a, v in want.items()}
    # and it is a good policy: it beats random by a wide margin
    from wrappers import RandomPolicy

    rnd = record_dataset(env_id, RandomPolicy(make_env(env_id, n_agents=3), seed=0), 4,
                         "test/chase/random-v0", env_kwargs={"n_agents": 3},
                         ref_min_score=-20.0, show_progress=False)
    assert b.returns.mean() > load_episodes(rnd).returns.mean() + 2.0


def test_same_seed_same_dataset():
    env_id, kwargs = "mpe2/simple_spread_v3", {"N": 2, "max_cycles": 5}

    def rec(dataset_id, seed):
        env = make_env(env_id, **kwargs)
        from wrappers import RandomPolicy

        return load_episodes(record_dataset(
            env_id, RandomPolicy(env, seed=seed), 2, dataset_id, env_kwargs=kwargs, seed=seed,
            num_ref_episodes=2, show_progress=False))

    a, b, c = rec("test/seed/a-v0", 3), rec("test/seed/b-v0", 3), rec("test/seed/c-v0", 4)
    for field in ARRAY_FIELDS:
        x, y = getattr(a, field), getattr(b, field)
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=field)
    assert a.ref_min_score == b.ref_min_score != c.ref_min_score
    assert not np.array_equal(a.obs, c.obs)


def test_write_dataset_under_a_relative_minari_root(minari_root, monkeypatch):
    """``MINARI_DATASETS_PATH=data/minari`` (as the README's commands use): writing more
    than one chunk of episodes used to fail inside minari with a doubled path."""
    dataset_id, _ = _record("spread-discrete")
    src = minari.load_dataset(dataset_id)
    batch = load_episodes(src)
    monkeypatch.chdir(minari_root.parent)
    monkeypatch.setenv("MINARI_DATASETS_PATH", minari_root.name)
    buffers = list(batch_to_buffers(batch))
    n = 300 // len(buffers) + 1  # more than write_dataset's 256-episode chunk
    copy = write_dataset(
        "test/spread/relative-v0", (b for _ in range(n) for b in buffers),
        observation_space=src.observation_space, action_space=src.action_space,
        metadata={"multiagent": batch.metadata}, show_progress=False,
    )
    assert copy.total_episodes == n * len(buffers) > 256
    assert (minari_root / "test" / "spread" / "relative-v0").is_dir()
